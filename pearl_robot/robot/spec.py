"""The robot description: one YAML per arm in hardware/, validated into a frozen RobotSpec."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pearl_robot.errors import ConfigError
from pearl_robot.paths import resolve_hardware

JOINT_ROLES = ("arm", "gripper")


@dataclass(frozen=True)
class JointSpec:
    name: str
    servo_id: int
    model: str
    role: str
    min_rad: float
    max_rad: float
    max_velocity_rad_s: float


BUS_PROTOCOLS = ("dynamixel", "feetech")  # BusSpec.protocol: which servo family (and backend) the bus speaks


@dataclass(frozen=True)
class BusSpec:
    protocol: str  # one of BUS_PROTOCOLS
    baudrate: int
    latency_timer_ms: float


@dataclass(frozen=True)
class SafetySpec:
    max_step_rad: float
    watchdog_periods: int


@dataclass(frozen=True)
class RobotSpec:
    robot_id: str
    description: str
    source: Path
    control_rate_hz: float
    joints: tuple[JointSpec, ...]
    bus: BusSpec
    safety: SafetySpec
    home_rad: np.ndarray
    mjcf: Path | None
    end_effector_site: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def position_min(self) -> np.ndarray:
        return np.array([j.min_rad for j in self.joints])

    @property
    def position_max(self) -> np.ndarray:
        return np.array([j.max_rad for j in self.joints])

    @property
    def velocity_max(self) -> np.ndarray:
        return np.array([j.max_velocity_rad_s for j in self.joints])

    @property
    def arm_joint_indices(self) -> np.ndarray:
        return np.array([i for i, j in enumerate(self.joints) if j.role == "arm"], dtype=np.int64)

    def joint_index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise ConfigError(
                self.source, "joints", f"unknown joint '{name}' (known: {', '.join(self.joint_names)})"
            ) from None


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], file: Path, prefix: str = "") -> Any:
    where = f"{prefix}{key}"
    if key not in data:
        raise ConfigError(file, where, "missing")
    value = data[key]
    if kind in (float, (int, float)):
        kind = (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(file, where, f"expected {names}, got {type(value).__name__} {value!r}")
    if isinstance(value, (int, float)) and not math.isfinite(value):
        raise ConfigError(file, where, f"must be finite, got {value!r}")
    return value


def _positive(value: float, file: Path, where: str) -> float:
    if value <= 0:
        raise ConfigError(file, where, f"must be > 0, got {value!r}")
    return float(value)


def _parse_joint(raw: Any, index: int, file: Path) -> JointSpec:
    prefix = f"joints[{index}]."
    if not isinstance(raw, dict):
        raise ConfigError(file, f"joints[{index}]", "expected a mapping")
    known = {"name", "id", "model", "role", "min_rad", "max_rad", "max_velocity_rad_s"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(file, prefix + unknown[0], f"unknown field (known: {', '.join(sorted(known))})")
    name = _require(raw, "name", str, file, prefix)
    servo_id = _require(raw, "id", int, file, prefix)
    if not 0 <= servo_id <= 252:
        raise ConfigError(file, prefix + "id", f"servo id must be in 0..252, got {servo_id}")
    model = _require(raw, "model", str, file, prefix)
    role = raw.get("role", "arm")
    if role not in JOINT_ROLES:
        raise ConfigError(file, prefix + "role", f"must be one of {JOINT_ROLES}, got {role!r}")
    lo = float(_require(raw, "min_rad", float, file, prefix))
    hi = float(_require(raw, "max_rad", float, file, prefix))
    if lo >= hi:
        raise ConfigError(file, prefix + "max_rad", f"must be greater than min_rad ({lo} >= {hi})")
    if lo < -math.pi - 1e-9 or hi > math.pi + 1e-9:
        raise ConfigError(file, prefix + "min_rad", f"range [{lo}, {hi}] exceeds one turn [-pi, pi]")
    vmax = _positive(_require(raw, "max_velocity_rad_s", float, file, prefix), file, prefix + "max_velocity_rad_s")
    return JointSpec(name, servo_id, model, role, lo, hi, vmax)


def _parse_protocol(raw: Any, file: Path) -> str:
    """2.0 / "2.0" / "dynamixel" -> "dynamixel" (Dynamixel Protocol 2.0); "feetech" -> "feetech" (SCS/STS)."""
    if isinstance(raw, str) and raw.strip().lower() in BUS_PROTOCOLS:
        return raw.strip().lower()
    if not isinstance(raw, bool) and isinstance(raw, (int, float, str)) and str(raw).strip() in ("2", "2.0"):
        return "dynamixel"
    raise ConfigError(file, "bus.protocol", f"expected 2.0 (Dynamixel Protocol 2.0), dynamixel or feetech, got {raw!r}")


def parse_spec(data: Any, file: Path) -> RobotSpec:
    if not isinstance(data, dict):
        raise ConfigError(file, "<root>", "expected a mapping at the top level")
    robot_id = _require(data, "robot_id", str, file)
    rate = _positive(_require(data, "control_rate_hz", float, file), file, "control_rate_hz")
    raw_joints = _require(data, "joints", list, file)
    if not raw_joints:
        raise ConfigError(file, "joints", "at least one joint is required")
    joints = tuple(_parse_joint(raw, i, file) for i, raw in enumerate(raw_joints))
    for attr in ("name", "servo_id"):
        values = [getattr(j, attr) for j in joints]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ConfigError(file, "joints", f"duplicate {attr}: {dupes[0]}")
    if not any(j.role == "arm" for j in joints):
        raise ConfigError(file, "joints", "at least one joint needs role 'arm'")

    bus_raw = data.get("bus", {})
    if not isinstance(bus_raw, dict):
        raise ConfigError(file, "bus", "expected a mapping")
    protocol = _parse_protocol(bus_raw.get("protocol", 2.0), file)
    baudrate = bus_raw.get("baudrate", 1_000_000)
    if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
        raise ConfigError(file, "bus.baudrate", f"expected a positive integer, got {baudrate!r}")
    latency = bus_raw.get("latency_timer_ms", 1)
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0:
        raise ConfigError(file, "bus.latency_timer_ms", f"expected a number >= 0, got {latency!r}")
    bus = BusSpec(protocol, baudrate, float(latency))

    safety_raw = data.get("safety", {})
    if not isinstance(safety_raw, dict):
        raise ConfigError(file, "safety", "expected a mapping")
    max_step = _positive(float(safety_raw.get("max_step_rad", 0.15)), file, "safety.max_step_rad")
    watchdog = safety_raw.get("watchdog_periods", 2)
    if isinstance(watchdog, bool) or not isinstance(watchdog, int) or watchdog < 1:
        raise ConfigError(file, "safety.watchdog_periods", f"expected an integer >= 1, got {watchdog!r}")
    safety = SafetySpec(max_step, watchdog)

    home = data.get("home_rad", [0.0] * len(joints))
    if not isinstance(home, list) or len(home) != len(joints):
        raise ConfigError(file, "home_rad", f"expected a list of {len(joints)} numbers (one per joint)")
    try:
        home_arr = np.array(home, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(file, "home_rad", "expected numbers") from None
    lo = np.array([j.min_rad for j in joints])
    hi = np.array([j.max_rad for j in joints])
    if not np.all(np.isfinite(home_arr)) or np.any(home_arr < lo) or np.any(home_arr > hi):
        raise ConfigError(file, "home_rad", "every home position must be finite and inside its joint's limits")

    sim_raw = data.get("sim") or {}
    if not isinstance(sim_raw, dict):
        raise ConfigError(file, "sim", "expected a mapping")
    mjcf = None
    if "mjcf" in sim_raw:
        mjcf = (file.parent / str(sim_raw["mjcf"])).resolve()
        if not mjcf.exists():
            raise ConfigError(file, "sim.mjcf", f"file not found: {mjcf}")
    known = {"robot_id", "description", "control_rate_hz", "joints", "bus", "safety", "home_rad", "sim"}
    extra = {k: v for k, v in data.items() if k not in known}
    return RobotSpec(
        robot_id=robot_id,
        description=str(data.get("description", "")),
        source=file,
        control_rate_hz=rate,
        joints=joints,
        bus=bus,
        safety=safety,
        home_rad=home_arr,
        mjcf=mjcf,
        end_effector_site=sim_raw.get("end_effector_site"),
        extra=extra,
    )


def load_spec(hardware: str | os.PathLike[str] | RobotSpec | None = None) -> RobotSpec:
    """Load and validate a hardware YAML (a path, a name in hardware/, or None for the shipped arm)."""
    if isinstance(hardware, RobotSpec):
        return hardware
    path = resolve_hardware(hardware)
    if not path.exists():
        raise ConfigError(path, "<file>", "hardware file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "<yaml>"
        raise ConfigError(path, where, f"malformed YAML: {getattr(exc, 'problem', exc)}") from None
    return parse_spec(data, path)
