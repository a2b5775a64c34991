"""The joint-calibration logic on a mock arm moved by a scripted 'hand' (the virtual-bus test drives the
same procedure through the real serial path)."""

import threading
import time

import numpy as np
import pytest

from pearl_robot import open_robot
from pearl_robot.calibrate.joints import CalibrationError, JointCalibrationProcedure, JointCalibrationSettings
from pearl_robot.calibrate.model import Calibration, JointCalibration, load_calibration
from pearl_robot.calibrate.robot import CalibratedRobot, raw_spec
from pearl_robot.errors import ConfigError
from pearl_robot.robot.mock import MockRobot
from pearl_robot.robot.spec import load_spec

TICK = 2 * np.pi / 4096
HIDDEN_OFFSET = np.array([37, -120, 15, 64, -9]) * TICK
HIDDEN_DIRECTION = np.array([1, -1, 1, 1, 1])


class ScriptedHand:
    """Plays the operator: reads each instruction and moves the joints of a mock arm by hand."""

    def __init__(self, mock: MockRobot, spec) -> None:
        self.mock, self.spec = mock, spec
        self.true = np.zeros(spec.num_joints)

    def place(self, true: np.ndarray) -> None:
        self.true = true.copy()
        self.mock.position = HIDDEN_DIRECTION * true + HIDDEN_OFFSET

    def instruct(self, message: str):
        names = self.spec.joint_names
        if "calibration pose" in message and "Put the arm" in message:
            self.place(np.zeros(len(names)))
        elif "POSITIVE" in message:
            joint = next(i for i, n in enumerate(names) if f"Move {n} " in message)
            self._later(joint, +0.4)
        elif "back in its calibration pose" in message:
            joint = next(i for i, n in enumerate(names) if f"Put {n} " in message)
            self._later(joint, 0.0)
        elif "full range" in message:
            target = self.true.copy()
            target[:] = self.spec.position_max - 0.05
            self._later_all(target, then=self.spec.position_min + 0.05)
        return None

    def _later(self, joint: int, value: float) -> None:
        def move():
            time.sleep(0.1)
            true = self.true.copy()
            true[joint] = value
            self.place(true)

        threading.Thread(target=move, daemon=True).start()

    def _later_all(self, high, then) -> None:
        def move():
            time.sleep(0.1)
            self.place(high)
            time.sleep(0.2)
            self.place(then)
            time.sleep(0.2)
            self.place(np.zeros_like(high))

        threading.Thread(target=move, daemon=True).start()


FAST = JointCalibrationSettings(rest_time_s=0.1, range_sweep_s=0.8, step_timeout_s=5.0, samples_for_pose=3)


def test_offsets_directions_and_ranges_recovered():
    spec = load_spec()
    mock = MockRobot(spec)
    mock.connect()
    hand = ScriptedHand(mock, spec)
    calibration = JointCalibrationProcedure(mock, spec, hand, FAST).run()
    offsets, directions = calibration.arrays(spec)
    assert np.all(np.abs(offsets - HIDDEN_OFFSET) < TICK / 2)
    assert list(directions) == list(HIDDEN_DIRECTION)
    for joint in spec.joints:
        cal = calibration.joints[joint.name]
        assert cal.min_rad == pytest.approx(joint.min_rad + 0.05) and cal.max_rad == pytest.approx(joint.max_rad - 0.05)


def test_a_joint_that_never_moves_is_a_clear_error():
    spec = load_spec()
    mock = MockRobot(spec)
    mock.connect()

    class LazyOperator:
        def instruct(self, message):
            return lambda: True  # confirms at once without moving anything

    with pytest.raises(CalibrationError, match="joint1 moved only"):
        JointCalibrationProcedure(mock, spec, LazyOperator(), FAST).run()


def test_calibrated_robot_maps_raw_to_joint_angles(tmp_path):
    spec = load_spec()
    joints = {
        n: JointCalibration(float(o), int(d)) for n, o, d in zip(spec.joint_names, HIDDEN_OFFSET, HIDDEN_DIRECTION)
    }
    calibration = Calibration(spec.robot_id, joints, {j.name: j.servo_id for j in spec.joints})
    path = calibration.save(tmp_path / "cal.yaml")
    loaded = load_calibration(path)
    inner = MockRobot(raw_spec(spec, loaded))
    robot = CalibratedRobot(inner, spec, loaded)
    with robot:
        assert np.allclose(robot.read().position, spec.home_rad)  # raw home maps back to the joint home
        robot.enable()
        sent = robot.write(spec.home_rad + 0.05)
        assert np.allclose(sent, spec.home_rad + 0.05)
        assert np.allclose(inner.goal, HIDDEN_DIRECTION * (spec.home_rad + 0.05) + HIDDEN_OFFSET)


def test_missing_or_mismatched_calibration_refuses_to_enable(tmp_path):
    spec = load_spec()
    robot = open_robot("mock", calibration=tmp_path / "nope.yaml")
    with robot:
        robot.read()  # states stay readable for the calibration procedure
        with pytest.raises(ConfigError, match="not calibrated.*pearl-robot calibrate joints"):
            robot.enable()
    other = Calibration("another_arm", {n: JointCalibration() for n in spec.joint_names})
    path = other.save(tmp_path / "other.yaml")
    robot = open_robot("mock", calibration=path)
    with robot, pytest.raises(ConfigError, match="robot_id.*another_arm"):
        robot.enable()
    wrong_ids = Calibration.identity(spec)
    wrong_ids.servo_ids["joint3"] = 99
    path = wrong_ids.save(tmp_path / "ids.yaml")
    with open_robot("mock", calibration=path) as robot, pytest.raises(ConfigError, match="servo id 99"):
        robot.enable()
