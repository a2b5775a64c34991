"""Virtual buses of the new Dynamixel models on a real pty (always stopped)."""

import pytest

from pearl_robot.dynamixel.control_table import ControlTable
from pearl_robot.robot.spec import RobotSpec, load_spec
from pearl_robot.virtual import IdealPlant, VirtualServo, VirtualServoBus

ONE_MBPS = 3  # Baud Rate (8) value


@pytest.fixture
def koch() -> RobotSpec:
    return load_spec("koch")


@pytest.fixture
def chain_bus():
    """``chain_bus(tables, ids)``: a started bus of one servo per table (ideal plant, 1 Mbps, no return
    delay), as a chain of those models would be wired; stopped at teardown."""
    started = []

    def start(tables: list[ControlTable], ids: list[int], positions: list[float] | None = None) -> VirtualServoBus:
        plant = IdealPlant(positions or [0.0] * len(tables))
        servos = []
        for k, (table, servo_id) in enumerate(zip(tables, ids)):
            servo = VirtualServo(table, servo_id, plant, k)
            servo.set("baud_rate", ONE_MBPS)
            servo.set("return_delay_time", 0)
            servos.append(servo)
        bus = VirtualServoBus(servos, plant).start()
        started.append(bus)
        return bus

    yield start
    for bus in started:
        bus.stop()
