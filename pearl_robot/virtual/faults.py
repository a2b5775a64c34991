"""Faults the virtual bus produces on demand, set at start (``--faults SPEC``) or changed live.

SPEC is comma-separated ``key=value``::

    latency_ms=5          every reply waits this long before it is sent
    drop=0.02             each status packet is lost with this probability
    corrupt=0.01          each status packet's CRC is damaged with this probability
    hw_error=12:overload  servo 12 reports a hardware error (overload, overheating, voltage,
                          encoder, shock); ``@2.5`` after it: only 2.5 s after the start;
                          several: ``hw_error=12:overload+13:voltage@1``
    vanish_after_s=3      the device disappears 3 s after the start
    seed=7                the random draws for drop/corrupt
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pearl_robot.dynamixel.control_table import HardwareError

HARDWARE_ERROR_KINDS: dict[str, HardwareError] = {
    "overload": HardwareError.OVERLOAD,
    "overheating": HardwareError.OVERHEATING,
    "voltage": HardwareError.INPUT_VOLTAGE,
    "encoder": HardwareError.MOTOR_ENCODER,
    "shock": HardwareError.ELECTRICAL_SHOCK,
}


@dataclass(frozen=True)
class ScheduledHardwareError:
    servo_id: int
    bits: int
    after_s: float = 0.0


@dataclass
class BusFaults:
    reply_latency_s: float = 0.0
    drop_rate: float = 0.0
    corrupt_rate: float = 0.0
    vanish_after_s: float | None = None
    hardware_errors: list[ScheduledHardwareError] = field(default_factory=list)
    seed: int | None = None

    def validate(self) -> BusFaults:
        for name in ("drop_rate", "corrupt_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.reply_latency_s < 0:
            raise ValueError("reply latency must be >= 0")
        if self.vanish_after_s is not None and self.vanish_after_s < 0:
            raise ValueError("vanish_after_s must be >= 0")
        return self


def parse_hardware_error(text: str) -> ScheduledHardwareError:
    """``12:overload`` or ``12:overload@2.5``."""
    after = 0.0
    if "@" in text:
        text, when = text.split("@", 1)
        after = float(when)
    try:
        servo, kind = text.split(":", 1)
        servo_id = int(servo)
    except ValueError:
        raise ValueError(f"hardware error '{text}': expected ID:KIND, e.g. 12:overload") from None
    if kind not in HARDWARE_ERROR_KINDS:
        raise ValueError(f"hardware error kind '{kind}' (known: {', '.join(HARDWARE_ERROR_KINDS)})")
    return ScheduledHardwareError(servo_id, int(HARDWARE_ERROR_KINDS[kind]), after)


def parse_faults(spec: str | None) -> BusFaults:
    faults = BusFaults()
    if not spec:
        return faults
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"fault '{part}': expected key=value")
        key, value = (s.strip() for s in part.split("=", 1))
        try:
            if key == "latency_ms":
                faults.reply_latency_s = float(value) / 1000.0
            elif key == "drop":
                faults.drop_rate = float(value)
            elif key == "corrupt":
                faults.corrupt_rate = float(value)
            elif key == "vanish_after_s":
                faults.vanish_after_s = float(value)
            elif key == "seed":
                faults.seed = int(value)
            elif key == "hw_error":
                faults.hardware_errors.extend(parse_hardware_error(v) for v in value.split("+"))
            else:
                known = "latency_ms, drop, corrupt, hw_error, vanish_after_s, seed"
                raise ValueError(f"unknown fault '{key}' (known: {known})")
        except ValueError as exc:
            if "unknown fault" in str(exc) or "hardware error" in str(exc):
                raise
            raise ValueError(f"fault '{key}': bad value '{value}'") from None
    return faults.validate()
