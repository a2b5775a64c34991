"""The joint calibration procedure on the SO-101 through FeetechRobot: the virtual Feetech bus with
servos mounted at hidden offsets and one reversed, moved by the calibration tests' scripted operator;
the calibration found makes open_robot read and command the true joint angles."""

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pearl_robot import open_robot
from pearl_robot.calibrate.joints import JointCalibrationProcedure, JointCalibrationSettings, led_indicator
from pearl_robot.feetech.control_table import STS_RAD_PER_TICK as TICK
from pearl_robot.robot.feetech_robot import FeetechRobot
from pearl_robot.robot.spec import load_spec
from pearl_robot.virtual import virtual_bus_from_spec

sys.path.insert(0, str(Path(__file__).parents[1] / "calibrate"))  # the calibration tests' operator, shared
from calibration_helpers import ScriptedOperator  # noqa: E402

pytestmark = pytest.mark.timeout(120)
MARGIN_MS = 20.0
HIDDEN_OFFSETS_TICKS = [37, -120, 15, 64, -9, 200]
HIDDEN_DIRECTIONS = [1, -1, 1, 1, 1, 1]


def test_joint_calibration_on_the_so101(tmp_path):
    spec = load_spec("so101")
    pose = np.array([0.3, -0.5, 0.4, 0.2, 0.0, 0.3])
    bus = virtual_bus_from_spec(
        spec,
        initial_position_rad=pose,
        hidden_offsets_ticks=HIDDEN_OFFSETS_TICKS,
        hidden_directions=HIDDEN_DIRECTIONS,
    ).start()
    operator = ScriptedOperator(bus, spec, pose).start()
    try:
        settings = JointCalibrationSettings(rest_time_s=0.2, range_sweep_s=3.0, step_timeout_s=10.0, samples_for_pose=5)
        with FeetechRobot(spec, bus.device_path, timeout_margin_ms=MARGIN_MS) as raw:
            assert led_indicator(raw) is None  # an STS3215 has no LED: the procedure cues by text only
            calibration = JointCalibrationProcedure(raw, spec, operator, settings, calibration_pose_rad=pose).run()
        assert operator.errors == []
        assert [int(v) for v in bus.observe("torque_enable")] == [0] * 6  # torque stayed off throughout
        offsets, directions = calibration.arrays(spec)
        assert np.abs(offsets / TICK - HIDDEN_OFFSETS_TICKS).max() < 1.0
        assert list(directions) == HIDDEN_DIRECTIONS
        path = calibration.save(tmp_path / "so101.yaml")
        operator.stop()
        true = np.array([0.5, -0.3, 0.6, -0.4, 0.2, 0.5])
        with open_robot(bus.address, spec, calibration=path, timeout_margin_ms=MARGIN_MS) as robot:
            bus.hand.pose(true, speed_rad_s=None)
            time.sleep(0.05)
            assert np.abs(robot.read().position - true).max() <= 1.01 * TICK
            robot.enable()
            bus.hand.release()
            target = true + np.array([0.05, -0.05, 0.05, 0.05, 0.0, 0.0])
            for _ in range(10):
                robot.write(target)
                time.sleep(spec.period_s)
            assert np.abs(bus.plant.goal - target).max() <= TICK  # the true joints' goals
    finally:
        operator.stop()
        bus.hand.release()
        bus.stop()
