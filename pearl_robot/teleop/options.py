"""The teleoperation options of ``pearl-robot adapt``, and the TakeoverRobot they build."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pearl_robot.errors import PearlRobotError

if TYPE_CHECKING:
    from pearl_robot.robot.base import Robot
    from pearl_robot.teleop.source import TeleopSource
    from pearl_robot.teleop.takeover import TakeoverRobot


def add_teleop_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--teleop",
        default=None,
        metavar="SOURCE",
        help="let a person take the arm over: keyboard (this terminal), gamepad or gamepad:/dev/input/jsN; the "
        "operator's steps are marked 'intervention' in the log and the exports (keys: see pearl_robot.teleop.bindings)",
    )
    parser.add_argument(
        "--teleop-reset",
        action="store_true",
        help="with --teleop: before each episode after the first, jog the arm until you hand it back",
    )
    parser.add_argument(
        "--context-includes-interventions",
        action="store_true",
        default=None,
        help="the operator's steps are posterior context too (default: only the policy's; kept on --resume)",
    )


def open_teleop(args: argparse.Namespace) -> TeleopSource | None:
    """The ``--teleop`` device, opened before anything slow (a device that is not there: one clear line)."""
    if args.teleop is None:
        if args.teleop_reset:
            raise PearlRobotError("--teleop-reset needs --teleop SOURCE")
        return None
    if args.dry_run:
        raise PearlRobotError("--teleop drives the arm, and a --dry-run never moves it: give one or the other")
    from pearl_robot.robot.spec import load_spec
    from pearl_robot.teleop import open_source
    from pearl_robot.teleop.bindings import GAMEPAD_HELP, keyboard_help

    spec = load_spec(args.hardware)
    source = open_source(args.teleop, spec)
    print(keyboard_help(spec.num_joints) if source.name == "keyboard" else GAMEPAD_HELP, flush=True)
    return source


def takeover_for(args: argparse.Namespace, robot: Robot, source: TeleopSource | None) -> TakeoverRobot | None:
    """The robot the env drives when ``--teleop`` is given: the operator's targets go through ``robot``."""
    if source is None:
        return None
    from pearl_robot.teleop.takeover import TakeoverRobot

    return TakeoverRobot(robot, source, reset_jog=args.teleop_reset, say=lambda line: print(line, flush=True))


def check_context_option(args: argparse.Namespace, env: Any) -> None:
    """Operator steps can feed the posterior only where the policy's action space can express them."""
    if args.context_includes_interventions and getattr(env, "controller", None) is not None:
        raise PearlRobotError(
            "--context-includes-interventions: this family's actions are controller parameters, which an "
            "operator's jog has none of; its intervention steps stay out of the context"
        )
