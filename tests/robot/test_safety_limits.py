"""SafeRobot is never bypassed: a joint resting outside its limits, non-numeric commands, an idle arm."""

import logging
import re
import time

import numpy as np
import pytest

from pearl_robot import open_robot
from pearl_robot.robot.mock import MockRobot
from pearl_robot.robot.safety import SafeRobot
from pearl_robot.robot.sim import SimRobot
from pearl_robot.robot.spec import load_spec

JOINT4 = 3
RESTING = 2.52  # joint4's limit is 2.042


class GoalLog(MockRobot):
    """A mock that records every goal it is sent."""

    def __init__(self, spec) -> None:
        super().__init__(spec)
        self.goals: list[np.ndarray] = []

    def _enable(self) -> None:
        super()._enable()
        self.goals.append(self.goal.copy())

    def _write(self, targets: np.ndarray) -> np.ndarray:
        self.goals.append(targets.copy())
        return super()._write(targets)


@pytest.fixture
def clock():
    now = [0.0]
    tick = lambda: now[0]  # noqa: E731
    tick.advance = lambda periods: now.__setitem__(0, now[0] + periods * load_spec().period_s)
    return tick


def resting_outside(clock) -> SafeRobot:
    """A SafeRobot on a mock whose joint4 rests at 2.52 rad, enabled."""
    inner = GoalLog(load_spec())
    robot = SafeRobot(inner, watchdog=False, clock=clock)
    robot.connect()
    position = inner.spec.home_rad.copy()
    position[JOINT4] = RESTING
    inner.teleport(position)
    robot.enable()
    return robot


def test_a_joint_outside_its_limits_is_reported_at_enable(clock, caplog):
    with caplog.at_level(logging.WARNING, logger="pearl_robot.robot.safety"):
        robot = resting_outside(clock)
    (joint,) = robot.outside_limits
    assert joint.joint == "joint4" and joint.excess_rad == pytest.approx(RESTING - 2.042)
    assert str(joint) == (
        "joint4 rests at 2.520 rad, outside [-1.791, 2.042] by 0.478 rad; "
        "it will be moved into range at 0.1 rad per step"
    )
    assert caplog.messages == [str(joint)]
    assert robot.events["outside_limits_at_enable"] == 1
    robot.disable()
    robot.inner.teleport(robot.spec.home_rad)
    robot.enable()
    assert robot.outside_limits == ()


def test_it_is_brought_into_range_one_capped_step_at_a_time(clock):
    robot = resting_outside(clock)
    home = robot.spec.home_rad
    for _ in range(12):  # the policy asks for home at once
        robot.write(home)
    goals = np.array(robot.inner.goals)
    assert goals[0, JOINT4] == RESTING  # enable: goal := present
    assert np.all(np.abs(np.diff(goals, axis=0)) <= robot.step_cap + 1e-12)
    steps = int(np.ceil((RESTING - robot.spec.position_max[JOINT4]) / robot.step_cap[JOINT4]))
    assert robot.events["moving_into_range"] == steps
    assert np.all(goals[steps + 1 :, JOINT4] <= robot.spec.position_max[JOINT4])
    assert robot.read().position[JOINT4] <= robot.spec.position_max[JOINT4]


@pytest.mark.parametrize("hold", ["estop", "watchdog"])
def test_holding_outside_the_limits_holds_where_it_is(clock, hold):
    robot = resting_outside(clock)
    robot.write(robot.spec.home_rad)  # one step in: 2.42
    if hold == "estop":
        robot.estop("test")
        robot.write(robot.spec.home_rad)  # refused: holds
    else:
        clock.advance(robot.watchdog_periods + 0.1)
        assert robot.watchdog_check()
    goals = np.array(robot.inner.goals)
    assert np.all(np.abs(np.diff(goals, axis=0)) <= robot.step_cap + 1e-12)
    assert goals[-1, JOINT4] == pytest.approx(RESTING - robot.step_cap[JOINT4])  # not clamped to 2.042


NOT_NUMBERS = [
    True,
    np.ones(5, dtype=bool),
    [True, 0.0, 0.0, 0.0, 0.0],
    None,
    [0.0, None, 0.0, 0.0, 0.0],
    np.array([0.0, 0.0, 0.0, 0.0, "a"], dtype=object),
    [0.0, 0.0, 0.0, 0.0, object()],
    "bananas",
    [[0.0, 0.0], [0.0]],
]


def stable_id(value) -> str:
    """repr without memory addresses, so every collection (one per xdist worker) names the case alike."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


@pytest.mark.parametrize("command", NOT_NUMBERS, ids=stable_id)
def test_non_numeric_commands_are_refused(backend, command):
    inner = MockRobot(load_spec()) if backend == "mock" else SimRobot(load_spec())
    with SafeRobot(inner) as robot:
        robot.enable()
        held = robot.write(robot.read().position)
        assert np.array_equal(robot.write(command), held)
        assert robot.events["command_refused_type"] == 1


@pytest.mark.parametrize("command", NOT_NUMBERS, ids=stable_id)
def test_backends_refuse_non_numeric_targets(command):
    with MockRobot(load_spec()) as robot:
        robot.enable()
        with pytest.raises(ValueError, match="must be int or float numbers, not"):
            robot.write(command)
        assert robot.writes_received == 0


def test_numbers_of_any_numeric_type_are_accepted():
    with MockRobot(load_spec()) as robot:
        robot.enable()
        robot.write([0, -1, np.float32(0.3), np.int64(0), 0.0])
        robot.write(np.zeros(5, dtype=np.float16))


def test_keepalive_once_per_period_while_holding(clock):
    spec = load_spec()
    robot = SafeRobot(MockRobot(spec), watchdog=False, clock=clock)
    with robot:
        robot.enable()
        robot.write(robot.read().position)
        clock.advance(robot.watchdog_periods + 0.1)
        assert robot.watchdog_check()
        held = robot._last_sent.copy()
        writes = robot.inner.writes_received
        for n in range(1, 4):  # once per period
            clock.advance(0.6)
            assert not robot.watchdog_check() and robot.events["keepalive"] == n - 1
            clock.advance(0.6)
            assert not robot.watchdog_check() and robot.events["keepalive"] == n
        assert robot.inner.writes_received == writes + 3
        assert np.array_equal(robot.inner.goal, held)  # the same goal: no motion
        robot.write(held)  # commands resume: no more keepalives
        for _ in range(4):
            clock.advance(0.45)
            robot.watchdog_check()
        assert robot.events["keepalive"] == 3 and robot.events["watchdog_hold"] == 1


def test_keepalive_thread_on_a_realtime_robot():
    robot = open_robot("mock", safety={"watchdog": True})
    period = robot.spec.period_s
    with robot:
        robot.enable()
        robot.write(robot.read().position)
        time.sleep(period * (robot.watchdog_periods + 4.5))
        assert robot.events["watchdog_hold"] == 1
        assert 3 <= robot.events["keepalive"] <= 5
        robot.write(robot.read().position)
        keepalives = robot.events["keepalive"]
        for _ in range(6):  # a running policy: no keepalives
            time.sleep(period / 2)
            robot.write(robot.read().position)
        assert robot.events["keepalive"] == keepalives
        assert robot.events["watchdog_error"] == 0
