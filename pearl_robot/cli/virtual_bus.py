"""``pearl-robot virtual-bus``: a virtual Dynamixel servo bus on a pseudo-terminal.

Prints the device path on the first line of standard output (then serves until SIGINT or SIGTERM),
so a script can start it and connect: ``--robot serial:$(head -1 ...)``, or give ``--link PATH`` and
use the symlink. Diagnostics go to standard error.

Realistic by default where it matters to a client: every servo keeps the factory Return Delay Time
(500 us) and listens at the hardware file's baud rate only. ``--adapter-latency-ms 16`` puts a stock
FTDI/U2D2 USB adapter in front (replies held up to its latency timer); ``--servo-baud-rates`` sets
other speeds (a client at another speed gets no answer, as when scanning for servos).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from pathlib import Path

import yaml

from pearl_robot.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "virtual-bus",
        help="serve a virtual Dynamixel servo bus (the arm in MuJoCo) on a pseudo-terminal",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--hardware", default=None, help="the arm's hardware YAML (default: the shipped OpenManipulator-X)"
    )
    parser.add_argument("--link", default=None, help="also make a symlink to the device at this path")
    parser.add_argument(
        "--faults",
        default=None,
        help="faults to inject, e.g. 'latency_ms=5,drop=0.01,corrupt=0.01,hw_error=12:overload@2,vanish_after_s=10'",
    )
    parser.add_argument("--no-physics", action="store_true", help="ideal servos (joints jump to their goals)")
    parser.add_argument("--dynamics", default=None, help="YAML file of ArmDynamics fields (perturbed physics)")
    parser.add_argument(
        "--hidden-offsets",
        default=None,
        help="comma-separated per-joint encoder offsets in ticks that a client does not know (calibration tests)",
    )
    parser.add_argument(
        "--hidden-directions",
        default=None,
        help="comma-separated per-joint directions, 1 or -1 (-1: the servo turns against the joint), that a "
        "client does not know (calibration tests)",
    )
    parser.add_argument(
        "--sensor-noise-ticks",
        type=float,
        default=0.0,
        help="standard deviation of Gaussian noise on present position, in encoder ticks (default %(default)s)",
    )
    parser.add_argument(
        "--return-delay-time",
        type=int,
        default=None,
        help="Return Delay Time every servo starts with, in 2 us units (factory default 250)",
    )
    parser.add_argument(
        "--adapter-latency-ms",
        default="0",
        help="latency timer of the USB-serial adapter the replies come through: whole 62-byte USB packets "
        "go at once, the rest this long after the last byte (16 = a stock FTDI/U2D2 at its factory latency "
        "timer; default 0: no adapter delay)",
    )
    parser.add_argument(
        "--servo-baud-rates",
        default=None,
        help="baud rate (bps) the servos listen at: one for all or comma-separated per joint "
        "(default: the hardware file's bus baud rate)",
    )
    parser.set_defaults(func=run)


def _load_dynamics(path: str | None):
    if path is None:
        return None
    from pearl_robot.robot.dynamics import ArmDynamics

    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text())
        return ArmDynamics.from_dict(data or {})
    except FileNotFoundError:
        raise ConfigError(file, "<file>", "dynamics file not found") from None
    except (yaml.YAMLError, TypeError, ValueError) as exc:
        raise ConfigError(file, "<dynamics>", str(exc)) from None


def _parse_offsets(text: str | None, n: int, option: str = "--hidden-offsets") -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(option, "<value>", f"expected integers, got {text!r}") from None
    if len(values) != n:
        raise ConfigError(option, "<value>", f"expected {n} values (one per joint), got {len(values)}")
    return values


def _parse_directions(text: str | None, n: int) -> list[int] | None:
    values = _parse_offsets(text, n, "--hidden-directions")
    if values is not None and any(v not in (1, -1) for v in values):
        raise ConfigError("--hidden-directions", "<value>", f"each direction is 1 or -1, got {text!r}")
    return values


def _parse_latency_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < math.inf:
        raise ConfigError("--adapter-latency-ms", "<value>", f"expected milliseconds >= 0, got {text!r}")
    return value


def _parse_baud_rates(text: str | None, n: int) -> list[int] | None:
    from pearl_robot.virtual.bus import baud_register

    if text is None:
        return None
    values = _parse_offsets(text, len(text.split(",")), "--servo-baud-rates")
    if len(values) not in (1, n):
        raise ConfigError(
            "--servo-baud-rates", "<value>", f"expected 1 or {n} values (one per joint), got {len(values)}"
        )
    for bps in values:
        try:
            baud_register(bps)
        except ValueError as exc:
            raise ConfigError("--servo-baud-rates", "<value>", str(exc)) from None
    return values * n if len(values) == 1 else values


def run(args: argparse.Namespace) -> int:
    from pearl_robot.robot.spec import load_spec
    from pearl_robot.virtual import VirtualServoBus, parse_faults

    spec = load_spec(args.hardware)
    try:
        faults = parse_faults(args.faults)
    except ValueError as exc:
        raise ConfigError("--faults", "<value>", str(exc)) from None
    bus = VirtualServoBus.from_spec(
        spec,
        physics=not args.no_physics,
        dynamics=_load_dynamics(args.dynamics),
        hidden_offsets_ticks=_parse_offsets(args.hidden_offsets, spec.num_joints),
        hidden_directions=_parse_directions(args.hidden_directions, spec.num_joints),
        sensor_noise_ticks=args.sensor_noise_ticks,
        return_delay_time=args.return_delay_time,
        servo_baud_rates=_parse_baud_rates(args.servo_baud_rates, spec.num_joints),
        adapter_latency_ms=_parse_latency_ms(args.adapter_latency_ms),
        faults=faults,
        link=args.link,
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        bus.start()
        print(bus.device_path, flush=True)
        ids = ", ".join(f"{j.name}={j.servo_id}" for j in spec.joints)
        print(f"virtual-bus: {spec.robot_id} on {bus.device_path} ({ids})", file=sys.stderr, flush=True)
        while not stop.wait(0.1):
            if bus.vanished.is_set():
                print("virtual-bus: the device vanished (fault injection)", file=sys.stderr, flush=True)
                break
    finally:
        bus.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stats = ", ".join(f"{k}={v}" for k, v in bus.stats.items() if v)
    print(f"virtual-bus: stopped ({stats or 'no traffic'})", file=sys.stderr, flush=True)
    return 0
