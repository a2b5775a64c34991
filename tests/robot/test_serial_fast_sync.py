"""SerialRobot's state read through the real pty on both instructions: FAST SYNC READ where every servo's
firmware has it (chosen at connect), the plain SYNC READ otherwise or with ``?fast_sync_read=0``; the
same states either way. And the per-cycle goal arithmetic, bit for bit the numpy original's."""

import numpy as np
import pytest

from pearl_robot import open_robot
from pearl_robot.calibrate.model import Calibration
from pearl_robot.dynamixel.control_table import RAD_PER_TICK
from pearl_robot.errors import UnknownRobotError
from pearl_robot.robot.serial_robot import SerialRobot
from pearl_robot.robot.spec import load_spec

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def spec():
    return load_spec()


@pytest.fixture
def make_bus(spec, start_virtual_bus):
    return lambda **options: start_virtual_bus(spec, physics=False, return_delay_time=0, **options)


def cycles(robot, n=20):
    """Goals a few ticks apart each cycle (ideal servos follow at once): the states that came back."""
    home = robot.read().position.copy()
    seen = []
    for k in range(n):
        goal = home.copy()
        goal[0] += (k % 4) * 3 * RAD_PER_TICK
        sent = robot.write(goal)
        state = robot.read()
        assert not state.faults
        seen.append((sent[0], state.position[0]))
    return seen


@pytest.mark.parametrize(
    "options, firmware, expected",
    [
        ({}, None, "fast_sync_read"),  # the model's firmware (46): every servo has it
        ({"fast_sync_read": 0}, None, "sync_read"),  # turned off
        ({}, 44, "sync_read"),  # older than the e-manual's v45: the fallback
    ],
    ids=["fast", "turned-off", "old-firmware"],
)
def test_the_state_read_is_chosen_at_connect_and_gives_the_same_states(make_bus, spec, options, firmware, expected):
    bus = make_bus(firmware_version=firmware)
    with SerialRobot(spec, bus.device_path, timeout_margin_ms=20.0, **options) as robot:
        assert robot.state_read == expected
        robot.enable()
        for sent, read in cycles(robot):
            assert read == pytest.approx(sent, abs=0.5 * RAD_PER_TICK)
        stats = robot.stats_dict()
    assert stats["bus_retries"] == 0 and stats.get("stale_reads", 0) == 0


def test_one_servo_without_it_means_sync_read_for_all(make_bus, spec):
    bus = make_bus()
    bus.servo(14).set("firmware_version", 44)
    with SerialRobot(spec, bus.device_path, timeout_margin_ms=20.0) as robot:
        assert robot.state_read == "sync_read"
        robot.enable()
        cycles(robot, 5)


def test_the_option_in_the_robot_address(make_bus, spec):
    bus = make_bus()
    calibration = Calibration.identity(spec)
    for value, expected in (("0", "sync_read"), ("false", "sync_read"), ("1", "fast_sync_read")):
        robot = open_robot(
            f"{bus.address}?fast_sync_read={value}", spec, calibration=calibration, timeout_margin_ms=20.0
        )
        with robot:
            assert robot.unwrapped().state_read == expected
            robot.read()
    with pytest.raises(UnknownRobotError, match="fast_sync_read"):
        open_robot(f"{bus.address}?fast_sync_read=2", spec, calibration=calibration)


def test_goal_ticks_are_bit_for_bit_rad_to_ticks(spec):
    robot = SerialRobot(spec, "/dev/null")
    rng = np.random.default_rng(0)
    for trial in range(5000):
        robot._set_tick_limits(rng.choice([0.0, 100.0, 2047.0], 5), rng.choice([4095.0, 3000.0, 500.0], 5))
        present = [None, rng.integers(-200, 4300, 5), rng.integers(-(2**31), 2**31, 5)][trial % 3]
        robot._last_ticks = None if present is None else present.astype(float).tolist()
        targets = rng.normal(0.0, 2.5, 5) if trial % 2 else (rng.integers(0, 4096, 5) - 2047.5) * RAD_PER_TICK
        lo, hi = spec.position_min, spec.position_max
        if present is not None:
            rad = robot.ticks_to_rad(present)
            lo, hi = np.minimum(lo, rad), np.maximum(hi, rad)
        assert robot._goal_ticks(targets) == robot.rad_to_ticks(targets, lo, hi).tolist()
