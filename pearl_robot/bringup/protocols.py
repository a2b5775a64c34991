"""What bring-up needs to know of a servo protocol, one object per ``bus.protocol`` of a hardware YAML.

``doctor`` and ``setup-servo`` are written once, against ``BusProtocol``; ``DYNAMIXEL`` (Protocol 2.0,
X-series) and ``FEETECH`` (SCS/STS) bring how to open the bus, the baud rates and their codes, the id
scan, model lookup by number, the names of the error status bits, how an EEPROM item is written and
kept (Feetech: through the Lock register), reboot (Feetech has none) and a new servo's factory id and
baud rate. Control table items are named by their snake_case names on both.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from pearl_robot.dynamixel import protocol as dxl_proto
from pearl_robot.dynamixel.bus import DynamixelBus
from pearl_robot.dynamixel.control_table import BAUD_RATES as DXL_BAUD_RATES
from pearl_robot.dynamixel.control_table import MODELS_BY_NUMBER as DXL_MODELS_BY_NUMBER
from pearl_robot.dynamixel.control_table import common_address, hardware_error_names
from pearl_robot.dynamixel.control_table import control_table as dxl_control_table
from pearl_robot.errors import ConfigError
from pearl_robot.feetech import protocol as ft_proto
from pearl_robot.feetech.bus import EEPROM_COMMIT_S, FeetechBus
from pearl_robot.feetech.control_table import BAUD_RATES as FT_BAUD_RATES
from pearl_robot.feetech.control_table import MODELS as FT_MODELS
from pearl_robot.feetech.control_table import MODELS_BY_NUMBER as FT_MODELS_BY_NUMBER
from pearl_robot.feetech.control_table import control_table as ft_control_table
from pearl_robot.robot.feetech_robot import feedback_items
from pearl_robot.robot.spec import RobotSpec
from pearl_robot.servo_bus import CommError, ServoBusBase

Table = Any  # a ControlTable of the protocol (FeetechControlTable on Feetech)


@dataclass(frozen=True)
class BusProtocol:
    name: str  # the YAML's bus.protocol
    family: str  # the servos it scans for, in messages
    baud_rates: dict[int, int]  # Baud Rate register value -> bits per second
    scan_bauds: tuple[int, ...]  # the rates a scan tries
    max_id: int  # the highest id a servo can be given
    factory_id: int  # how a new servo answers
    factory_baud: int
    ping_bytes: int  # a PING and its status packet, on the wire
    error_item: str  # the control table item with the error status bits
    eeprom_commit_ms: float = 0.0  # extra time an EEPROM write may take to answer

    @property
    def baud_codes(self) -> dict[int, int]:
        """Bits per second -> Baud Rate register value."""
        return {bps: code for code, bps in self.baud_rates.items()}

    @property
    def can_reboot(self) -> bool:
        return False

    @property
    def clear_error_advice(self) -> str:
        """How a servo's latched error status is cleared once its cause is removed."""
        raise NotImplementedError

    def open(self, device: str, baudrate: int, **options: Any) -> ServoBusBase:
        raise NotImplementedError

    def broadcast_ping(self, bus: Any, wait_s: float | None) -> dict[int, tuple[int, int]]:
        """Every servo that answers: id -> (model number, firmware version)."""
        raise NotImplementedError

    def identify(self, bus: Any, servo_id: int) -> tuple[int, int]:
        """(model number, firmware version) of one servo; CommError if it does not answer."""
        raise NotImplementedError

    def model_table(self, number: int | None) -> Table | None:
        raise NotImplementedError

    def table_for(self, model: str) -> Table:
        """The table of a model as the YAML names it; KeyError if this protocol has no such model."""
        raise NotImplementedError

    def model_label(self, number: int | None) -> str | None:
        if number is None:
            return None
        table = self.model_table(number)
        return table.model if table else f"unknown model {number}"

    def canonical_model(self, model: str) -> str:
        try:
            return self.table_for(model).model
        except KeyError:
            return model

    def error_names(self, bits: int) -> list[str]:
        raise NotImplementedError

    def state_block(self, spec: RobotSpec) -> tuple[int, int]:
        """(address, length) of the state the control loop sync-reads every cycle."""
        raise NotImplementedError

    def read(self, bus: Any, servo_id: int, table: Table, name: str) -> int:
        raise NotImplementedError

    def write(self, bus: Any, servo_id: int, table: Table, name: str, value: int) -> None:
        """Write one item so that it stays (an EEPROM item over a power cycle)."""
        raise NotImplementedError

    def write_raw(self, bus: Any, servo_id: int, table: Table, name: str, value: int) -> None:
        """Write one item, nothing else (between ``unlock`` and ``lock``: the ID and Baud Rate writes)."""
        raise NotImplementedError

    def unlock(self, bus: Any, servo_id: int, table: Table) -> None:
        """Make EEPROM writes that follow stay over a power cycle (nothing to do on Dynamixel)."""

    def lock(self, bus: Any, servo_id: int, table: Table) -> None:
        """The end of what ``unlock`` began."""

    def reboot(self, bus: Any, servo_id: int) -> None:
        raise NotImplementedError


