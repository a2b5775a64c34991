"""Control tables of Feetech servos, as data: STS3215 (the SO-101's servo, little endian) and SCS0009
(an SCS servo on the same framing, big endian).

Sources: the Feetech STS memory table ("Magnetic encoder STS servo memory table", FT-SMS-STS e-manual),
the vendor C++ library (SMS_STS.h/SCSCL.h: addresses, baud rate codes, which reads carry a sign bit) and
``scservo_sdk`` (model number at address 3, the Lock register's use). Field names are snake_case of the
manual's; ``scale`` converts one raw unit to SI.

Quirks worth knowing:
- Addresses 0-39 are EEPROM, 40 on are RAM, on both families. An EEPROM write takes effect at once but
  is only kept over a power cycle while Lock (55 on STS, 48 on SCS) is 0: unlock, write, relock
  (``FeetechBus.write_eeprom``).
- Signed items use sign-magnitude (``protocol.to_signed``): position and speed at bit 15, load at bit 10,
  the homing offset at bit 11. Present Position = raw encoder position - Homing Offset (31).
- Return Delay Time (7) is in 2 us units; Response Status Level (8) 0 answers READ and PING only.
- Torque Enable (40): 0 off, 1 on, 128 sets the present position as the middle (2048) by rewriting
  the homing offset.
- The baud rate codes are the manual's and SMS_STS.h's (5 = 76800, 6 = 57600, 7 = 38400); some
  third-party tables shift them by one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pearl_robot.dynamixel.control_table import ControlTable, Field
from pearl_robot.feetech.protocol import from_signed, to_signed

EEPROM_END = 40  # addresses below are EEPROM (both STS and SCS)
SECONDS_PER_RETURN_DELAY_UNIT = 2e-6
STS_TICKS_PER_REVOLUTION = 4096
STS_RAD_PER_TICK = 2 * math.pi / STS_TICKS_PER_REVOLUTION
CENTER_TICKS = 2048  # STS: the middle of the single-turn range
TORQUE_ENABLE_CALIBRATE_MIDDLE = 128

# Baud Rate (6) value -> bits per second (manual; SMS_STS.h / SCSCL.h)
BAUD_RATES: dict[int, int] = {
    0: 1_000_000,
    1: 500_000,
    2: 250_000,
    3: 128_000,
    4: 115_200,
    5: 76_800,
    6: 57_600,
    7: 38_400,
}
BAUD_RATE_CODES: dict[int, int] = {bps: code for code, bps in BAUD_RATES.items()}


class OperatingMode:
    POSITION = 0
    SPEED = 1  # constant speed (wheel)
    PWM = 2  # open loop
    STEP = 3


@dataclass(frozen=True)
class FeetechField(Field):
    """A ``Field`` whose signed values use sign-magnitude with the sign at ``sign_bit``."""

    sign_bit: int | None = None

    @property
    def eeprom(self) -> bool:
        return self.address < EEPROM_END

    def to_raw(self, value: int) -> int:
        """The unsigned register value for ``value``; ValueError if it does not fit."""
        raw = from_signed(int(value), self.sign_bit) if self.sign_bit is not None else int(value)
        if not 0 <= raw < 1 << (8 * self.size):
            raise ValueError(f"{self.name}: {value} does not fit {self.size} byte(s)")
        return raw

    def from_raw(self, raw: int) -> int:
        return to_signed(raw, self.sign_bit) if self.sign_bit is not None else raw


@dataclass(frozen=True)
class FeetechControlTable(ControlTable):
    """A ``ControlTable`` with a byte order, sign-magnitude items and the Lock register."""

    byte_order: str = "little"  # "little" (STS/SMS) or "big" (SCS)
    ticks_per_revolution: float = STS_TICKS_PER_REVOLUTION
    rad_per_tick: float = STS_RAD_PER_TICK
    position_range: tuple[int, int] = (0, 4095)  # raw goal/present position in position mode
    protocol_end: int = 0  # the SDK's PacketHandler(protocol_end): 0 little endian, 1 big endian

    def __getitem__(self, name: str) -> FeetechField:
        return super().__getitem__(name)  # type: ignore[return-value]

    def encode(self, name: str, value: int) -> bytes:
        f = self[name]
        return f.to_raw(value).to_bytes(f.size, self.byte_order)  # type: ignore[arg-type]

    def decode(self, name: str, data: bytes) -> int:
        return self[name].from_raw(int.from_bytes(data, self.byte_order))  # type: ignore[arg-type]

    def encode_raw(self, size: int, raw: int) -> bytes:
        """An unsigned value as ``size`` bytes in this table's byte order (for memory images)."""
        return int(raw).to_bytes(size, self.byte_order)  # type: ignore[arg-type]

    def decode_raw(self, data: bytes) -> int:
        return int.from_bytes(data, self.byte_order)  # type: ignore[arg-type]

    @property
    def lock(self) -> FeetechField:
        return self["lock"]

    @property
    def baud_rates(self) -> dict[int, int]:
        """Baud Rate (6) values -> bits per second (Feetech's codes, not Dynamixel's)."""
        return dict(BAUD_RATES)


