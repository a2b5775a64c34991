"""``open_robot``: the one place a robot name becomes a backend.

Names: ``sim``, ``mock``, ``serial:DEVICE``, ``tcp://HOST:PORT``, ``ipc://PATH``, optionally followed by
backend options ``?key=value&key=value`` (e.g. ``serial:/dev/ttyUSB0?timeout_margin_ms=20``). Backends are imported
lazily, so a mock robot needs neither MuJoCo nor pyserial to load.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

import yaml

from pearl_robot.errors import UnknownRobotError
from pearl_robot.robot.base import Robot
from pearl_robot.robot.spec import RobotSpec, load_spec

if TYPE_CHECKING:
    from pearl_robot.calibrate.model import Calibration

# scheme -> "module:Class"; each class has ``from_address(address, spec, **options) -> Robot``.
BACKENDS: dict[str, str] = {
    "sim": "pearl_robot.robot.sim:SimRobot",
    "mock": "pearl_robot.robot.mock:MockRobot",
    "serial": "pearl_robot.robot.serial_robot:SerialRobot",
    "tcp": "pearl_robot.robot.remote:RemoteRobot",
    "ipc": "pearl_robot.robot.remote:RemoteRobot",
}


def split_options(name: str) -> tuple[str, dict[str, Any]]:
    """'serial:/dev/ttyUSB0?timeout_margin_ms=20&retries=5' -> ('serial:/dev/ttyUSB0', {...}): backend
    options in the robot name, so every command that takes --robot can tune its backend."""
    if "?" not in name:
        return name, {}
    base, query = name.split("?", 1)
    options: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UnknownRobotError(f"robot option '{item}' in '{name}' is not KEY=VALUE")
        options[key] = yaml.safe_load(value)
    return base, options


def parse_robot_name(name: str) -> tuple[str, str]:
    """'serial:/dev/ttyUSB0' -> ('serial', '/dev/ttyUSB0'); 'tcp://h:1' -> ('tcp', 'tcp://h:1'); 'sim' -> ('sim', '')"""
    if "://" in name:
        scheme = name.split("://", 1)[0]
        address = name
    elif ":" in name:
        scheme, address = name.split(":", 1)
    else:
        scheme, address = name, ""
    if scheme not in BACKENDS:
        known = "sim, mock, serial:DEVICE, tcp://HOST:PORT, ipc://PATH"
        raise UnknownRobotError(f"unknown robot '{name}' (known: {known})")
    if scheme == "serial" and not address:
        raise UnknownRobotError("serial robots need a device: serial:/dev/ttyUSB0")
    return scheme, address


def backend_class(scheme: str) -> type[Robot]:
    module_name, class_name = BACKENDS[scheme].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def open_robot(
    name: str,
    hardware: str | os.PathLike[str] | RobotSpec | None = None,
    *,
    calibration: str | os.PathLike[str] | Calibration | None = None,
    safe: bool = True,
    safety: dict[str, Any] | None = None,
    **options: Any,
) -> Robot:
    """A Robot for ``name`` on the arm described by ``hardware`` (default: the shipped arm).

    ``calibration``: a calibration file (or a ``Calibration``) to apply (CalibratedRobot). Backends that
    drive hardware directly (``needs_calibration``: ``serial:``) default to ``calibration/<robot-id>.yaml``;
    without a valid one they connect and read raw angles but refuse to enable, saying how to fix it.
    The robot is wrapped in a SafeRobot unless ``safe=False``; ``safety`` passes SafeRobot options.
    It is returned unconnected: use it as a context manager or call ``connect()``.
    """
    name, name_options = split_options(name)
    options = {**name_options, **options}
    scheme, address = parse_robot_name(name)
    spec = load_spec(hardware)
    cls = backend_class(scheme)
    _check_options(cls, name, options)
    if calibration is not None or getattr(cls, "needs_calibration", False):
        from pearl_robot.calibrate.robot import open_calibrated

        robot = open_calibrated(cls, address, spec, calibration, options, name=name)
    else:
        robot = cls.from_address(address, spec, **options)
    if not safe:
        return robot
    from pearl_robot.robot.safety import SafeRobot

    return SafeRobot(robot, **(safety or {}))


def _check_options(cls: type[Robot], name: str, options: dict[str, Any]) -> None:
    """Unknown backend options are a clear error, not a TypeError from deep inside a constructor."""
    import inspect

    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = {n for n, p in parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL} - {"self", "spec"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise UnknownRobotError(
            f"robot '{name}' has no option '{unknown[0]}' (options: {', '.join(sorted(accepted)) or 'none'})"
        )
