"""Real-time scheduling for the control thread, where the OS allows it.

Under load, the default scheduler can wake a 20 Hz loop milliseconds late; SCHED_FIFO lets the
control thread preempt ordinary work (as ros2_control's controller manager does). It needs
CAP_SYS_NICE (root, or an rtprio limit); without it the loop still runs, only with more jitter.
Pinning the control thread to a CPU (``--cpu``) keeps it off cores that other work migrates to, and
``realtime_episode`` keeps the garbage collector and page faults out of an episode's step loop.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pearl_robot.errors import PearlRobotError

if TYPE_CHECKING:
    import ctypes


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


# ---- CPU affinity ----------------------------------------------------------------------------------


def parse_cpus(text: str) -> frozenset[int]:
    """``2`` / ``2,3`` / ``0-3`` (taskset's list syntax) as a set of CPU numbers."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CPU numbers like 2 or 2,3 or 0-3, got '{text}'") from None
    if not cpus or min(cpus) < 0:
        raise argparse.ArgumentTypeError(f"expected CPU numbers like 2 or 2,3 or 0-3, got '{text}'")
    return frozenset(cpus)


def add_cpu_argument(parser: argparse.ArgumentParser) -> None:
    """``--cpu N[,M]``, the same on every command that runs a control loop."""
    parser.add_argument(
        "--cpu",
        type=parse_cpus,
        default=None,
        metavar="N[,M]",
        help="pin the control thread (and the threads it starts) to these CPUs, e.g. 2 or 2,3 (default: any)",
    )


def pin_cpus(cpus: Iterable[int]) -> str:
    """Pin the calling thread (threads it starts inherit it) to ``cpus``; returns the affinity now in
    effect, e.g. ``"2,3"``. A CPU the OS will not give (absent, outside this cgroup) is a user error."""
    wanted = set(cpus)
    if not hasattr(os, "sched_setaffinity"):
        raise PearlRobotError("--cpu: CPU affinity is not supported on this OS")
    try:
        os.sched_setaffinity(0, wanted)
    except OSError as exc:
        available = cpu_affinity()
        wanted_text = ",".join(map(str, sorted(wanted)))
        raise PearlRobotError(f"--cpu {wanted_text}: {exc.strerror} (available: {available})") from None
    return cpu_affinity() or ""


def cpu_affinity() -> str | None:
    """The CPUs the calling thread may run on, e.g. ``"0,1"``; None where the OS does not say."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return ",".join(map(str, sorted(os.sched_getaffinity(0))))


# ---- an episode without collector pauses or page faults --------------------------------------------

# mlockall(2) flags: the generic values; PowerPC and SPARC use their own
_MCL = {"ppc": (0x2000, 0x4000, 0x8000), "sparc": (0x2000, 0x4000, 0x8000)}
_MCL_GENERIC = (1, 2, 4)  # MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT


@dataclass
class EpisodeGrant:
    """What ``realtime_episode`` got from the OS (False: not asked for, or not permitted)."""

    gc_frozen: bool = False
    frozen_objects: int = 0
    memory_locked: bool = False
    memory_lock_note: str = ""

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


_active: EpisodeGrant | None = None  # realtime_episode nests: only the outermost one changes anything
_memory_lock: tuple[bool, str] | None = None  # asked once per process, then kept (see realtime_episode)


@contextlib.contextmanager
def realtime_episode(
    enabled: bool = True, *, freeze_gc: bool = True, lock_memory: bool = True
) -> Iterator[EpisodeGrant]:
    """Run an episode's step loop without garbage-collector pauses and (where permitted) with its
    memory locked; everything is restored on exit, also on an exception, so collection runs between
    episodes. Never raises for what the OS refuses: the yielded grant says what is in effect.

    The collector: the young generations are collected (the fresh garbage, in well under a millisecond;
    a full collection would keep the arm waiting at its start pose for 50-100 ms with torch loaded),
    then every tracked object is frozen (the collector never walks them again) and automatic collection
    is off; reference counting still frees almost all garbage, only cycles wait for the end of the
    episode, when the frozen objects go back to the oldest generation. Memory: ``mlockall(MCL_CURRENT | MCL_FUTURE |
    MCL_ONFAULT)`` keeps the pages the process touches resident (no major page faults in the loop)
    without faulting in every mapped library; it is only asked for where it cannot starve later
    allocations (CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK). It is asked for once per process and
    kept: locking and unlocking a process with torch loaded take tens to hundreds of milliseconds each,
    and an unlock on the way out of an episode would delay the safe stop that follows an operator's
    stop. ``enabled=False`` (an unpaced simulation, where a pause costs nothing) changes nothing.
    """
    global _active
    if _active is not None or not enabled:
        yield _active or EpisodeGrant()
        return
    grant = _active = EpisodeGrant()
    was_enabled, was_frozen = gc.isenabled(), gc.get_freeze_count() > 0
    try:
        if freeze_gc:
            gc.collect(1)
            gc.freeze()
            gc.disable()
            grant.gc_frozen, grant.frozen_objects = True, gc.get_freeze_count()
        if lock_memory:
            grant.memory_locked, grant.memory_lock_note = _lock_memory_once()
        yield grant
    finally:
        _active = None
        if grant.gc_frozen:
            if was_enabled:
                gc.enable()
            if not was_frozen:  # objects someone else froze stay frozen
                gc.unfreeze()


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _lock_memory_once() -> tuple[bool, str]:
    global _memory_lock
    if _memory_lock is None:
        _memory_lock = _lock_memory()
    return _memory_lock


def _lock_memory() -> tuple[bool, str]:
    """mlockall where it is safe; (granted, why not)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mlockall"):
        return False, "not supported on this OS"
    import ctypes
    import platform
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft != resource.RLIM_INFINITY and not _has_ipc_lock():
        return False, f"not permitted (RLIMIT_MEMLOCK {soft} bytes; needs CAP_IPC_LOCK or `ulimit -l unlimited`)"
    arch = platform.machine()
    current, future, onfault = next((v for k, v in _MCL.items() if arch.startswith(k)), _MCL_GENERIC)
    for flags in (current | future | onfault, current | future):  # MCL_ONFAULT: Linux >= 4.4
        if libc.mlockall(flags) == 0:
            return True, "" if flags & onfault else "without MCL_ONFAULT (every mapped page resident)"
        err = ctypes.get_errno()
        if err != errno.EINVAL:
            break
    return False, f"not permitted ({os.strerror(err)})"


def _has_ipc_lock() -> bool:
    """CAP_IPC_LOCK (bit 14) in this process's effective capabilities."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> 14 & 1)
    except (OSError, ValueError):
        pass
    return False