F = FeetechField
_POS = STS_RAD_PER_TICK
_WS = 0.001  # 0.1 % of the maximum torque, as a fraction


def _sts_fields() -> tuple[FeetechField, ...]:
    return (
        # version information (read-only EEPROM)
        F("firmware_major_version", 0, 1, "R"),
        F("firmware_minor_version", 1, 1, "R"),
        F("end", 2, 1, "R"),  # 0: little-endian storage
        F("model_number", 3, 2, "R", 777),  # servo major (3) / minor (4) version, read as one word
        # EEPROM configuration
        F("id", 5, 1, "RW", 1, 0, 253),
        F("baud_rate", 6, 1, "RW", 0, 0, 7),
        # factory 250 (500 us) as an STS3215 ships (LeRobot's configure_motors lowers it to 0)
        F("return_delay_time", 7, 1, "RW", 250, 0, 254, scale=SECONDS_PER_RETURN_DELAY_UNIT, unit="s"),
        F("status_return_level", 8, 1, "RW", 1, 0, 1),
        F("min_position_limit", 9, 2, "RW", 0, 0, 4094, scale=_POS, unit="rad"),
        F("max_position_limit", 11, 2, "RW", 4095, 1, 4095, scale=_POS, unit="rad"),
        F("max_temperature_limit", 13, 1, "RW", 70, 0, 100, unit="degC"),
        F("max_voltage_limit", 14, 1, "RW", 140, 0, 254, scale=0.1, unit="V"),
        F("min_voltage_limit", 15, 1, "RW", 40, 0, 254, scale=0.1, unit="V"),
        F("max_torque_limit", 16, 2, "RW", 1000, 0, 1000, scale=_WS),
        F("phase", 18, 1, "RW", 12, 0, 254),
        F("unloading_condition", 19, 1, "RW", 44, 0, 254),
        F("led_alarm_condition", 20, 1, "RW", 47, 0, 254),
        F("p_coefficient", 21, 1, "RW", 32, 0, 254),
        F("d_coefficient", 22, 1, "RW", 32, 0, 254),
        F("i_coefficient", 23, 1, "RW", 0, 0, 254),
        F("minimum_startup_force", 24, 2, "RW", 16, 0, 1000, scale=_WS),
        F("cw_dead_zone", 26, 1, "RW", 1, 0, 32),
        F("ccw_dead_zone", 27, 1, "RW", 1, 0, 32),
        F("protection_current", 28, 2, "RW", 500, 0, 511, scale=0.0065, unit="A"),
        F("angular_resolution", 30, 1, "RW", 1, 1, 3),
        F("homing_offset", 31, 2, "RW", 0, -2047, 2047, sign_bit=11, scale=_POS, unit="rad"),
        F("operating_mode", 33, 1, "RW", OperatingMode.POSITION, 0, 3),
        F("protective_torque", 34, 1, "RW", 20, 0, 100, scale=0.01),
        F("protection_time", 35, 1, "RW", 200, 0, 254, scale=0.01, unit="s"),
        F("overload_torque", 36, 1, "RW", 80, 0, 100, scale=0.01),
        F("speed_p_coefficient", 37, 1, "RW", 10, 0, 100),
        F("over_current_protection_time", 38, 1, "RW", 200, 0, 254, scale=0.01, unit="s"),
        F("speed_i_coefficient", 39, 1, "RW", 200, 0, 254),
        # RAM control
        F("torque_enable", 40, 1, "RW", 0, 0, TORQUE_ENABLE_CALIBRATE_MIDDLE),
        F("acceleration", 41, 1, "RW", 0, 0, 254, scale=100 * _POS, unit="rad/s^2"),
        F("goal_position", 42, 2, "RW", 0, -30719, 30719, sign_bit=15, scale=_POS, unit="rad"),
        F("goal_time", 44, 2, "RW", 0, 0, 65535, scale=0.001, unit="s"),
        F("goal_speed", 46, 2, "RW", 0, -32767, 32767, sign_bit=15, scale=_POS, unit="rad/s"),
        F("torque_limit", 48, 2, "RW", 1000, 0, 1000, scale=_WS),
        F("lock", 55, 1, "RW", 1, 0, 1),
        # RAM feedback (read-only)
        F("present_position", 56, 2, "R", sign_bit=15, scale=_POS, unit="rad"),
        F("present_speed", 58, 2, "R", sign_bit=15, scale=_POS, unit="rad/s"),
        F("present_load", 60, 2, "R", sign_bit=10, scale=_WS),
        F("present_voltage", 62, 1, "R", scale=0.1, unit="V"),
        F("present_temperature", 63, 1, "R", unit="degC"),
        F("registered_instruction", 64, 1, "R"),  # the manual's asynchronous write flag
        F("status", 65, 1, "R"),  # protocol.StatusError bits
        F("moving", 66, 1, "R"),
        F("present_current", 69, 2, "R", sign_bit=15, scale=0.0065, unit="A"),
    )


