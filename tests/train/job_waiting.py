"""Waiting for a job manager condition in tests: tick the jobs (ingest events, move the queue) until it holds."""

from __future__ import annotations

import time

from ftassist import store
from ftassist.train import jobs


def wait_for(predicate, timeout: float = 90.0, what: str = "condition"):
    """The predicate's first truthy value, ticking the job manager between looks; fails with every job's state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs.tick(store.get_store())
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {jobs.list_jobs(store.get_store())}")
