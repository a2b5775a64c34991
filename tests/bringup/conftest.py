"""Bring-up commands through the CLI against virtual servo buses on real ptys (always stopped)."""

import json

import pytest
from waiting import FAST_SCAN

from pearl_robot.dynamixel.control_table import XM430_W350
from pearl_robot.robot.spec import load_spec
from pearl_robot.virtual import IdealPlant, VirtualServo, VirtualServoBus


@pytest.fixture
def spec():
    return load_spec()


@pytest.fixture
def make_bus(spec, start_virtual_bus):
    """``make_bus(**from_spec options)``: the shipped arm (ids 11..15, ideal plant), stopped at teardown."""
    return lambda **options: start_virtual_bus(spec, **{"physics": False, **options})


@pytest.fixture
def make_servos():
    """``make_servos((id, baud code, table), ...)``: a bus of loose servos, as on an assembly bench."""
    started = []

    def make(*servos):
        plant = IdealPlant([0.0] * max(1, len(servos)))
        chain = []
        for i, (servo_id, baud_code, *table) in enumerate(servos):
            servo = VirtualServo(table[0] if table else XM430_W350, servo_id, plant, i)
            servo.set("baud_rate", baud_code)
            chain.append(servo)
        bus = VirtualServoBus(chain, plant).start()
        started.append(bus)
        return bus

    yield make
    for bus in started:
        bus.stop()


@pytest.fixture
def doctor(cli):
    """``doctor(bus, *options)`` -> (exit code, the --json report). The deadlines get 20 ms of margin
    (``robot=`` overrides): a loaded test machine must not look like a bad cable."""

    def run(bus, *options, robot=None):
        robot = robot or f"{bus.address}?timeout_margin_ms=20"
        code, out, err = cli("doctor", "--robot", robot, "--json", *FAST_SCAN, "--cycles", 50, *options)
        assert out, err
        return code, json.loads(out)

    return run
