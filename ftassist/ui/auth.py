"""Admin protection for public deployments.

When `FTASSIST_ADMIN_PASSWORD` is set, the full app (data, estimates, training, the arena's
owner tools) asks for a login; the arena-only voting page never does, so voters just vote.
The password is read from the environment at each login and never written anywhere.
"""

from __future__ import annotations

import hmac

from ftassist import config

AUTH_MESSAGE = ("This ftassist app is protected: log in as the admin (user name and the password set in "
                "FTASSIST_ADMIN_PASSWORD). Voters: the arena is open at /arena, no login needed.")


def auth_enabled() -> bool:
    return config.admin_password() is not None


def check_login(username: str, password: str) -> bool:
    """Gradio's `auth` callable: the admin user name and password, compared in constant time."""
    expected = config.admin_password()
    if expected is None:
        return True
    user_ok = hmac.compare_digest((username or "").strip().encode(), config.admin_user().encode())
    pass_ok = hmac.compare_digest((password or "").encode(), expected.encode())
    return user_ok and pass_ok


def gradio_auth():
    """What to pass as `auth=` to Gradio: None (open) or the login check."""
    return check_login if auth_enabled() else None


# -- throttling ---------------------------------------------------------------------------------------
class LoginThrottle:
    """Failed logins per client address, with a delay that doubles after each failure past the free ones.

    Why: without it a script tries hundreds of passwords a second. An attempt is counted as a failure
    when it starts (and forgiven when it succeeds), so a burst of parallel attempts cannot slip past
    the count. While an address waits, its attempts are refused without checking the password, so a
    guess made then tells nothing, and a refused attempt does not lengthen the wait (a stranger cannot
    keep the admin out for longer than the current delay). Kept in memory: a restart forgets it.
    """

    FREE_FAILURES = 3
    BASE_DELAY_S = 1.0
    MAX_DELAY_S = 300.0
    MAX_ADDRESSES = 10_000

    def __init__(self, clock=None):
        import threading
        import time

        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def wait_s(self, address: str) -> float:
        """Seconds before `address` may try again (0: now)."""
        with self._lock:
            return max(0.0, self._until.get(address, 0.0) - self._clock())

    def begin(self, address: str) -> float:
        """Start an attempt: 0 when it may go ahead (counted as failed until `succeeded`), else the
        seconds to wait."""
        with self._lock:
            now = self._clock()
            wait = self._until.get(address, 0.0) - now
            if wait > 0:
                return wait
            if len(self._failures) >= self.MAX_ADDRESSES and address not in self._failures:
                self._forget_idle(now)
            failures = self._failures.get(address, 0) + 1
            self._failures[address] = failures
            if failures > self.FREE_FAILURES:
                delay = min(self.BASE_DELAY_S * 2 ** (failures - self.FREE_FAILURES - 1), self.MAX_DELAY_S)
                self._until[address] = now + delay
            return 0.0

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)
            self._until.pop(address, None)

    def _forget_idle(self, now: float) -> None:
        """Bound the memory: drop addresses that are not waiting (oldest half when all are)."""
        idle = [a for a in self._failures if self._until.get(a, 0.0) <= now]
        for address in idle or list(self._failures)[: len(self._failures) // 2]:
            self._failures.pop(address, None)
            self._until.pop(address, None)


def refusal_message(wait_s: float) -> str:
    import math

    return (f"Too many failed logins from this address: try again in {math.ceil(wait_s)} s. "
            "Each further failure doubles the wait.")
