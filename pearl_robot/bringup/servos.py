"""What is on the bus, servo by servo, against the hardware YAML: from the scan, then each servo's
Return Delay Time, error status (Dynamixel's Hardware Error Status, Feetech's Status) and torque read
at the baud rate it answered at, through the bus's ``BusProtocol``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pearl_robot.bringup.link import ScanResult
from pearl_robot.bringup.protocols import DYNAMIXEL, BusProtocol
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
    protocol: BusProtocol = field(default=DYNAMIXEL, repr=False)

    @property
    def found(self) -> bool:
        return bool(self.bauds)

    @property
    def table(self) -> Any | None:
        return self.protocol.model_table(self.model_number)

    @property
    def model(self) -> str | None:
        return self.protocol.model_label(self.model_number)

    @property
    def return_delay_us(self) -> float | None:
        if self.return_delay_time is None:
            return None
        if self.table is None:
            return None
        scale = self.table["return_delay_time"].scale  # seconds per unit: 2 us on both protocols
        return round(self.return_delay_time * scale * 1e6, 1)

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
            "hardware_error_names": self.protocol.error_names(self.hardware_error or 0),
            "torque_enabled": self.torque_enabled,
        }


def from_scan(
    spec: RobotSpec, scan: list[ScanResult], baudrate: int, protocol: BusProtocol = DYNAMIXEL
) -> dict[int, ServoReport]:
    """One report per YAML id and per id that answered, in id order."""
    servos = {
        j.servo_id: ServoReport(j.servo_id, True, j.name, protocol.canonical_model(j.model), protocol=protocol)
        for j in spec.joints
    }
    for result in scan:
        for servo_id, (model_number, firmware) in result.found.items():
            servo = servos.setdefault(servo_id, ServoReport(servo_id, False, protocol=protocol))
            if servo.baud is None or result.baud == baudrate:
                servo.model_number, servo.firmware, servo.baud = model_number, firmware, result.baud
            servo.bauds += (result.baud,)
    return dict(sorted(servos.items()))


def inspect(bus: Any, servo: ServoReport) -> None:
    """Return Delay Time, error status and Torque Enable of a servo of a known model."""
    table, protocol = servo.table, servo.protocol
    if table is None:
        return
    servo.return_delay_time = protocol.read(bus, servo.servo_id, table, "return_delay_time")
    servo.hardware_error = protocol.read(bus, servo.servo_id, table, protocol.error_item)
    servo.torque_enabled = bool(protocol.read(bus, servo.servo_id, table, "torque_enable"))