class _Dynamixel(BusProtocol):
    @property
    def can_reboot(self) -> bool:
        return True

    @property
    def clear_error_advice(self) -> str:
        return "then REBOOT the servo: pearl-robot doctor --yes"

    def open(self, device: str, baudrate: int, **options: Any) -> DynamixelBus:
        return DynamixelBus.open(device, baudrate, **options)

    def broadcast_ping(self, bus: DynamixelBus, wait_s: float | None) -> dict[int, tuple[int, int]]:
        return bus.broadcast_ping(wait_s)

    def identify(self, bus: DynamixelBus, servo_id: int) -> tuple[int, int]:
        model, firmware, _ = bus.ping(servo_id)
        return model, firmware

    def model_table(self, number: int | None) -> Table | None:
        return DXL_MODELS_BY_NUMBER.get(number) if number is not None else None

    def table_for(self, model: str) -> Table:
        return dxl_control_table(model)

    def error_names(self, bits: int) -> list[str]:
        return hardware_error_names(bits)

    def state_block(self, spec: RobotSpec) -> tuple[int, int]:
        return 126, 10  # present current (or load), velocity, position on X-series

    def read(self, bus: DynamixelBus, servo_id: int, table: Table, name: str) -> int:
        return bus.read_value(servo_id, table[name])

    def write(self, bus: DynamixelBus, servo_id: int, table: Table, name: str, value: int) -> None:
        bus.write_value(servo_id, table[name], value)

    write_raw = write

    def reboot(self, bus: DynamixelBus, servo_id: int) -> None:
        bus.reboot(servo_id)


_MODEL_ADDRESS = 3  # Model Number on every Feetech servo (the byte order is the model's own)


