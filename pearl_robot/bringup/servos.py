"""What is on the bus, servo by servo, against the hardware YAML: from the scan, then each servo's
Return Delay Time, Hardware Error Status and torque read at the baud rate it answered at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pearl_robot.bringup.link import ScanResult
from pearl_robot.dynamixel.bus import DynamixelBus
from pearl_robot.dynamixel.control_table import (
    MODELS_BY_NUMBER,
    SECONDS_PER_RETURN_DELAY_UNIT,
    ControlTable,
    control_table,
    hardware_error_names,
)
from pearl_robot.robot.spec import RobotSpec


@dataclass
class ServoReport:
    servo_id: int
    expected: bool  # named in the hardware YAML
    joint: str | None = None
    expected_model: str | None = None
    model_number: int | None = None
    firmware: int | None = None
    bauds: tuple[int, ...] = ()  # every baud rate it answered at
    baud: int | None = None  # where it was inspected: the arm's rate if it answered there
    return_delay_time: int | None = None  # raw, 2 us units
    hardware_error: int | None = None
    torque_enabled: bool | None = None

    @property
    def found(self) -> bool:
        return bool(self.bauds)

    @property
    def table(self) -> ControlTable | None:
        return MODELS_BY_NUMBER.get(self.model_number) if self.model_number is not None else None

    @property
    def model(self) -> str | None:
        if self.model_number is None:
            return None
        return self.table.model if self.table else f"unknown model {self.model_number}"

    @property
    def return_delay_us(self) -> float | None:
        if self.return_delay_time is None:
            return None
        return round(self.return_delay_time * SECONDS_PER_RETURN_DELAY_UNIT * 1e6, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "expected": self.expected,
            "joint": self.joint,
            "model": self.model,
            "model_number": self.model_number,
            "expected_model": self.expected_model,
            "firmware": self.firmware,
            "baud": self.baud,
            "bauds": list(self.bauds),
            "return_delay_us": self.return_delay_us,
            "hardware_error": self.hardware_error,
            "hardware_error_names": hardware_error_names(self.hardware_error or 0),
            "torque_enabled": self.torque_enabled,
        }


def _model_name(model: str) -> str:
    try:
        return control_table(model).model
    except KeyError:
        return model


def from_scan(spec: RobotSpec, scan: list[ScanResult], baudrate: int) -> dict[int, ServoReport]:
    """One report per YAML id and per id that answered, in id order."""
    servos = {j.servo_id: ServoReport(j.servo_id, True, j.name, _model_name(j.model)) for j in spec.joints}
    for result in scan:
        for servo_id, (model_number, firmware) in result.found.items():
            servo = servos.setdefault(servo_id, ServoReport(servo_id, False))
            if servo.baud is None or result.baud == baudrate:
                servo.model_number, servo.firmware, servo.baud = model_number, firmware, result.baud
            servo.bauds += (result.baud,)
    return dict(sorted(servos.items()))


def inspect(bus: DynamixelBus, servo: ServoReport) -> None:
    """Return Delay Time, Hardware Error Status and Torque Enable of a servo of a known model."""
    table = servo.table
    if table is None:
        return
    servo.return_delay_time = bus.read_value(servo.servo_id, table["return_delay_time"])
    servo.hardware_error = bus.read_value(servo.servo_id, table["hardware_error_status"])
    servo.torque_enabled = bool(bus.read_value(servo.servo_id, table["torque_enable"]))
