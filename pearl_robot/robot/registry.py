"""``open_robot``: the one place a robot name becomes a backend.

Names: ``sim``, ``mock``, ``serial:DEVICE``, ``tcp://HOST:PORT``, ``ipc://PATH``, optionally followed by
backend options ``?key=value&key=value`` (e.g. ``serial:/dev/ttyUSB0?timeout_margin_ms=20``). Backends are imported
lazily, so a mock robot needs neither MuJoCo nor pyserial to load.

Options are checked against the backend constructor's type hints (int, float, bool, str, ``Literal[...]``,
``X | None``; ints are accepted for floats) and a few rules by name: counts (``retries``, ``*_count``, ...)
and durations (``*_ms``, ``*_s``, ``*_us``) are >= 0, ``baudrate`` is a rate the backend's servos talk at
(the class's ``SERVO_FAMILY`` and ``BAUDRATES``; Dynamixel's by default). A bad one, or a
ValueError/TypeError the constructor raises for its options, is an ``UnknownRobotError``: one line naming
the robot, the option, the value and what was expected.
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import os
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

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
# ``serial:DEVICE`` by the hardware file's bus.protocol: nothing above the Robot layer names a bus
SERIAL_BACKENDS: dict[str, str] = {
    "dynamixel": "pearl_robot.robot.serial_robot:SerialRobot",
    "feetech": "pearl_robot.robot.feetech_robot:FeetechRobot",
}

# the rates a Dynamixel X-series servo can talk at (control_table.BAUD_RATES, without importing it here)
DYNAMIXEL_BAUDRATES = (9_600, 57_600, 115_200, 1_000_000, 2_000_000, 3_000_000, 4_000_000, 4_500_000)
_DXL = ("Dynamixel", DYNAMIXEL_BAUDRATES)
DURATION_UNITS = frozenset({"ms", "s", "us"})  # the last word of a duration option's name
COUNT_WORDS = frozenset({"retries", "tries", "attempts", "count", "size", "num", "n", "periods", "steps"})


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
    return _load(BACKENDS[scheme])


def serial_backend(spec: RobotSpec) -> type[Robot]:
    """The ``serial:`` backend for the arm's bus (``bus.protocol`` of its hardware file)."""
    return _load(SERIAL_BACKENDS[spec.bus.protocol])


def _load(target: str) -> type[Robot]:
    module_name, class_name = target.split(":")
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
    cls = serial_backend(spec) if scheme == "serial" else backend_class(scheme)
    options = _check_options(cls, name, options)
    try:
        robot = _build(cls, address, spec, calibration, options, name)
    except (ValueError, TypeError) as exc:
        if not options:
            raise
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnknownRobotError(f"robot '{name}': {first_line}") from None
    if not safe:
        return robot
    from pearl_robot.robot.safety import SafeRobot

    return SafeRobot(robot, **(safety or {}))


def _build(
    cls: type[Robot], address: str, spec: RobotSpec, calibration: object, options: dict[str, Any], name: str
) -> Robot:
    if calibration is not None or getattr(cls, "needs_calibration", False):
        from pearl_robot.calibrate.robot import open_calibrated

        return open_calibrated(cls, address, spec, calibration, options, name=name)
    return cls.from_address(address, spec, **options)


def _check_options(cls: type[Robot], name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options, checked and coerced to the constructor's types: unknown options and bad values are a
    clear error, not a TypeError from deep inside a constructor."""
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return options
    accepted = {n for n, p in parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL} - {"self", "spec"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise UnknownRobotError(
            f"robot '{name}' has no option '{unknown[0]}' (options: {', '.join(sorted(accepted)) or 'none'})"
        )
    hints = _type_hints(cls.__init__)
    rates = getattr(cls, "SERVO_FAMILY", "Dynamixel"), getattr(cls, "BAUDRATES", DYNAMIXEL_BAUDRATES)
    return {key: _check_value(name, key, value, hints.get(key), rates) for key, value in options.items()}


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    """The resolved hints, or none where one names a type only imported for type checkers."""
    try:
        return typing.get_type_hints(function)
    except NameError:
        return {}


class _Mismatch(Exception):
    """A value that fits none of an option's types; the message says what was expected."""


def _check_value(name: str, key: str, value: Any, hint: Any, rates: tuple[str, tuple[int, ...]] = _DXL) -> Any:
    try:
        value_as_typed, phrase = _coerce(value, hint)
        _check_range(key, value_as_typed, phrase, rates)
    except _Mismatch as exc:
        raise UnknownRobotError(f"robot '{name}' option {key}={value!r}: expected {exc}") from None
    return value_as_typed


def _coerce(value: Any, hint: Any) -> tuple[Any, str]:
    """(the value as the option's type, what that type is called). Hints other than int, float, bool,
    str, Literal and their unions with None (objects a caller passes in Python) accept anything."""
    alternatives = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if hint is None or not all(_judged(a) for a in alternatives):
        return value, ""
    phrases = []
    for alternative in alternatives:
        phrase = _phrase(alternative)
        if _fits(value, alternative):
            return (float(value) if alternative is float else value), phrase
        phrases.append(phrase)
    raise _Mismatch(" or ".join(phrases))


def _judged(hint: Any) -> bool:
    return hint in (int, float, bool, str, type(None)) or typing.get_origin(hint) is Literal


def _fits(value: Any, hint: Any) -> bool:
    if typing.get_origin(hint) is Literal:
        return any(value == choice and type(value) is type(choice) for choice in typing.get_args(hint))
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return isinstance(value, hint)


def _phrase(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(hint))
    names = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}
    return names.get(hint, "null")


def _check_range(key: str, value: Any, phrase: str, rates: tuple[str, tuple[int, ...]] = _DXL) -> None:
    """Rules by name: a baud rate of the backend's servos (``rates``: family, bps); counts, durations >= 0."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return
    words = key.split("_")
    family, bauds = rates
    if key == "baudrate" and value not in bauds:
        raise _Mismatch(f"a {family} baud rate: " + ", ".join(map(str, bauds)))
    if value < 0 and words[-1] in DURATION_UNITS:
        raise _Mismatch(f"a duration >= 0 ({words[-1]})")
    if value < 0 and COUNT_WORDS & set(words):
        raise _Mismatch(f"{phrase} >= 0 (a count)")
