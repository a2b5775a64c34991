"""realtime_episode (the collector frozen and off, memory locked where permitted, all restored after) and
the CPU affinity option."""

from __future__ import annotations

import argparse
import ctypes
import errno
import gc
import os

import pytest

from pearl_robot.control import realtime
from pearl_robot.control.realtime import parse_cpus, pin_cpus, realtime_episode
from pearl_robot.errors import PearlRobotError


class FakeLibc:
    """mlockall/munlockall that answer as told, recording the calls."""

    def __init__(self, error: int = 0, refuse_onfault: bool = False) -> None:
        self.error, self.refuse_onfault = error, refuse_onfault
        self.calls: list[str | int] = []

    def mlockall(self, flags: int) -> int:
        self.calls.append(flags)
        if self.error or (self.refuse_onfault and flags & 4):
            ctypes.set_errno(self.error or errno.EINVAL)
            return -1
        return 0

    def munlockall(self) -> int:
        self.calls.append("munlockall")
        return 0


@pytest.fixture
def libc(monkeypatch):
    """A permitted mlockall by default; each test sets the answer it needs."""
    fake = FakeLibc()
    monkeypatch.setattr(realtime, "_libc", lambda: fake)
    monkeypatch.setattr(realtime, "_has_ipc_lock", lambda: True)
    monkeypatch.setattr(realtime, "_memory_lock", None)  # asked once per process: once per test here
    return fake


@pytest.fixture(autouse=True)
def _restore_gc(monkeypatch):
    monkeypatch.setattr(realtime, "_memory_lock", None)  # each test asks the OS (or its fake) afresh
    yield
    gc.enable()
    gc.unfreeze()


def test_gc_is_frozen_and_off_inside_and_restored_after(libc):
    assert gc.isenabled() and gc.get_freeze_count() == 0
    survivor = [object() for _ in range(10)]
    with realtime_episode() as grant:
        assert not gc.isenabled()
        assert grant.gc_frozen and grant.frozen_objects > 0 and gc.get_freeze_count() > 0
        assert gc.is_tracked(survivor)  # still tracked, only frozen
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_restored_after_an_exception(libc):
    with pytest.raises(RuntimeError, match="fault"), realtime_episode() as grant:
        assert not gc.isenabled() and grant.memory_locked
        raise RuntimeError("fault mid-episode")
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert "munlockall" not in libc.calls  # kept locked: an unlock would delay the safe stop after a fault


def test_memory_locked_on_fault_once_per_process(libc):
    with realtime_episode() as grant:
        assert grant.memory_locked and grant.memory_lock_note == ""
        assert libc.calls == [1 | 2 | 4]  # MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT
    assert libc.calls == [7]
    with realtime_episode() as again:  # the next episode: still locked, not asked again
        assert again.memory_locked
    assert libc.calls == [7]


def test_an_old_kernel_without_onfault_locks_everything(libc):
    libc.refuse_onfault = True
    with realtime_episode() as grant:
        assert grant.memory_locked and "MCL_ONFAULT" in grant.memory_lock_note
    assert libc.calls == [7, 3]


def test_a_refused_mlock_is_reported_not_raised(libc):
    libc.error = errno.EPERM
    with realtime_episode() as grant:
        assert not grant.memory_locked and "not permitted" in grant.memory_lock_note
        assert grant.gc_frozen and not gc.isenabled()  # the rest still applies
    assert "munlockall" not in libc.calls and gc.isenabled()


def test_no_mlock_asked_under_a_memlock_limit_without_the_capability(libc, monkeypatch):
    import resource

    monkeypatch.setattr(realtime, "_has_ipc_lock", lambda: False)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (8192, 8192))
    with realtime_episode() as grant:
        assert not grant.memory_locked and "RLIMIT_MEMLOCK 8192" in grant.memory_lock_note
    assert libc.calls == []  # MCL_FUTURE under a limit could fail later allocations: never asked


def test_no_libc_is_tolerated(monkeypatch):
    monkeypatch.setattr(realtime, "_libc", lambda: None)
    with realtime_episode() as grant:
        assert not grant.memory_locked and grant.gc_frozen
    assert gc.isenabled()


def test_the_real_os_never_raises():
    with realtime_episode() as grant:
        assert grant.gc_frozen
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_disabled_collector_stays_disabled_and_others_frozen_objects_stay_frozen(libc):
    gc.freeze()
    frozen_before = gc.get_freeze_count()
    gc.disable()
    with realtime_episode():
        pass
    assert not gc.isenabled() and gc.get_freeze_count() >= frozen_before > 0


def test_nested_episodes_change_nothing_until_the_outer_one_ends(libc):
    with realtime_episode() as outer:
        with realtime_episode() as inner:
            assert inner is outer
        assert not gc.isenabled() and "munlockall" not in libc.calls
    assert gc.isenabled() and libc.calls == [7]


def test_disabled_changes_nothing(libc):
    with realtime_episode(enabled=False) as grant:
        assert gc.isenabled() and not grant.gc_frozen and not grant.memory_locked
    assert libc.calls == []


def test_parse_cpus():
    assert parse_cpus("2") == {2}
    assert parse_cpus("2,3") == {2, 3}
    assert parse_cpus("0-2,5") == {0, 1, 2, 5}
    for bad in ("", "a", "1,,", "-1", "3-x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_cpus(bad)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_pin_cpus_pins_and_refuses_a_cpu_that_is_not_there():
    before = os.sched_getaffinity(0)
    try:
        one = min(before)
        assert pin_cpus({one}) == str(one) and os.sched_getaffinity(0) == {one}
        with pytest.raises(PearlRobotError, match="--cpu 4095"):
            pin_cpus({4095})
    finally:
        os.sched_setaffinity(0, before)
