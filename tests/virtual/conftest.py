"""Fixtures that start a real virtual servo bus on a pty (and always stop it)."""

import dataclasses

import pytest

from pearl_robot.dynamixel.bus import DynamixelBus
from pearl_robot.dynamixel.control_table import XM430_W210
from pearl_robot.robot.spec import load_spec
from pearl_robot.virtual import IdealPlant, VirtualServo, VirtualServoBus


@pytest.fixture
def spec():
    return load_spec()


@pytest.fixture
def make_bus(spec, start_virtual_bus):
    """``make_bus(**from_spec options)``: a started bus on the shipped arm, stopped at teardown."""
    return lambda **options: start_virtual_bus(spec, **options)


@pytest.fixture
def make_client():
    opened = []

    def make(bus, **options):
        options.setdefault("timeout_margin_ms", 50.0)
        client = DynamixelBus.open(bus.device_path, **options)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


@pytest.fixture
def emanual_bus():
    """Two XM430-W210 (firmware 38) with ids 1 and 2 holding the e-manual's example values:
    Present Position 166 and 2079, input voltage 11.9 V, temperature 36 C, both at 1 Mbps (Baud Rate 3;
    a VirtualServo starts at the factory 57600)."""
    table = dataclasses.replace(XM430_W210, firmware_version=38)
    plant = IdealPlant([0.0, 0.0])
    servos = [
        VirtualServo(table, 1, plant, 0, hidden_offset_ticks=166 - 2048),
        VirtualServo(table, 2, plant, 1, hidden_offset_ticks=2079 - 2048),
    ]
    for servo in servos:
        servo.set("return_delay_time", 0)
        servo.set("baud_rate", 3)
        servo.input_voltage, servo.temperature = 119, 36
    bus = VirtualServoBus(servos, plant).start()
    yield bus
    bus.stop()
