"""Teleoperation: a person takes the arm over from the policy (and hands it back), and jogs it between
episodes. Sources (``keyboard``, ``gamepad[:DEVICE]``) give jogs and events (``source``); keys live in
``bindings``; ``TakeoverRobot`` puts the operator's targets through the same SafeRobot as the policy's."""

from __future__ import annotations

from collections.abc import Callable

from pearl_robot.robot.spec import RobotSpec
from pearl_robot.teleop.source import TeleopCommand, TeleopEvent, TeleopSource, TeleopUnavailable

SOURCES = ("keyboard", "gamepad")


def _keyboard(spec: RobotSpec, address: str | None) -> TeleopSource:
    from pearl_robot.teleop.keyboard import KeyboardSource

    if address:
        raise TeleopUnavailable(f"--teleop keyboard takes no device (got 'keyboard:{address}'); it reads stdin")
    return KeyboardSource(spec.num_joints)


def _gamepad(spec: RobotSpec, address: str | None) -> TeleopSource:
    from pearl_robot.teleop.gamepad import GamepadSource

    return GamepadSource(spec, address or None)


_OPENERS: dict[str, Callable[[RobotSpec, str | None], TeleopSource]] = {"keyboard": _keyboard, "gamepad": _gamepad}


def open_source(name: str, spec: RobotSpec) -> TeleopSource:
    """``keyboard`` (stdin, a terminal), ``gamepad`` (the first /dev/input/js*) or ``gamepad:/dev/input/jsN``."""
    kind, _, address = name.partition(":")
    opener = _OPENERS.get(kind)
    if opener is None:
        raise TeleopUnavailable(f"--teleop '{name}': unknown source (known: {', '.join(SOURCES)}, gamepad:DEVICE)")
    return opener(spec, address)


__all__ = ["SOURCES", "TeleopCommand", "TeleopEvent", "TeleopSource", "TeleopUnavailable", "open_source"]
