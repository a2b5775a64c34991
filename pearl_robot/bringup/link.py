"""The bus link a bring-up command works on: robot name and options, the protocol the hardware YAML's
``bus.protocol`` names, opening the bus at a baud rate, and the broadcast-ping scan over baud rates."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pearl_robot.bringup.protocols import DYNAMIXEL, BusProtocol, protocol_for
from pearl_robot.dynamixel.bus import ServoError
from pearl_robot.errors import PearlRobotError, UnknownRobotError
from pearl_robot.paths import resolve_hardware
from pearl_robot.robot.registry import parse_robot_name, split_options
from pearl_robot.robot.spec import RobotSpec
from pearl_robot.servo_bus import CommError

# the rates X-series servos run at (Baud Rate codes 1-7; 9600 is left out of scans: it is slow)
SCAN_BAUDS = DYNAMIXEL.scan_bauds
BAUD_CODES = DYNAMIXEL.baud_codes
# robot-name options a bring-up command understands -> their type
LINK_OPTIONS = {"baudrate": int, "latency_timer_ms": float, "timeout_margin_ms": float, "retries": int}
DEFAULT_MARGIN_MS = 5.0  # SerialRobot's default: what the control loop lives with


@dataclass(frozen=True)
class Link:
    device: str
    baudrate: int  # the arm's (the YAML's, or ?baudrate=)
    latency_timer_ms: float  # what the bus assumes for its deadlines
    timeout_margin_ms: float
    retries: int
    protocol: BusProtocol = field(default=DYNAMIXEL)
    hardware: str = ""  # the --hardware argument that names the YAML ("" for the shipped arm)

    @classmethod
    def from_robot(cls, robot: str, spec: RobotSpec) -> Link:
        """``serial:DEVICE[?key=value&...]``; unknown options and other backends are one-line errors."""
        name, options = split_options(robot)
        scheme, device = parse_robot_name(name)
        if scheme != "serial":
            raise UnknownRobotError(f"'{robot}': bring-up talks to a servo bus directly; use serial:DEVICE")
        values: dict[str, float | int] = {}
        for key, value in options.items():
            kind = LINK_OPTIONS.get(key)
            if kind is None:
                raise UnknownRobotError(f"robot '{robot}' has no option '{key}' (options: {', '.join(LINK_OPTIONS)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or kind(value) != value:
                raise UnknownRobotError(f"robot option {key}={value!r}: expected a {kind.__name__} >= 0")
            values[key] = kind(value)
        return cls(
            device=device,
            baudrate=int(values.get("baudrate", spec.bus.baudrate)),
            latency_timer_ms=float(values.get("latency_timer_ms", spec.bus.latency_timer_ms)),
            timeout_margin_ms=float(values.get("timeout_margin_ms", DEFAULT_MARGIN_MS)),
            retries=int(values.get("retries", 3)),
            protocol=protocol_for(spec),
            hardware=hardware_argument(spec),
        )

    def command(self, name: str) -> str:
        """A pearl-robot command line for this bus and arm, to recommend."""
        hardware = f" --hardware {self.hardware}" if self.hardware else ""
        return f"pearl-robot {name} --robot serial:{self.device}{hardware}"

    def open(
        self,
        baudrate: int | None = None,
        *,
        margin_ms: float | None = None,
        retries: int | None = None,
        return_delay_us: float = 500.0,
    ) -> Any:
        """The bus at ``baudrate`` (default: the arm's), a client of the link's protocol. PortError if
        the device is missing or fails."""
        return self.protocol.open(
            self.device,
            baudrate or self.baudrate,
            latency_timer_ms=self.latency_timer_ms,
            return_delay_us=return_delay_us,
            timeout_margin_ms=self.timeout_margin_ms if margin_ms is None else margin_ms,
            retries=self.retries if retries is None else retries,
        )

    def scan_order(self, bauds: tuple[int, ...] | None = None) -> list[int]:
        """The arm's baud rate first, then the others (default: every rate the protocol scans)."""
        bauds = self.protocol.scan_bauds if bauds is None else bauds
        return [self.baudrate] + [b for b in bauds if b != self.baudrate]


def hardware_argument(spec: RobotSpec) -> str:
    """What --hardware needs to name ``spec``'s YAML: "" for the shipped arm, a name in hardware/, or a path."""
    source = Path(spec.source).resolve()
    if source == resolve_hardware(None).resolve():
        return ""
    return source.stem if source == resolve_hardware(source.stem).resolve() else str(source)


@dataclass(frozen=True)
class ScanResult:
    baud: int
    found: dict[int, tuple[int, int]]  # id -> (model number, firmware version)
    crc_errors: int  # damaged answers: two servos with one id, or noise


def scan(
    link: Link, bauds: list[int], wait_s: float | None = None, confirm_ids: Sequence[int] = ()
) -> list[ScanResult]:
    """A broadcast ping at each baud rate. ``wait_s``: how long to collect answers at each (None: long
    enough for all 253 ids at that rate, the bus's default). ``confirm_ids`` that did not answer it at
    the arm's baud rate are pinged one by one there (with retries: one lost answer is no missing servo)."""
    results, protocol = [], link.protocol
    for baud in bauds:
        with link.open(baud) as bus:
            found = protocol.broadcast_ping(bus, wait_s)
            if baud == link.baudrate:
                for servo_id in confirm_ids:
                    if servo_id not in found:
                        with contextlib.suppress(CommError, ServoError):
                            found[servo_id] = protocol.identify(bus, servo_id)
            results.append(ScanResult(baud, dict(sorted(found.items())), bus.stats["crc_errors"]))
    return results


def add_scan_wait_argument(parser) -> None:
    """``--scan-wait-ms``, the same on every bring-up command."""
    parser.add_argument(
        "--scan-wait-ms",
        type=float,
        default=None,
        help="how long to collect broadcast-ping answers at each baud rate (default: enough for all 253 ids)",
    )


def scan_wait_s(args) -> float | None:
    """``--scan-wait-ms`` in seconds (None: the bus's default); a one-line error when not > 0."""
    if args.scan_wait_ms is None:
        return None
    if args.scan_wait_ms <= 0:
        raise PearlRobotError("--scan-wait-ms must be > 0")
    return args.scan_wait_ms / 1e3
