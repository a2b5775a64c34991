"""A servo of another model than the hardware file's, found at connect through the real pty virtual bus:
one clear error naming the joint, the id and both models, and the arm left torque off."""

import dataclasses

import pytest
from dxl_models_helpers import spec_tables, with_models

from pearl_robot.dynamixel.control_table import XL330_M288
from pearl_robot.errors import ConfigError
from pearl_robot.robot.base import Lifecycle
from pearl_robot.robot.serial_robot import SerialRobot

pytestmark = pytest.mark.timeout(60)
MARGIN_MS = 20.0
TORQUE_ENABLE = 64


def torque_on(bus, servo_id: int) -> None:
    """Torque on as a client would turn it on (the servo and its plant both)."""
    assert bus.servo(servo_id).write_range(TORQUE_ENABLE, b"\x01") == 0
    assert bus.servo(servo_id).torque_on


def test_a_wrong_model_names_joint_id_and_both_models_and_leaves_torque_off(koch, chain_bus):
    bus = chain_bus(spec_tables(koch), [j.servo_id for j in koch.joints])
    for joint in koch.joints:  # a previous session left the arm holding (on_close="hold")
        torque_on(bus, joint.servo_id)
    wrong = with_models(koch, {"elbow_flex": "XL430-W250"})
    robot = SerialRobot(wrong, bus.device_path, timeout_margin_ms=MARGIN_MS)
    with pytest.raises(ConfigError) as caught:
        robot.connect()
    message = str(caught.value)
    assert "field 'joints[2].model'" in message
    assert (
        "servo elbow_flex (id 3) reports model number 1200 (XL330-M288), "
        "but the hardware file has XL430-W250 (model number 1060)" in message
    )
    assert "torque is off" in message and "\n" not in message
    assert robot.lifecycle is Lifecycle.UNCONFIGURED
    assert not any(bus.servo(j.servo_id).torque_on for j in koch.joints)
    assert not bus.plant.torque.any()
    with pytest.raises(Exception, match="needs an INACTIVE robot"):
        robot.enable()


def test_every_wrong_servo_is_in_the_one_error(koch, chain_bus):
    bus = chain_bus(spec_tables(koch), [j.servo_id for j in koch.joints])
    wrong = with_models(koch, {"shoulder_pan": "XM430-W350", "gripper": "XC330-M288"})
    with pytest.raises(ConfigError, match=r"joints\[0\]\.model") as caught:
        SerialRobot(wrong, bus.device_path, timeout_margin_ms=MARGIN_MS).connect()
    message = str(caught.value)
    assert "servo shoulder_pan (id 1) reports model number 1060 (XL430-W250)" in message
    assert "has XM430-W350 (model number 1020)" in message
    assert "servo gripper (id 6) reports model number 1200 (XL330-M288)" in message
    assert "has XC330-M288 (model number 1240)" in message
    assert "elbow_flex" not in message


def test_a_servo_of_a_model_nobody_here_knows_is_named_by_number_and_left_alone(koch, chain_bus):
    tables = spec_tables(koch)
    tables[3] = dataclasses.replace(XL330_M288, model="XX999", model_number=4242)
    bus = chain_bus(tables, [j.servo_id for j in koch.joints])
    torque_on(bus, 4)
    torque_on(bus, 1)
    with pytest.raises(ConfigError) as caught:
        SerialRobot(koch, bus.device_path, timeout_margin_ms=MARGIN_MS).connect()
    message = str(caught.value)
    assert "servo wrist_flex (id 4) reports model number 4242 (a model this project does not know)" in message
    assert bus.servo(4).torque_on  # its Torque Enable may not be at 64: nothing is written to it
    assert not bus.servo(1).torque_on  # the known models are turned off


def test_the_right_models_connect_and_a_speed_a_model_lacks_is_refused(koch, chain_bus):
    bus = chain_bus(spec_tables(koch), [j.servo_id for j in koch.joints])
    robot = SerialRobot(koch, bus.device_path, timeout_margin_ms=MARGIN_MS)
    with robot:
        assert robot.lifecycle is Lifecycle.INACTIVE
        assert robot.state_read == "bulk_read"
    fast = dataclasses.replace(koch, bus=dataclasses.replace(koch.bus, baudrate=4_500_000))
    with pytest.raises(ConfigError, match=r"bus\.baudrate.*XL330-M288 \(elbow_flex\) cannot talk at 4500000 bps"):
        SerialRobot(fast, bus.device_path)
