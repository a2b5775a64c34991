import numpy as np
import pytest

from pearl_robot import open_robot
from pearl_robot.errors import LifecycleError, UnknownRobotError
from pearl_robot.robot.base import Lifecycle
from pearl_robot.robot.registry import parse_robot_name


def test_open_robot_names():
    assert parse_robot_name("sim") == ("sim", "")
    assert parse_robot_name("serial:/dev/ttyUSB0") == ("serial", "/dev/ttyUSB0")
    assert parse_robot_name("tcp://127.0.0.1:5555") == ("tcp", "tcp://127.0.0.1:5555")
    assert parse_robot_name("ipc:///tmp/arm") == ("ipc", "ipc:///tmp/arm")
    with pytest.raises(UnknownRobotError, match="unknown robot 'ur5'.*sim, mock"):
        open_robot("ur5")
    with pytest.raises(UnknownRobotError, match="need a device"):
        open_robot("serial:")


@pytest.mark.parametrize("safe", [False, True])
def test_lifecycle_and_refusals(backend, safe):
    robot = open_robot(backend, safe=safe)
    n = robot.spec.num_joints
    assert robot.lifecycle is Lifecycle.UNCONFIGURED
    with pytest.raises(LifecycleError, match="connected"):
        robot.read()
    with pytest.raises(LifecycleError, match="INACTIVE"):
        robot.enable()
    robot.connect()
    assert robot.lifecycle is Lifecycle.INACTIVE
    with pytest.raises(LifecycleError, match="UNCONFIGURED"):
        robot.connect()
    state = robot.read()
    assert state.position.shape == (n,) and state.velocity.shape == (n,) and state.ok
    with pytest.raises(LifecycleError, match="refused unless ACTIVE"):
        robot.write(state.position)
    robot.enable()
    assert robot.lifecycle is Lifecycle.ACTIVE
    with pytest.raises(LifecycleError, match="INACTIVE"):
        robot.enable()
    sent = robot.write(state.position)
    assert sent.shape == (n,)
    robot.disable()
    assert robot.lifecycle is Lifecycle.INACTIVE
    with pytest.raises(LifecycleError, match="refused unless ACTIVE"):
        robot.write(state.position)
    robot.close()
    robot.close()  # idempotent
    assert robot.lifecycle is Lifecycle.CLOSED
    with pytest.raises(LifecycleError):
        robot.read()


def test_context_manager_closes_on_error(backend):
    robot = open_robot(backend)
    with pytest.raises(RuntimeError), robot:
        robot.enable()
        raise RuntimeError("user code failed")
    assert robot.lifecycle is Lifecycle.CLOSED
    assert not robot.unwrapped().torque_enabled


def test_enable_never_jumps(backend):
    """A stale goal from before enable() must not move the arm: goal := present first."""
    robot = open_robot(backend, safe=False)
    with robot:
        inner = robot
        start = robot.read().position.copy()
        if backend == "sim":
            inner.data.ctrl[:] = start + 0.5  # a stale goal left in the controller
        else:
            inner.goal = start + 0.5
        robot.enable()
        robot.write(robot.read().position)
        for _ in range(5):
            robot.write(start)
        assert np.max(np.abs(robot.read().position - start)) < 0.02


def test_sim_torque_off_goes_limp():
    """Torque off is real: with zero actuator stiffness gravity pulls the arm away from its pose."""
    robot = open_robot("sim", safe=False)
    with robot:
        robot.enable()
        start = robot.read().position.copy()
        for _ in range(10):
            robot.write(start)
        held = robot.read().position.copy()
        robot.disable()
        robot.unwrapped().step_idle(10)
        assert np.max(np.abs(robot.read().position - held)) > 0.05


def test_backend_options_in_the_robot_name():
    from pearl_robot.robot.registry import split_options

    assert split_options("serial:/dev/ttyUSB0?timeout_margin_ms=20&retries=5") == (
        "serial:/dev/ttyUSB0",
        {"timeout_margin_ms": 20, "retries": 5},
    )
    assert split_options("sim") == ("sim", {})
    with pytest.raises(UnknownRobotError, match="not KEY=VALUE"):
        split_options("sim?oops")
    with pytest.raises(UnknownRobotError, match="has no option 'colour'"):
        open_robot("sim?colour=red")
