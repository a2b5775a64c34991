"""Where the user-editable data folders (hardware/, sim/, calibration/) live.

- ``PEARL_ROBOT_HOME`` set: all three in that folder (a lab's own copy, with the same layout).
- a source checkout (editable install): the repository root, next to the package.
- an installed wheel: hardware/ and sim/ as shipped inside the package (``pearl_robot/data/``; in the
  repository those are symlinks to the top-level folders), and calibration/ in the working directory:
  a calibration is the user's own measurement and is never written into an installed package.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE_DIR.parent
SHIPPED_DATA = _PACKAGE_DIR / "data"


def _home() -> Path | None:
    configured = os.environ.get("PEARL_ROBOT_HOME")
    return Path(configured).expanduser().resolve() if configured else None


def in_checkout() -> bool:
    """True when the package runs from a source checkout (its pyproject.toml and hardware/ next to it)."""
    return (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "hardware").is_dir()


def data_root() -> Path:
    """The folder holding hardware/ and sim/."""
    home = _home()
    if home is not None:
        return home
    return _CHECKOUT if in_checkout() else SHIPPED_DATA


def hardware_dir() -> Path:
    return data_root() / "hardware"


def sim_dir() -> Path:
    return data_root() / "sim"


def calibration_dir() -> Path:
    """Where calibrations are read and written by default: PEARL_ROBOT_HOME, the checkout, or ./calibration."""
    home = _home()
    if home is not None:
        return home / "calibration"
    return _CHECKOUT / "calibration" if in_checkout() else Path.cwd() / "calibration"


DEFAULT_HARDWARE = "openmanipulator_x"


def resolve_hardware(hardware: str | os.PathLike[str] | None) -> Path:
    """A YAML path, or the name of a file in hardware/ (with or without ``.yaml``); None: the shipped arm."""
    if hardware is None:
        hardware = DEFAULT_HARDWARE
    path = Path(hardware)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path.expanduser().resolve()
    return hardware_dir() / f"{hardware}.yaml"
