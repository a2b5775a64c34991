"""Waiting on another thread or process: a virtual bus applies what it hears a moment after the client
returns (a SYNC WRITE has no reply; a loaded machine delays the bus thread). Shared by every test folder
(tests/ is on the import path through its conftest.py)."""

import time
from collections.abc import Callable


def eventually(predicate: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    """True as soon as ``predicate()`` holds, False if it still does not after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True
