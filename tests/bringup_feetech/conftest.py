"""Bring-up commands on a Feetech bus (the SO-101's STS3215): the CLI in-process against virtual Feetech
buses on real ptys, always stopped."""

import json

import pytest
import yaml
from waiting import FAST_SCAN

from pearl_robot.feetech.control_table import STS3215
from pearl_robot.robot.spec import load_spec
from pearl_robot.virtual import IdealPlant, VirtualFeetechBus
from pearl_robot.virtual.feetech_servo import VirtualFeetechServo


@pytest.fixture
def spec():
    return load_spec("so101")  # six STS3215, ids 1-6, 1 Mbps


@pytest.fixture
def make_arm(spec, start_virtual_bus):
    """``make_arm(spec=None, **from_spec options)``: a started virtual SO-101 bus (ideal plant, joints at
    zero), picked by the factory from the YAML's bus.protocol; stopped at teardown."""

    def make(arm_spec=None, **options):
        options.setdefault("physics", False)
        options.setdefault("initial_position_rad", [0.0] * spec.num_joints)
        bus = start_virtual_bus(arm_spec or spec, **options)
        assert isinstance(bus, VirtualFeetechBus)
        return bus

    return make


@pytest.fixture
def make_servos():
    """``make_servos((id, baud code), ...)``: loose factory STS3215 servos on one bus, as on a bench."""
    started = []

    def make(*servos):
        plant = IdealPlant([0.0] * max(1, len(servos)))
        chain = []
        for i, (servo_id, baud_code) in enumerate(servos):
            servo = VirtualFeetechServo(STS3215, servo_id, plant, i)
            servo.set("baud_rate", baud_code)
            servo.save_eeprom()
            chain.append(servo)
        bus = VirtualFeetechBus(chain, plant).start()
        started.append(bus)
        return bus

    yield make
    for bus in started:
        bus.stop()


@pytest.fixture
def edited_yaml(spec, tmp_path):
    """``edited_yaml(edit)``: a copy of so101.yaml changed by ``edit(data)``, as a path (no sim: the
    MJCF would not match)."""

    def make(edit):
        data = yaml.safe_load(spec.source.read_text())
        data.pop("sim")
        edit(data)
        path = tmp_path / f"edited{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return make


@pytest.fixture
def doctor(cli):
    """``doctor(bus, *options, hardware="so101")`` -> (exit code, the --json report), with 20 ms of
    deadline margin: a loaded test machine must not look like a bad cable."""

    def run(bus, *options, hardware="so101"):
        robot = f"{bus.address}?timeout_margin_ms=20"
        argv = ("doctor", "--robot", robot, "--hardware", hardware, "--json", *FAST_SCAN, "--cycles", 50, *options)
        code, out, err = cli(*argv)
        assert out, err
        return code, json.loads(out)

    return run