_SCS_RAD_PER_TICK = math.radians(300) / 1024  # SCS0009: 0..1023 over 300 degrees


def _scs_fields() -> tuple[FeetechField, ...]:
    p = _SCS_RAD_PER_TICK
    return (
        F("firmware_major_version", 0, 1, "R"),
        F("firmware_minor_version", 1, 1, "R"),
        F("model_number", 3, 2, "R", 1284),
        F("id", 5, 1, "RW", 1, 0, 253),
        F("baud_rate", 6, 1, "RW", 0, 0, 7),
        F("return_delay_time", 7, 1, "RW", 0, 0, 254, scale=SECONDS_PER_RETURN_DELAY_UNIT, unit="s"),
        F("status_return_level", 8, 1, "RW", 1, 0, 1),
        F("min_position_limit", 9, 2, "RW", 0, 0, 1022, scale=p, unit="rad"),
        F("max_position_limit", 11, 2, "RW", 1023, 1, 1023, scale=p, unit="rad"),
        F("max_temperature_limit", 13, 1, "RW", 70, 0, 100, unit="degC"),
        F("max_voltage_limit", 14, 1, "RW", 90, 0, 254, scale=0.1, unit="V"),
        F("min_voltage_limit", 15, 1, "RW", 40, 0, 254, scale=0.1, unit="V"),
        F("max_torque_limit", 16, 2, "RW", 1000, 0, 1000, scale=_WS),
        F("phase", 18, 1, "RW", 0, 0, 254),
        F("unloading_condition", 19, 1, "RW", 37, 0, 254),
        F("led_alarm_condition", 20, 1, "RW", 37, 0, 254),
        F("p_coefficient", 21, 1, "RW", 15, 0, 254),
        F("d_coefficient", 22, 1, "RW", 0, 0, 254),
        F("i_coefficient", 23, 1, "RW", 0, 0, 254),
        F("minimum_startup_force", 24, 2, "RW", 0, 0, 1000, scale=_WS),
        F("cw_dead_zone", 26, 1, "RW", 2, 0, 32),
        F("ccw_dead_zone", 27, 1, "RW", 2, 0, 32),
        F("protective_torque", 37, 1, "RW", 20, 0, 100, scale=0.01),
        F("protection_time", 38, 1, "RW", 200, 0, 254, scale=0.01, unit="s"),
        F("torque_enable", 40, 1, "RW", 0, 0, 1),
        F("goal_position", 42, 2, "RW", 0, 0, 1023, scale=p, unit="rad"),
        F("goal_time", 44, 2, "RW", 0, 0, 65535, scale=0.001, unit="s"),
        F("goal_speed", 46, 2, "RW", 0, -32767, 32767, sign_bit=15, scale=p, unit="rad/s"),
        F("lock", 48, 1, "RW", 1, 0, 1),
        F("present_position", 56, 2, "R", scale=p, unit="rad"),
        F("present_speed", 58, 2, "R", sign_bit=15, scale=p, unit="rad/s"),
        F("present_load", 60, 2, "R", sign_bit=10, scale=_WS),
        F("present_voltage", 62, 1, "R", scale=0.1, unit="V"),
        F("present_temperature", 63, 1, "R", unit="degC"),
        F("registered_instruction", 64, 1, "R"),
        F("status", 65, 1, "R"),
        F("moving", 66, 1, "R"),
    )


# STS3215 (7.4 V, 1:345, the SO-101's servo): 19.5 kg.cm stall torque, 0.222 s/60 deg no load, 2.7 A stall.
STS3215 = FeetechControlTable(
    "STS3215",
    777,
    _sts_fields(),
    firmware_version=3,
    fast_sync_read_firmware=None,
    stall_torque_nm=1.91,
    stall_current_a=2.7,
    no_load_speed_rpm=45.0,
    nominal_voltage_v=7.4,
)
# SCS0009 (6 V): 2.3 kg.cm stall torque, 0.1 s/60 deg no load.
SCS0009 = FeetechControlTable(
    "SCS0009",
    1284,
    _scs_fields(),
    firmware_version=0,
    fast_sync_read_firmware=None,
    stall_torque_nm=0.23,
    stall_current_a=0.9,
    no_load_speed_rpm=100.0,
    nominal_voltage_v=6.0,
    byte_order="big",
    ticks_per_revolution=1024 * 360 / 300,
    rad_per_tick=_SCS_RAD_PER_TICK,
    position_range=(0, 1023),
    protocol_end=1,
)

MODELS: dict[str, FeetechControlTable] = {t.model: t for t in (STS3215, SCS0009)}
MODELS_BY_NUMBER: dict[int, FeetechControlTable] = {t.model_number: t for t in MODELS.values()}


def control_table(model: str) -> FeetechControlTable:
    """The table for a model name as written in the hardware YAML (``STS3215``, any case; a dash
    after the family, ``STS-3215``, is accepted)."""
    key = model.upper().replace("-", "").replace("_", "")
    try:
        return MODELS[key]
    except KeyError:
        raise KeyError(f"unknown Feetech model '{model}' (known: {', '.join(sorted(MODELS))})") from None
