"""The worker's stop request: how a cancel (SIGTERM from the job manager, Ctrl-C) reaches a run.

One flag for both backends: the local recipe turns it into the trainer's `should_training_stop`
(the worker then saves what it has), the OpenAI backend into a remote cancel. A second signal
means "stop waiting for a clean save": the default handler then ends the process.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Cancelled(Exception):
    """Raised between phases when a stop was requested before training started."""


class StopFlag:
    """Set by SIGTERM/SIGINT once `install`ed in the main thread, or by an outside predicate (`external`)."""

    def __init__(self, external: Callable[[], bool] | None = None) -> None:
        self.external = external
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.requested or bool(self.external and self.external())

    def install(self) -> None:
        """Catch the stop signals (only possible in the main thread; elsewhere `external` must say when)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):
                pass

    def restore(self) -> None:
        """Put back the handlers `install` replaced (a caller that runs on afterwards, such as a test)."""
        for sig, handler in self._previous.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError):
                pass
        self._previous.clear()

    def check(self) -> None:
        if self():
            raise Cancelled()

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second signal: stop waiting for a clean save
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.requested = True
        self.signum = signum
        print(f"[ftassist] received signal {signum}: stopping after the current step", flush=True)


def sleep_until(seconds: float, should_stop: Callable[[], bool]) -> None:
    """Wait `seconds`, or less when a stop is requested (polling a remote job between checks)."""
    end = time.monotonic() + seconds
    while not should_stop():
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(0.2, left))
