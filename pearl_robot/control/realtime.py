"""Real-time scheduling for the control thread, where the OS allows it.

Under load, the default scheduler can wake a 20 Hz loop milliseconds late; SCHED_FIFO lets the
control thread preempt ordinary work (as ros2_control's controller manager does). It needs
CAP_SYS_NICE (root, or an rtprio limit); without it the loop still runs, only with more jitter.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def set_realtime_priority(priority: int = 50) -> bool:
    """Give the calling thread SCHED_FIFO ``priority``; False (and no change) where not permitted."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError):
        return False
    return True


def reset_priority() -> None:
    if hasattr(os, "sched_setscheduler"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


@contextlib.contextmanager
def realtime_priority(enabled: bool = True, priority: int = 50) -> Iterator[bool]:
    """Run a block at real-time priority if permitted; yields whether it was granted."""
    granted = set_realtime_priority(priority) if enabled else False
    try:
        yield granted
    finally:
        if granted:
            reset_priority()
