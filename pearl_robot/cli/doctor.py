"""``pearl-robot doctor``: diagnose a servo bus before running the arm on it.

The hardware YAML's bus.protocol says which servos: Dynamixel (Protocol 2.0, X-series) or Feetech
(SCS/STS, e.g. the SO-101's STS3215). Scans every baud rate of the protocol for servos and compares
ids, models and baud rates with the hardware YAML; reads each servo's Return Delay Time and error
status (a Dynamixel hardware error is cleared by a REBOOT: the doctor asks first on a terminal;
without one, or under CI=true, only --yes reboots; a Feetech servo has no REBOOT: power-cycle it);
checks the USB adapter's latency timer; measures ping round trips and a sync-read stress test of the
state block. Each finding has a severity (ok, warn, error) and a recommendation.

--fix applies the safe ones: Return Delay Time 0 (EEPROM, written only where it differs and read
back; on Feetech through the Lock register, so it survives a power cycle; a servo with torque on is
left alone unless --yes, or y on the terminal, lets the doctor turn its torque off first) and the
adapter's latency timer 1 ms where permitted.

Exit status: 0 when no finding is an error (or every error was fixed in this run), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json

from pearl_robot.bringup.doctor import Doctor, DoctorSettings
from pearl_robot.bringup.link import Link, add_scan_wait_argument, scan_wait_s
from pearl_robot.bringup.prompt import terminal_confirm
from pearl_robot.bringup.report import render
from pearl_robot.cli.main import add_robot_arguments
from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.spec import load_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="diagnose a servo bus: baud/id scan, latency, Return Delay Time, hardware errors, stress test",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_robot_arguments(parser, default_robot="serial:/dev/ttyUSB0", calibration=False)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument("--fix", action="store_true", help="apply the safe recommendations and report the changes")
    parser.add_argument("--yes", action="store_true", help="answer yes to every question (reboot, torque off)")
    parser.add_argument("--cycles", type=int, default=200, help="sync reads in the stress test (default %(default)s)")
    parser.add_argument(
        "--pings", type=int, default=20, help="pings per servo for the round trip (default %(default)s)"
    )
    add_scan_wait_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.cycles < 1 or args.pings < 1:
        raise PearlRobotError("--cycles and --pings must be >= 1")
    spec = load_spec(args.hardware)
    link = Link.from_robot(args.robot, spec)
    settings = DoctorSettings(
        cycles=args.cycles,
        pings=args.pings,
        scan_wait_s=scan_wait_s(args),
        fix=args.fix,
    )
    report = Doctor(link, spec, settings, terminal_confirm(args.yes)).run()
    print(json.dumps(report.to_dict(), indent=2) if args.json else render(report))
    return report.exit_code