class _Feetech(BusProtocol):
    @property
    def clear_error_advice(self) -> str:
        return "then switch the servo's power off and on (Feetech servos have no REBOOT)"

    def open(self, device: str, baudrate: int, **options: Any) -> FeetechBus:
        return FeetechBus.open(device, baudrate, **options)

    def broadcast_ping(self, bus: FeetechBus, wait_s: float | None) -> dict[int, tuple[int, int]]:
        """A Feetech PING answers without the model: each id that answered is read for it."""
        found = {}
        for servo_id in bus.broadcast_ping(wait_s):
            with contextlib.suppress(CommError):  # it answered a ping, not a read: left out, as if silent
                found[servo_id] = self.identify(bus, servo_id)
        return found

    def identify(self, bus: FeetechBus, servo_id: int) -> tuple[int, int]:
        data = bus.read(servo_id, 0, _MODEL_ADDRESS + 2)  # firmware (0) .. model number (3, 2 bytes)
        return self._model_number(data[_MODEL_ADDRESS:]), data[0]

    @staticmethod
    def _model_number(data: bytes) -> int:
        """The model number in whichever byte order names a known model (STS little, SCS big endian)."""
        for table in FT_MODELS.values():
            if table.decode_raw(data) == table.model_number:
                return table.model_number
        return int.from_bytes(data, "little")

    def model_table(self, number: int | None) -> Table | None:
        return FT_MODELS_BY_NUMBER.get(number) if number is not None else None

    def table_for(self, model: str) -> Table:
        return ft_control_table(model)

    def error_names(self, bits: int) -> list[str]:
        return ft_proto.error_names(bits)

    def state_block(self, spec: RobotSpec) -> tuple[int, int]:
        """The block ``FeetechRobot`` sync-reads (Present Position on) for the YAML's models."""
        try:
            tables = [self.table_for(j.model) for j in spec.joints]
        except KeyError as exc:
            raise ConfigError(spec.source, "joints", str(exc.args[0])) from None
        block = common_address(tables, feedback_items(tables[0]))
        if block is None:
            raise ConfigError(spec.source, "joints", "every servo of one arm needs the same feedback layout")
        return block

    def read(self, bus: FeetechBus, servo_id: int, table: Table, name: str) -> int:
        bus.tables[servo_id] = table
        return bus.read_value(servo_id, name)

    def write(self, bus: FeetechBus, servo_id: int, table: Table, name: str, value: int) -> None:
        """An EEPROM item through the Lock (unlock, write, relock): the value survives a power cycle."""
        bus.tables[servo_id] = table
        if table[name].eeprom:
            bus.write_eeprom(servo_id, name, value)
        else:
            bus.write_value(servo_id, name, value)

    def write_raw(self, bus: FeetechBus, servo_id: int, table: Table, name: str, value: int) -> None:
        bus.tables[servo_id] = table
        bus.write_value(servo_id, name, value)

    def unlock(self, bus: FeetechBus, servo_id: int, table: Table) -> None:
        self.write_raw(bus, servo_id, table, "lock", 0)

    def lock(self, bus: FeetechBus, servo_id: int, table: Table) -> None:
        self.write_raw(bus, servo_id, table, "lock", 1)

    def reboot(self, bus: FeetechBus, servo_id: int) -> None:
        raise NotImplementedError("Feetech servos have no REBOOT instruction")


DYNAMIXEL = _Dynamixel(
    name="dynamixel",
    family="X-series",
    baud_rates=dict(DXL_BAUD_RATES),
    scan_bauds=tuple(b for b in DXL_BAUD_RATES.values() if b >= 57_600),  # 9600 is slow: left out
    max_id=dxl_proto.MAX_ID,
    factory_id=1,
    factory_baud=57_600,
    ping_bytes=dxl_proto.instruction_packet_size(0) + dxl_proto.status_packet_size(3),
    error_item="hardware_error_status",
)
FEETECH = _Feetech(
    name="feetech",
    family="Feetech SCS/STS",
    baud_rates=dict(FT_BAUD_RATES),
    scan_bauds=tuple(FT_BAUD_RATES.values()),
    max_id=ft_proto.MAX_ID,
    factory_id=1,
    factory_baud=1_000_000,  # STS3215
    ping_bytes=2 * ft_proto.packet_size(0),
    error_item="status",  # the same bits as a status packet's error byte
    eeprom_commit_ms=EEPROM_COMMIT_S * 1e3,
)
PROTOCOLS: dict[str, BusProtocol] = {p.name: p for p in (DYNAMIXEL, FEETECH)}


def protocol_for(spec: RobotSpec | None) -> BusProtocol:
    """The protocol of a hardware YAML's bus (Dynamixel without one)."""
    if spec is None:
        return DYNAMIXEL
    try:
        return PROTOCOLS[spec.bus.protocol]
    except KeyError:
        raise ConfigError(
            spec.source, "bus.protocol", f"bring-up speaks {', '.join(PROTOCOLS)}, not {spec.bus.protocol!r}"
        ) from None
