"""Where the user-editable data folders (hardware/, sim/, calibration/) live.

They sit at the repository root next to the package; ``PEARL_ROBOT_HOME`` points elsewhere
(for an installed copy, or a lab's own folder of arms).
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_root() -> Path:
    configured = os.environ.get("PEARL_ROBOT_HOME")
    if configured:
        return Path(configured).expanduser().resolve()
    return _PACKAGE_DIR.parent


def hardware_dir() -> Path:
    return data_root() / "hardware"


def sim_dir() -> Path:
    return data_root() / "sim"


def calibration_dir() -> Path:
    return data_root() / "calibration"


DEFAULT_HARDWARE = "openmanipulator_x"


def resolve_hardware(hardware: str | os.PathLike[str] | None) -> Path:
    """A YAML path, or the name of a file in hardware/ (with or without ``.yaml``); None: the shipped arm."""
    if hardware is None:
        hardware = DEFAULT_HARDWARE
    path = Path(hardware)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path.expanduser().resolve()
    return hardware_dir() / f"{hardware}.yaml"
