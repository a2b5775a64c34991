"""Control tables of Dynamixel X-series servos, as data: one place for every address and size.

Transcribed from the ROBOTIS e-manual pages of each model (emanual.robotis.com/docs/en/dxl/x/<model>/,
whose sources are ROBOTIS-GIT/emanual docs/en/dxl/x/<model>.md, and _data/dxl_x_info.yml for the stall
torque, stall current and no-load speed): XM430-W350, XM430-W210, XL430-W250, XH430-W350 and XM540-W270
(12 V), XL330-M288, XL330-M077 and XC330-M288 (5 V). EEPROM area 0-63, RAM area 64 on.
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
- The X330s count current in 1 mA (the X430/X540 in 2.69 mA), accept Baud Rate 0-6 (no 4.5 Mbps),
  and keep 20 Indirect Data items at 208-227 where the X430/X540 keep 56 at 224-251 and 634-661: a
  chain of both reads an indirect block with BULK READ (one address per servo), not SYNC READ.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

RAD_PER_TICK = 2 * math.pi / 4096  # X-series: 4096 ticks per revolution
CENTER_TICKS = 2048  # the middle of the single-turn range; 0 rad at the joint by convention
RAD_S_PER_VELOCITY_UNIT = 0.229 * 2 * math.pi / 60  # 0.229 rev/min
AMPS_PER_CURRENT_UNIT = 0.00269  # 2.69 mA (X430/X540; the X330 counts 1 mA)
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
    # electrical and mechanical figures at nominal_voltage_v (spec sheet), used by the virtual servo
    stall_torque_nm: float = 4.1
    stall_current_a: float = 2.3
    no_load_speed_rpm: float = 46.0
    nominal_voltage_v: float = 12.0  # the spec sheet's recommended supply (X330: 5 V)
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

    @property
    def baud_rates(self) -> dict[int, int]:
        """Baud Rate (8) values this model accepts -> bits per second."""
        item = self["baud_rate"]
        return {value: bps for value, bps in BAUD_RATES.items() if item.in_range(value)}

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
# Every X-series model lays out the items an arm uses (Torque Enable 64, Goal Position 116, Present
# Position 132, ...) at the same addresses; they differ in defaults and ranges, in current sensing
# (XL430: Present Load in 0.1 % instead of Present Current), in the unit of current (2.69 mA on the
# X430/X540, 1 mA on the X330), in a few extra items and in their Indirect Address/Data blocks. What
# differs is data (``XSeriesFigures``); one builder (``_x_series_fields``) lays every model out.
@dataclass(frozen=True)
class IndirectBank:
    """Indirect Address N..N+count-1 at ``address_base`` (2 bytes each), Indirect Data at ``data_base``."""

    first: int
    count: int
    address_base: int
    data_base: int


# X430/X540: Indirect Address 1-28 at 168, Data at 224; Address 29-56 at 578, Data at 634 (targets 64-661)
X430_INDIRECT = (IndirectBank(1, 28, 168, 224), IndirectBank(29, 28, 578, 634))
# X330: Indirect Address 1-20 at 168, Data 1-20 at 208 (targets 64-227)
X330_INDIRECT = (IndirectBank(1, 20, 168, 208),)


@dataclass(frozen=True)
class XSeriesFigures:
    """Where one X-series model's control table differs from another's, as its e-manual page gives it."""

    temperature_limit: int
    voltage_limits: tuple[int, int, int, int]  # Max Voltage Limit default, Min default, range lo, range hi (0.1 V)
    velocity_limit: tuple[int, int]  # Velocity Limit (44) default, maximum (0.229 rev/min)
    gains: tuple[int, int, int, int, int]  # Velocity I, Velocity P, Position D, Position I, Position P defaults
    # Current Limit (38) default (= its maximum) and amperes per unit; None: no current sensing, so
    # no Current Limit, Goal Current or current-based modes, and Present Load (126) instead of Present Current
    current: tuple[int, float] | None
    baud_rate_max: int = 7  # Baud Rate (8): 7 = 4.5 Mbps; the X330 stops at 6 = 4 Mbps
    drive_mode_max: int = 13  # bits 0 (reverse), 2 (time-based profile), 3 (torque on by goal update); X540 adds 1
    protocol_type: tuple[int, int] = (1, 2)  # Protocol Type (13) range; the X330 pages give 2-22
    shutdown: int = 52  # Shutdown (63) default: overload, electrical shock, overheating (the XL330 adds voltage)
    startup_configuration: bool = True  # Startup Configuration (60)
    pwm_slope: bool = False  # PWM Slope (62), the X330s
    external_ports: bool = False  # External Port Mode 1-3 (56-58) and Data 1-3 (152-156), the XM540
    backup_ready: bool = True  # Backup Ready (147)
    indirect: tuple[IndirectBank, ...] = X430_INDIRECT


def _indirect_fields(banks: tuple[IndirectBank, ...]) -> list[Field]:
    top = max(b.data_base + b.count for b in banks) - 1  # the last address an Indirect Address may point at
    out: list[Field] = []
    for bank in banks:
        for k in range(bank.count):
            n = bank.first + k
            out.append(Field(f"indirect_address_{n}", bank.address_base + 2 * k, 2, "RW", bank.data_base + k, 64, top))
            out.append(Field(f"indirect_data_{n}", bank.data_base + k, 1, "RW", 0, 0, 255))
    return out


def _x_series_fields(x: XSeriesFigures) -> list[Field]:
    vmax_default, vmin_default, vlo, vhi = x.voltage_limits
    velocity_default, velocity_max = x.velocity_limit
    velocity_i, velocity_p, position_d, position_i, position_p = x.gains
    v = RAD_S_PER_VELOCITY_UNIT
    fields = [
        # EEPROM area
        Field("model_number", 0, 2, "R"),
        Field("model_information", 2, 4, "R"),
        Field("firmware_version", 6, 1, "R"),
        Field("id", 7, 1, "RW", 1, 0, 252),
        Field("baud_rate", 8, 1, "RW", 1, 0, x.baud_rate_max),
        Field("return_delay_time", 9, 1, "RW", 250, 0, 254, scale=SECONDS_PER_RETURN_DELAY_UNIT, unit="s"),
        Field("drive_mode", 10, 1, "RW", 0, 0, x.drive_mode_max),
        Field("operating_mode", 11, 1, "RW", 3, 0, 16),
        Field("secondary_id", 12, 1, "RW", 255, 0, 255),
        Field("protocol_type", 13, 1, "RW", 2, *x.protocol_type),
        Field("homing_offset", 20, 4, "RW", 0, -1_044_479, 1_044_479, signed=True, scale=RAD_PER_TICK, unit="rad"),
        Field("moving_threshold", 24, 4, "RW", 10, 0, 1023, scale=v, unit="rad/s"),
        Field("temperature_limit", 31, 1, "RW", x.temperature_limit, 0, 100, unit="degC"),
        Field("max_voltage_limit", 32, 2, "RW", vmax_default, vlo, vhi, scale=0.1, unit="V"),
        Field("min_voltage_limit", 34, 2, "RW", vmin_default, vlo, vhi, scale=0.1, unit="V"),
        Field("pwm_limit", 36, 2, "RW", 885, 0, 885, scale=0.113 / 100),
    ]
    if x.current is not None:
        limit, amps = x.current
        fields.append(Field("current_limit", 38, 2, "RW", limit, 0, limit, scale=amps, unit="A"))
    fields += [
        Field("velocity_limit", 44, 4, "RW", velocity_default, 0, velocity_max, scale=v, unit="rad/s"),
        Field("max_position_limit", 48, 4, "RW", 4095, 0, 4095, scale=RAD_PER_TICK, unit="rad"),
        Field("min_position_limit", 52, 4, "RW", 0, 0, 4095, scale=RAD_PER_TICK, unit="rad"),
    ]
    if x.external_ports:
        fields += [Field(f"external_port_mode_{k + 1}", 56 + k, 1, "RW", 3, 0, 3) for k in range(3)]
    if x.startup_configuration:
        fields.append(Field("startup_configuration", 60, 1, "RW", 0, 0, 3))
    if x.pwm_slope:
        fields.append(Field("pwm_slope", 62, 1, "RW", 140, 1, 255, scale=1.977, unit="V/s"))
    fields += [
        Field("shutdown", 63, 1, "RW", x.shutdown, 0, 255),
        # RAM area
        Field("torque_enable", 64, 1, "RW", 0, 0, 1),
        Field("led", 65, 1, "RW", 0, 0, 1),
        Field("status_return_level", 68, 1, "RW", 2, 0, 2),
        Field("registered_instruction", 69, 1, "R"),
        Field("hardware_error_status", 70, 1, "R"),
        Field("velocity_i_gain", 76, 2, "RW", velocity_i, 0, 16383),
        Field("velocity_p_gain", 78, 2, "RW", velocity_p, 0, 16383),
        Field("position_d_gain", 80, 2, "RW", position_d, 0, 16383),
        Field("position_i_gain", 82, 2, "RW", position_i, 0, 16383),
        Field("position_p_gain", 84, 2, "RW", position_p, 0, 16383),
        Field("feedforward_2nd_gain", 88, 2, "RW", 0, 0, 16383),
        Field("feedforward_1st_gain", 90, 2, "RW", 0, 0, 16383),
        Field("bus_watchdog", 98, 1, "RW", 0, 0, 127, signed=True, scale=0.020, unit="s"),  # -1: it fired
        Field("goal_pwm", 100, 2, "RW", 885, -885, 885, signed=True, scale=0.113 / 100),
    ]
    if x.current is not None:
        limit, amps = x.current
        fields.append(Field("goal_current", 102, 2, "RW", 0, -limit, limit, signed=True, scale=amps, unit="A"))
    fields += [
        Field("goal_velocity", 104, 4, "RW", 0, -velocity_max, velocity_max, signed=True, scale=v, unit="rad/s"),
        Field("profile_acceleration", 108, 4, "RW", 0, 0, 32767),
        Field("profile_velocity", 112, 4, "RW", 0, 0, 32767, scale=v, unit="rad/s"),
        Field("goal_position", 116, 4, "RW", 0, -1_048_575, 1_048_575, signed=True, scale=RAD_PER_TICK, unit="rad"),
        Field("realtime_tick", 120, 2, "R", scale=0.001, unit="s"),
        Field("moving", 122, 1, "R"),
        Field("moving_status", 123, 1, "R"),
        Field("present_pwm", 124, 2, "R", signed=True, scale=0.113 / 100),
    ]
    if x.current is not None:
        fields.append(Field("present_current", 126, 2, "R", signed=True, scale=x.current[1], unit="A"))
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
    if x.backup_ready:
        fields.append(Field("backup_ready", 147, 1, "R"))
    if x.external_ports:
        fields += [Field(f"external_port_data_{k + 1}", 152 + 2 * k, 2, "RW") for k in range(3)]
    return fields + _indirect_fields(x.indirect)


def x_series(
    model: str,
    model_number: int,
    figures: XSeriesFigures,
    *,
    stall_torque_nm: float,
    stall_current_a: float,
    no_load_speed_rpm: float,
    nominal_voltage_v: float = 12.0,
    fast_sync_read_firmware: int | None = 45,
) -> ControlTable:
    """One model's table: its e-manual figures laid out on the X-series map, with its spec sheet's
    stall torque, stall current and no-load speed at ``nominal_voltage_v``."""
    return ControlTable(
        model,
        model_number,
        tuple(_x_series_fields(figures)),
        fast_sync_read_firmware=fast_sync_read_firmware,
        stall_torque_nm=stall_torque_nm,
        stall_current_a=stall_current_a,
        no_load_speed_rpm=no_load_speed_rpm,
        nominal_voltage_v=nominal_voltage_v,
    )


AMPS_PER_MA = 0.001  # X330 current unit: 1 mA

# XM430-W350 / -W210 (e-manual XM430 pages): 12 V; Current Limit 1193 x 2.69 mA; no Startup Configuration
# or Backup Ready in the pages transcribed first (kept so: nothing here relies on them).
_XM430 = XSeriesFigures(
    temperature_limit=80,
    voltage_limits=(160, 95, 95, 160),
    velocity_limit=(200, 1023),
    gains=(1920, 100, 0, 0, 800),
    current=(1193, AMPS_PER_CURRENT_UNIT),
    startup_configuration=False,
    backup_ready=False,
)
XM430_W350 = x_series("XM430-W350", 1020, _XM430, stall_torque_nm=4.1, stall_current_a=2.3, no_load_speed_rpm=46.0)
XM430_W210 = x_series("XM430-W210", 1030, _XM430, stall_torque_nm=3.0, stall_current_a=2.3, no_load_speed_rpm=77.0)

# XL430-W250 (e-manual xl430-w250): no current sensing (Present Load), 6.5-12 V; 1.5 N.m, 1.4 A, 61 rpm at 12 V.
XL430_W250 = x_series(
    "XL430-W250",
    1060,
    XSeriesFigures(
        temperature_limit=72,
        voltage_limits=(140, 60, 60, 140),
        velocity_limit=(265, 1023),
        gains=(1000, 100, 4000, 0, 640),
        current=None,
    ),
    stall_torque_nm=1.5,
    stall_current_a=1.4,
    no_load_speed_rpm=61.0,
)

# XH430-W350-T/R (e-manual xh430-w350; model number 1000, as dynamixel_sdk's and the SDK examples' tables
# have it): Current Limit 648 x 2.69 mA, Velocity Limit 130, Position P 900; 3.4 N.m, 1.3 A, 30 rpm at 12 V.
XH430_W350 = x_series(
    "XH430-W350",
    1000,
    XSeriesFigures(
        temperature_limit=80,
        voltage_limits=(160, 95, 95, 160),
        velocity_limit=(130, 1023),
        gains=(1920, 100, 0, 0, 900),
        current=(648, AMPS_PER_CURRENT_UNIT),
    ),
    stall_torque_nm=3.4,
    stall_current_a=1.3,
    no_load_speed_rpm=30.0,
)

# XM540-W270-T/R (e-manual xm540-w270): Current Limit 2047 x 2.69 mA, Velocity Limit 128, External Ports
# 1-3, Drive Mode bit 1 (dual joint); 10.6 N.m, 4.4 A, 30 rpm at 12 V.
XM540_W270 = x_series(
    "XM540-W270",
    1120,
    XSeriesFigures(
        temperature_limit=80,
        voltage_limits=(160, 95, 95, 160),
        velocity_limit=(128, 1023),
        gains=(1920, 100, 0, 0, 800),
        current=(2047, AMPS_PER_CURRENT_UNIT),
        drive_mode_max=15,
        external_ports=True,
    ),
    stall_torque_nm=10.6,
    stall_current_a=4.4,
    no_load_speed_rpm=30.0,
)


def _x330(
    *, velocity_limit: int, gains: tuple[int, int, int, int, int], current_limit: int, shutdown: int
) -> XSeriesFigures:
    """The X330 family (e-manual xl330-*/xc330-* pages): 3.7-6 V (Max/Min Voltage Limit 70/35 in
    31-70), Temperature Limit 70, Baud Rate up to 6 (4 Mbps), Protocol Type 2-22, current in 1 mA units
    (the Current Limit and Present Current rows; one Goal Current note says 2.69 mA, a leftover of the
    X430 text), PWM Slope (62), 20 Indirect Address/Data items with Data 1 at 208 (not 224)."""
    return XSeriesFigures(
        temperature_limit=70,
        voltage_limits=(70, 35, 31, 70),
        velocity_limit=(velocity_limit, 2047),
        gains=gains,
        current=(current_limit, AMPS_PER_MA),
        baud_rate_max=6,
        protocol_type=(2, 22),
        shutdown=shutdown,
        pwm_slope=True,
        indirect=X330_INDIRECT,
    )


# XL330-M288-T (model number 1200): 0.52 N.m, 1.47 A, 103 rpm at 5 V; Current Limit 1750 mA.
XL330_M288 = x_series(
    "XL330-M288",
    1200,
    _x330(velocity_limit=445, gains=(1600, 180, 0, 0, 400), current_limit=1750, shutdown=53),
    stall_torque_nm=0.52,
    stall_current_a=1.47,
    no_load_speed_rpm=103.0,
    nominal_voltage_v=5.0,
    fast_sync_read_firmware=46,
)
# XL330-M077-T (model number 1190): 0.215 N.m, 1.47 A, 383 rpm at 5 V; Current Limit 1750 mA.
XL330_M077 = x_series(
    "XL330-M077",
    1190,
    _x330(velocity_limit=1620, gains=(400, 40, 0, 400, 400), current_limit=1750, shutdown=53),
    stall_torque_nm=0.215,
    stall_current_a=1.47,
    no_load_speed_rpm=383.0,
    nominal_voltage_v=5.0,
    fast_sync_read_firmware=46,
)
# XC330-M288-T (model number 1240): 0.93 N.m, 1.80 A, 81 rpm at 5 V; Current Limit 2352 mA.
XC330_M288 = x_series(
    "XC330-M288",
    1240,
    _x330(velocity_limit=350, gains=(1600, 50, 500, 0, 1100), current_limit=2352, shutdown=52),
    stall_torque_nm=0.93,
    stall_current_a=1.80,
    no_load_speed_rpm=81.0,
    nominal_voltage_v=5.0,
    fast_sync_read_firmware=46,
)

MODELS: dict[str, ControlTable] = {
    t.model: t for t in (XM430_W350, XM430_W210, XL430_W250, XH430_W350, XM540_W270, XL330_M288, XL330_M077, XC330_M288)
}
MODELS_BY_NUMBER: dict[int, ControlTable] = {t.model_number: t for t in MODELS.values()}


def model_name(model_number: int) -> str | None:
    """The model a PING's model number names (``XL430-W250`` for 1060); None for one not known here."""
    table = MODELS_BY_NUMBER.get(model_number)
    return None if table is None else table.model


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
