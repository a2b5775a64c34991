"""The ``pearl-robot`` command: one subcommand per job, each in its own module.

A subcommand module defines ``register(subparsers)`` which adds its parser and sets ``func``
(``func(args) -> int``). User mistakes (PearlRobotError) print one clear line, not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pearl_robot.errors import PearlRobotError

# subcommand name -> module defining register(subparsers)
SUBCOMMANDS: dict[str, str] = {
    "demo": "pearl_robot.cli.demo",
    "bench": "pearl_robot.cli.bench",
    "train": "pearl_robot.cli.train",
    "eval": "pearl_robot.cli.evaluate",
    "plot": "pearl_robot.cli.plot",
    "adapt": "pearl_robot.cli.adapt",
    "serve": "pearl_robot.cli.serve",
    "keys": "pearl_robot.cli.keys",
    "virtual-bus": "pearl_robot.cli.virtual_bus",
    "calibrate": "pearl_robot.cli.calibrate",
    "sweep": "pearl_robot.cli.sweep",
    "doctor": "pearl_robot.cli.doctor",
    "setup-servo": "pearl_robot.cli.setup_servo",
    "replay": "pearl_robot.cli.replay",
    "export": "pearl_robot.cli.export",
    "view": "pearl_robot.cli.view",
}


def add_robot_arguments(parser: argparse.ArgumentParser, default_robot: str = "sim", calibration: bool = True) -> None:
    """--robot, --hardware and (unless ``calibration=False``) --calibration, with the same meaning on
    every command that touches a robot."""
    parser.add_argument(
        "--robot",
        default=default_robot,
        help="robot to drive: sim, mock, serial:DEVICE, tcp://HOST:PORT or ipc://PATH (default: %(default)s)",
    )
    parser.add_argument(
        "--hardware",
        default=None,
        help="the arm's hardware YAML (a path or a name in hardware/; default: the shipped OpenManipulator-X)",
    )
    if calibration:
        parser.add_argument(
            "--calibration",
            default=None,
            metavar="FILE",
            help="the arm's calibration file (`pearl-robot calibrate joints`); hardware backends (serial:) "
            "default to calibration/<robot-id>.yaml and refuse to enable without a valid one",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pearl-robot",
        description="Sim-to-real meta-RL with PEARL: meta-train in MuJoCo, adapt on a real arm.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS.values():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # a subcommand not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PearlRobotError as exc:
        print(f"pearl-robot {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pearl-robot {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
