"""Every safety rule, on both in-process backends (the serial and ZeroMQ backends have their own)."""

import time

import numpy as np
import pytest

from pearl_robot import open_robot
from pearl_robot.errors import RobotFault
from pearl_robot.robot.mock import MockRobot
from pearl_robot.robot.safety import SafeRobot
from pearl_robot.robot.sim import SimRobot
from pearl_robot.robot.spec import load_spec


@pytest.fixture
def safe(backend):
    spec = load_spec()
    inner = MockRobot(spec) if backend == "mock" else SimRobot(spec)
    robot = SafeRobot(inner)
    robot.connect()
    robot.enable()
    yield robot
    robot.close()


def test_every_backend_is_safe_by_default(backend):
    assert isinstance(open_robot(backend), SafeRobot)


def test_position_limits_clamp(safe):
    spec = safe.spec
    target = safe.read().position.copy()
    for _ in range(100):  # walk far past the upper limit
        sent = safe.write(target + 10.0)
        assert np.all(sent <= spec.position_max + 1e-12)
        target = sent
    assert np.allclose(sent, spec.position_max)
    assert safe.events["position_clamped"] > 0


def test_per_step_cap(safe):
    before = safe.read().position.copy()
    sent = safe.write(before + np.array([1.0, -1.0, 0.5, 0.0, 0.0]))
    step = np.abs(sent - before)
    assert np.all(step <= safe.step_cap + 1e-12)
    assert step[0] == pytest.approx(safe.step_cap[0])
    assert safe.events["step_capped"] == 1


@pytest.mark.parametrize(
    ("command", "event"),
    [
        ([np.nan, 0, 0, 0, 0], "command_refused_nonfinite"),
        ([np.inf, 0, 0, 0, 0], "command_refused_nonfinite"),
        ([0.0, 0.1], "command_refused_shape"),
        ("bananas", "command_refused_type"),
        (np.zeros((5, 1)), "command_refused_shape"),
    ],
)
def test_bad_commands_hold_and_count(safe, command, event):
    before = safe.read().position.copy()
    held = safe.write(before)
    for _ in range(3):
        sent = safe.write(command)
        assert np.array_equal(sent, held)
    assert safe.events[event] == 3
    assert np.max(np.abs(safe.read().position - before)) < 0.02


def test_watchdog_holds_present_position(backend):
    spec = load_spec()
    fake_now = [0.0]
    inner = MockRobot(spec) if backend == "mock" else SimRobot(spec)
    robot = SafeRobot(inner, watchdog=False, clock=lambda: fake_now[0])
    with robot:
        robot.enable()
        start = robot.read().position.copy()
        robot.write(start + 0.05)
        fake_now[0] += spec.period_s * 1.5
        assert not robot.watchdog_check()  # within N periods: nothing happens
        fake_now[0] += spec.period_s * 1.0
        assert robot.watchdog_check()  # past 2 periods: hold
        assert robot.events["watchdog_hold"] == 1
        assert not robot.watchdog_check()  # counted once per silence
        # the hold target is where the arm was, not the last command
        assert np.max(np.abs(robot._last_sent - robot.read().position)) < 0.06
        robot.write(start)
        fake_now[0] += spec.period_s * 3
        assert robot.watchdog_check()
        assert robot.events["watchdog_hold"] == 2


def test_watchdog_thread_fires_on_realtime_backends(backend):
    robot = open_robot(backend, safety={"watchdog": True})
    with robot:
        robot.enable()
        robot.write(robot.read().position)
        time.sleep(robot.spec.period_s * 4)
        assert robot.events["watchdog_hold"] == 1


def test_lockstep_sims_run_no_watchdog_by_default():
    """Simulated time stands still between commands, so a training pause must not move the sim."""
    robot = open_robot("sim")
    assert robot.watchdog_enabled is False


def test_estop_latches_until_cleared(safe):
    start = safe.read().position.copy()
    safe.estop("test")
    assert safe.estopped
    for _ in range(3):
        sent = safe.write(start + 0.1)
        assert np.max(np.abs(sent - start)) < 0.02
    assert safe.events["command_refused_estop"] == 3
    safe.disable()
    with pytest.raises(RobotFault, match="e-stop latched"):
        safe.enable()
    safe.clear_estop()
    safe.enable()
    sent = safe.write(start + 0.05)
    assert np.allclose(sent, start + 0.05, atol=0.03)


def test_joint_error_stops_the_arm():
    robot = SafeRobot(MockRobot(load_spec()))
    with robot:
        robot.enable()
        start = robot.read().position.copy()
        robot.inner.faults.joint_error = "joint2"
        state = robot.read()
        assert [f.kind for f in state.faults] == ["joint_error"] and state.faults[0].joint == "joint2"
        assert robot.estopped and "joint_error[joint2]" in robot.estop_reason
        sent = robot.write(start + 0.1)
        assert np.allclose(sent, start)
        assert robot.events["fault_stop"] == 1


def test_stale_reads_counted_then_stop():
    robot = SafeRobot(MockRobot(load_spec()))
    with robot:
        robot.enable()
        robot.read()
        robot.inner.faults.stale_reads = True
        for _ in range(robot.watchdog_periods):
            assert "stale_read" in {f.kind for f in robot.read().faults}
        assert not robot.estopped
        robot.read()
        assert robot.estopped and robot.events["stale_read"] == robot.watchdog_periods + 1


def test_dropped_writes_are_visible_in_state():
    robot = SafeRobot(MockRobot(load_spec()))
    with robot:
        robot.enable()
        start = robot.read().position.copy()
        robot.inner.faults.dropped_writes = True
        robot.write(start + 0.05)
        assert np.allclose(robot.read().position, start)  # the arm never saw it
        robot.inner.faults.dropped_writes = False
        robot.write(start + 0.05)
        assert np.allclose(robot.read().position, start + 0.05, atol=1e-9)
