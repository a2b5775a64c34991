"""``pearl-robot setup-servo``: give the one servo connected its id and baud rate.

Assemble a new arm one servo at a time: connect a single servo, run this with the id its joint has in
the hardware YAML, repeat for the next. The YAML's bus.protocol says which servos: Dynamixel (X-series;
a new one answers as id 1 at 57600) or Feetech (SCS/STS; a new STS3215 answers as id 1 at 1000000).
Every baud rate of the protocol is scanned; exactly one servo must answer. Torque goes off, ID and
Baud Rate are written (EEPROM, only if different; on Feetech with the Lock register open, then closed,
so they survive a power cycle), and the servo must then answer at the new id and baud rate. Asks
before writing on a terminal; without one, --yes.
"""

from __future__ import annotations

import argparse

from pearl_robot.bringup.link import Link, add_scan_wait_argument, scan_wait_s
from pearl_robot.bringup.prompt import terminal_confirm
from pearl_robot.bringup.protocols import protocol_for
from pearl_robot.bringup.setup_servo import check_target, setup_servo
from pearl_robot.cli.main import add_robot_arguments
from pearl_robot.robot.spec import load_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "setup-servo",
        help="give the one connected servo its id and baud rate (new arm assembly)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_robot_arguments(parser, default_robot="serial:/dev/ttyUSB0", calibration=False)
    parser.add_argument("--id", type=int, required=True, help="the id to give it (0..252; Feetech: 0..253)")
    parser.add_argument("--baud", type=int, default=None, help="the baud rate to give it (default: the YAML's)")
    parser.add_argument("--yes", action="store_true", help="write without asking")
    add_scan_wait_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.hardware)
    baud = spec.bus.baudrate if args.baud is None else args.baud
    check_target(args.id, baud, protocol_for(spec))
    link = Link.from_robot(args.robot, spec)
    result = setup_servo(
        link,
        args.id,
        baud,
        confirm=terminal_confirm(args.yes),
        spec=spec,
        scan_wait_s=scan_wait_s(args),
    )
    print(f"found {result.model} (firmware {result.firmware}) as id {result.old_id} at {result.old_baud}")
    for change in result.changes:
        print(f"  {change.describe()}")
    state = "set" if result.changes else "already"
    print(f"{state}: id {result.servo_id} at {result.baud} baud; it answers there")
    return 0
