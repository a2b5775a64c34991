"""Control tables of Dynamixel X-series servos, as data: one place for every address and size.

Transcribed from the ROBOTIS e-manual pages of each model (EEPROM area 0-63, RAM area 64 on).
Items in the EEPROM area can only be written while Torque Enable (64) is 0; the device answers an
Access Error otherwise. ``Field.minimum``/``maximum`` are the documented value ranges; a write
outside them is a Data Range Error. ``scale`` converts one raw unit to SI (rad, rad/s, A, s, V).

Hardware quirks worth knowing (all from the e-manual):
- Present Position = actual position + Homing Offset (20). In Position Control Mode only offsets
  within +-1024 take effect. Reverse mode (Drive Mode bit 0) inverts Goal/Present Position but not
  the sign of the Homing Offset.
- Return Delay Time (9) is in 2 us units and defaults to 250 (500 us): a servo waits that long before
  every status packet. Arms usually set it to 0; ``SerialRobot`` does (see its options).
- Status Return Level (68): 0 answers PING only, 1 also READ, 2 every instruction.
- A hardware error sets the alert bit (0x80) of every status packet; Hardware Error Status (70) says
  which. Errors enabled in Shutdown (63) also clear Torque Enable, and only a REBOOT restores it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

RAD_PER_TICK = 2 * math.pi / 4096  # X-series: 4096 ticks per revolution
CENTER_TICKS = 2048  # the middle of the single-turn range; 0 rad at the joint by convention
RAD_S_PER_VELOCITY_UNIT = 0.229 * 2 * math.pi / 60  # 0.229 rev/min
AMPS_PER_CURRENT_UNIT = 0.00269  # 2.69 mA (XM430)
SECONDS_PER_RETURN_DELAY_UNIT = 2e-6


class OperatingMode(enum.IntEnum):
    CURRENT = 0
    VELOCITY = 1
    POSITION = 3
    EXTENDED_POSITION = 4
    CURRENT_BASED_POSITION = 5
    PWM = 16


POSITION_MODES = frozenset(
    {OperatingMode.POSITION, OperatingMode.EXTENDED_POSITION, OperatingMode.CURRENT_BASED_POSITION}
)


class HardwareError(enum.IntFlag):
    """Bits of Hardware Error Status (70) and Shutdown (63)."""

    INPUT_VOLTAGE = 0x01
    OVERHEATING = 0x04
    MOTOR_ENCODER = 0x08
    ELECTRICAL_SHOCK = 0x10
    OVERLOAD = 0x20


HARDWARE_ERROR_NAMES = {
    HardwareError.INPUT_VOLTAGE: "input voltage",
    HardwareError.OVERHEATING: "overheating",
    HardwareError.MOTOR_ENCODER: "motor encoder",
    HardwareError.ELECTRICAL_SHOCK: "electrical shock",
    HardwareError.OVERLOAD: "overload",
}


def hardware_error_names(bits: int) -> list[str]:
    return [name for flag, name in HARDWARE_ERROR_NAMES.items() if bits & flag]


class DriveMode(enum.IntFlag):
    REVERSE = 0x01  # CCW negative: Goal/Present Position inverted
    TIME_BASED_PROFILE = 0x04
    TORQUE_ON_BY_GOAL_UPDATE = 0x08


# Baud Rate (8) value -> bits per second
BAUD_RATES: dict[int, int] = {
    0: 9_600,
    1: 57_600,
    2: 115_200,
    3: 1_000_000,
    4: 2_000_000,
    5: 3_000_000,
    6: 4_000_000,
    7: 4_500_000,
}


@dataclass(frozen=True)
class Field:
    name: str
    address: int
    size: int  # bytes: 1, 2 or 4
    access: str  # "R" or "RW"
    default: int = 0  # value at power-on / factory reset
    minimum: int | None = None  # documented range of a writable item
    maximum: int | None = None
    signed: bool = False
    scale: float = 1.0  # SI per raw unit
    unit: str = ""

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def writable(self) -> bool:
        return "W" in self.access

    @property
    def eeprom(self) -> bool:
        return self.address < 64

    def in_range(self, value: int) -> bool:
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)


@dataclass(frozen=True)
class ControlTable:
    model: str
    model_number: int
    fields: tuple[Field, ...]
    firmware_version: int = 46
    # The first firmware with FAST SYNC READ (0x8A); None: the model has none. The e-manual (Protocol 2.0,
    # "Fast Sync Read"): X430/540 series from v45 (2XL/2XC never), X330 from v46.
    fast_sync_read_firmware: int | None = 45
    # electrical and mechanical figures at 12 V (spec sheet), used by the virtual servo
    stall_torque_nm: float = 4.1
    stall_current_a: float = 2.3
    no_load_speed_rpm: float = 46.0
    _by_name: dict[str, Field] = field(default_factory=dict, repr=False, compare=False)
    _by_byte: tuple[Field | None, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {f.name: f for f in self.fields}
        if len(by_name) != len(self.fields):
            raise ValueError(f"{self.model}: duplicate field names")
        size = max(f.end for f in self.fields)
        by_byte: list[Field | None] = [None] * size
        for f in self.fields:
            for a in range(f.address, f.end):
                if by_byte[a] is not None:
                    raise ValueError(f"{self.model}: {f.name} overlaps {by_byte[a].name} at address {a}")
                by_byte[a] = f
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_by_byte", tuple(by_byte))

    def has_fast_sync_read(self, firmware: int) -> bool:
        """Does a servo of this model running ``firmware`` answer FAST SYNC READ?"""
        return self.fast_sync_read_firmware is not None and firmware >= self.fast_sync_read_firmware

    def __getitem__(self, name: str) -> Field:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.model} has no control table item '{name}'") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def size(self) -> int:
        """One past the last documented address."""
        return len(self._by_byte)

    def field_at(self, address: int) -> Field | None:
        """The item that holds byte ``address`` (None in gaps and past the end)."""
        return self._by_byte[address] if 0 <= address < len(self._by_byte) else None

    def fields_in(self, address: int, length: int) -> list[Field]:
        """Items touched by the byte range [address, address + length), in address order."""
        seen: dict[str, Field] = {}
        for a in range(max(0, address), min(address + length, self.size)):
            f = self._by_byte[a]
            if f is not None:
                seen.setdefault(f.name, f)
        return list(seen.values())

    def encode(self, name: str, value: int) -> bytes:
        f = self[name]
        return int(value).to_bytes(f.size, "little", signed=f.signed)

    def decode(self, name: str, data: bytes) -> int:
        return int.from_bytes(data, "little", signed=self[name].signed)


# ---- the X-series layout ------------------------------------------------------------------------
def _indirect_fields() -> list[Field]:
    out: list[Field] = []
    # Indirect Address 1-28 at 168.., Data 1-28 at 224..; Address 29-56 at 578.., Data 29-56 at 634..
    for first, addr_base, data_base in ((1, 168, 224), (29, 578, 634)):
        for k in range(28):
            n = first + k
            out.append(Field(f"indirect_address_{n}", addr_base + 2 * k, 2, "RW", data_base + k, 64, 661))
            out.append(Field(f"indirect_data_{n}", data_base + k, 1, "RW", 0, 0, 255))
    return out


def _x430_fields(
    *,
    temperature_limit: int,
    voltage_limits: tuple[int, int, int, int],  # max default, min default, range lo, range hi
    velocity_limit: int,
    velocity_i_gain: int,
    position_d_gain: int,
    position_p_gain: int,
    current_control: bool,
) -> list[Field]:
    vmax_default, vmin_default, vlo, vhi = voltage_limits
    v = RAD_S_PER_VELOCITY_UNIT
    fields = [
        # EEPROM area
        Field("model_number", 0, 2, "R"),
        Field("model_information", 2, 4, "R"),
        Field("firmware_version", 6, 1, "R"),
        Field("id", 7, 1, "RW", 1, 0, 252),
        Field("baud_rate", 8, 1, "RW", 1, 0, 7),
        Field("return_delay_time", 9, 1, "RW", 250, 0, 254, scale=SECONDS_PER_RETURN_DELAY_UNIT, unit="s"),
        Field("drive_mode", 10, 1, "RW", 0, 0, 13),
        Field("operating_mode", 11, 1, "RW", 3, 0, 16),
        Field("secondary_id", 12, 1, "RW", 255, 0, 255),
        Field("protocol_type", 13, 1, "RW", 2, 1, 2),
        Field("homing_offset", 20, 4, "RW", 0, -1_044_479, 1_044_479, signed=True, scale=RAD_PER_TICK, unit="rad"),
        Field("moving_threshold", 24, 4, "RW", 10, 0, 1023, scale=v, unit="rad/s"),
        Field("temperature_limit", 31, 1, "RW", temperature_limit, 0, 100, unit="degC"),
        Field("max_voltage_limit", 32, 2, "RW", vmax_default, vlo, vhi, scale=0.1, unit="V"),
        Field("min_voltage_limit", 34, 2, "RW", vmin_default, vlo, vhi, scale=0.1, unit="V"),
        Field("pwm_limit", 36, 2, "RW", 885, 0, 885, scale=0.113 / 100),
    ]
    if current_control:
        fields.append(Field("current_limit", 38, 2, "RW", 1193, 0, 1193, scale=AMPS_PER_CURRENT_UNIT, unit="A"))
    fields += [
        Field("velocity_limit", 44, 4, "RW", velocity_limit, 0, 1023, scale=v, unit="rad/s"),
        Field("max_position_limit", 48, 4, "RW", 4095, 0, 4095, scale=RAD_PER_TICK, unit="rad"),
        Field("min_position_limit", 52, 4, "RW", 0, 0, 4095, scale=RAD_PER_TICK, unit="rad"),
    ]
    if not current_control:
        fields.append(Field("startup_configuration", 60, 1, "RW", 0, 0, 3))
    fields += [
        Field("shutdown", 63, 1, "RW", 52, 0, 255),
        # RAM area
        Field("torque_enable", 64, 1, "RW", 0, 0, 1),
        Field("led", 65, 1, "RW", 0, 0, 1),
        Field("status_return_level", 68, 1, "RW", 2, 0, 2),
        Field("registered_instruction", 69, 1, "R"),
        Field("hardware_error_status", 70, 1, "R"),
        Field("velocity_i_gain", 76, 2, "RW", velocity_i_gain, 0, 16383),
        Field("velocity_p_gain", 78, 2, "RW", 100, 0, 16383),
        Field("position_d_gain", 80, 2, "RW", position_d_gain, 0, 16383),
        Field("position_i_gain", 82, 2, "RW", 0, 0, 16383),
        Field("position_p_gain", 84, 2, "RW", position_p_gain, 0, 16383),
        Field("feedforward_2nd_gain", 88, 2, "RW", 0, 0, 16383),
        Field("feedforward_1st_gain", 90, 2, "RW", 0, 0, 16383),
        Field("bus_watchdog", 98, 1, "RW", 0, 0, 127, signed=True, scale=0.020, unit="s"),  # -1: it fired
        Field("goal_pwm", 100, 2, "RW", 885, -885, 885, signed=True, scale=0.113 / 100),
    ]
    if current_control:
        fields.append(
            Field("goal_current", 102, 2, "RW", 0, -1193, 1193, signed=True, scale=AMPS_PER_CURRENT_UNIT, unit="A")
        )
    fields += [
        Field("goal_velocity", 104, 4, "RW", 0, -1023, 1023, signed=True, scale=v, unit="rad/s"),
        Field("profile_acceleration", 108, 4, "RW", 0, 0, 32767),
        Field("profile_velocity", 112, 4, "RW", 0, 0, 32767, scale=v, unit="rad/s"),
        Field("goal_position", 116, 4, "RW", 0, -1_048_575, 1_048_575, signed=True, scale=RAD_PER_TICK, unit="rad"),
        Field("realtime_tick", 120, 2, "R", scale=0.001, unit="s"),
        Field("moving", 122, 1, "R"),
        Field("moving_status", 123, 1, "R"),
        Field("present_pwm", 124, 2, "R", signed=True, scale=0.113 / 100),
    ]
    if current_control:
        fields.append(Field("present_current", 126, 2, "R", signed=True, scale=AMPS_PER_CURRENT_UNIT, unit="A"))
    else:
        fields.append(Field("present_load", 126, 2, "R", signed=True, scale=0.001, unit="fraction of max torque"))
    fields += [
        Field("present_velocity", 128, 4, "R", signed=True, scale=v, unit="rad/s"),
        Field("present_position", 132, 4, "R", signed=True, scale=RAD_PER_TICK, unit="rad"),
        Field("velocity_trajectory", 136, 4, "R", signed=True, scale=v, unit="rad/s"),
        Field("position_trajectory", 140, 4, "R", signed=True, scale=RAD_PER_TICK, unit="rad"),
        Field("present_input_voltage", 144, 2, "R", scale=0.1, unit="V"),
        Field("present_temperature", 146, 1, "R", unit="degC"),
    ]
    if not current_control:
        fields.append(Field("backup_ready", 147, 1, "R"))
    return fields + _indirect_fields()


def _xm430(model: str, model_number: int, stall_torque_nm: float, no_load_speed_rpm: float) -> ControlTable:
    fields = _x430_fields(
        temperature_limit=80,
        voltage_limits=(160, 95, 95, 160),
        velocity_limit=200,
        velocity_i_gain=1920,
        position_d_gain=0,
        position_p_gain=800,
        current_control=True,
    )
    return ControlTable(
        model,
        model_number,
        tuple(fields),
        stall_torque_nm=stall_torque_nm,
        stall_current_a=2.3,
        no_load_speed_rpm=no_load_speed_rpm,
    )


XM430_W350 = _xm430("XM430-W350", 1020, stall_torque_nm=4.1, no_load_speed_rpm=46.0)
XM430_W210 = _xm430("XM430-W210", 1030, stall_torque_nm=3.0, no_load_speed_rpm=77.0)
XL430_W250 = ControlTable(
    "XL430-W250",
    1060,
    tuple(
        _x430_fields(
            temperature_limit=72,
            voltage_limits=(140, 60, 60, 140),
            velocity_limit=265,
            velocity_i_gain=1000,
            position_d_gain=4000,
            position_p_gain=640,
            current_control=False,
        )
    ),
    stall_torque_nm=1.5,
    stall_current_a=1.4,
    no_load_speed_rpm=61.0,
)

MODELS: dict[str, ControlTable] = {t.model: t for t in (XM430_W350, XM430_W210, XL430_W250)}
MODELS_BY_NUMBER: dict[int, ControlTable] = {t.model_number: t for t in MODELS.values()}


def control_table(model: str) -> ControlTable:
    """The table for a model name as written in the hardware YAML (``XM430-W350``; a ``-T``/``-R``
    interface suffix is accepted)."""
    key = model.upper()
    for suffix in ("-T", "-R"):
        if key.endswith(suffix) and key[: -len(suffix)] in MODELS:
            key = key[: -len(suffix)]
    try:
        return MODELS[key]
    except KeyError:
        raise KeyError(f"unknown Dynamixel model '{model}' (known: {', '.join(sorted(MODELS))})") from None


def common_address(tables: Iterable[ControlTable], names: Iterable[str]) -> tuple[int, int] | None:
    """(address, length) of the contiguous block holding ``names`` if every table lays them out the
    same way (so one SYNC READ/WRITE covers every servo); None otherwise."""
    tables = list(tables)
    names = list(names)
    spans = set()
    for t in tables:
        fs = [t[n] for n in names]
        start, end = min(f.address for f in fs), max(f.end for f in fs)
        spans.add((start, end - start))
    return spans.pop() if len(spans) == 1 else None
