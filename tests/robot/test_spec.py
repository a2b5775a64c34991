import textwrap
from pathlib import Path

import numpy as np
import pytest

from pearl_robot.errors import ConfigError
from pearl_robot.paths import hardware_dir
from pearl_robot.robot.spec import load_spec

GOOD = (hardware_dir() / "openmanipulator_x.yaml").read_text()


def test_shipped_arm_loads():
    spec = load_spec()
    assert spec.robot_id == "openmanipulator_x"
    assert spec.joint_names == ("joint1", "joint2", "joint3", "joint4", "gripper")
    assert [j.servo_id for j in spec.joints] == [11, 12, 13, 14, 15]
    assert {j.model for j in spec.joints} == {"XM430-W350"}
    assert spec.bus.baudrate == 1_000_000 and spec.bus.protocol == "dynamixel"
    assert spec.period_s == pytest.approx(0.05)
    assert list(spec.arm_joint_indices) == [0, 1, 2, 3]
    assert spec.mjcf is not None and spec.mjcf.exists()
    assert np.all(spec.position_min < spec.position_max)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "arm.yaml"
    path.write_text(text)
    return path


def mutate(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new).replace("../sim/", str(hardware_dir().parent / "sim") + "/")


@pytest.mark.parametrize(
    ("old", "new", "field", "reason"),
    [
        ("id: 12,", "id: 11,", "joints", "duplicate servo_id"),
        ("min_rad: -1.790, max_rad: 1.571", "min_rad: 1.6, max_rad: 1.571", "joints[1].max_rad", "greater than"),
        ("control_rate_hz: 20", "control_rate_hz: -5", "control_rate_hz", "> 0"),
        ("control_rate_hz: 20", "control_rate_hz: fast", "control_rate_hz", "expected"),
        ("baudrate: 1000000", "baudrate: lots", "bus.baudrate", "positive integer"),
        ("protocol: 2.0", "protocol: 1.0", "bus.protocol", "Protocol 2.0"),
        ("home_rad: [0.0, -1.0, 0.3, 0.7, 0.0]", "home_rad: [0.0]", "home_rad", "one per joint"),
        ("home_rad: [0.0, -1.0, 0.3, 0.7, 0.0]", "home_rad: [0.0, -3.0, 0.3, 0.7, 0.0]", "home_rad", "inside"),
        ("role: gripper,", "role: wrist,", "joints[4].role", "one of"),
        ("max_velocity_rad_s: 2.0}", "max_velocity_rad_s: 2.0, colour: red}", "joints[0].colour", "unknown field"),
        ("robot_id: openmanipulator_x", "robot_name: x", "robot_id", "missing"),
        ("mjcf: ../sim/openmanipulator_x.xml", "mjcf: ../sim/nope.xml", "sim.mjcf", "not found"),
    ],
)
def test_bad_files_name_file_field_and_reason(tmp_path, old, new, field, reason):
    path = write(tmp_path, mutate(old, new))
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message and f"'{field}'" in message and reason in message


def test_malformed_yaml_reports_line(tmp_path):
    path = write(tmp_path, "robot_id: x\njoints: [\n  {name: a,\n")
    with pytest.raises(ConfigError, match=r"malformed YAML") as err:
        load_spec(path)
    assert "line" in str(err.value)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_spec(write(tmp_path, "- just\n- a list\n"))


def test_a_users_own_arm_needs_no_code(tmp_path):
    text = textwrap.dedent(
        """
        robot_id: my_two_link
        control_rate_hz: 50
        joints:
          - {name: shoulder, id: 1, model: XL430-W250, min_rad: -1.0, max_rad: 1.0, max_velocity_rad_s: 1.0}
          - {name: elbow, id: 2, model: XL430-W250, min_rad: -1.0, max_rad: 1.0, max_velocity_rad_s: 1.0}
        """
    )
    spec = load_spec(write(tmp_path, text))
    assert spec.joint_names == ("shoulder", "elbow") and spec.period_s == pytest.approx(0.02)
    assert spec.mjcf is None


def test_unknown_joint_name_is_clear():
    with pytest.raises(ConfigError, match="unknown joint 'elbow'"):
        load_spec().joint_index("elbow")
