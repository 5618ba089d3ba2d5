"""Waiting for a condition in tests, polling briefly, instead of sleeping a fixed time."""

import time


def wait_until(predicate, timeout=5.0, poll=0.005):
    """True as soon as ``predicate()`` is; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())
