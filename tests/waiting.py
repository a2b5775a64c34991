"""Waiting on another thread or process: a virtual bus applies what it hears a moment after the client
returns (a SYNC WRITE has no reply; a loaded machine delays the bus thread). Shared by every test folder
(tests/ is on the import path through its conftest.py)."""

import time
from collections.abc import Callable

# Bring-up scans wait this long per baud rate for a broadcast ping's answers, not the commands' default
# (long enough for every id). A pty answers in well under a millisecond, but a loaded machine can hold up
# the virtual bus's thread for tens of milliseconds: at 20 ms, a servo was missed in CI.
FAST_SCAN = ["--scan-wait-ms", "100"]


def eventually(predicate: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    """True as soon as ``predicate()`` holds, False if it still does not after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True
