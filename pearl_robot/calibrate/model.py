"""The calibration file: ``calibration/<robot-id>.yaml``.

Joint calibration maps a backend's raw joint angle to the arm's joint angle (the one the simulator and
the hardware YAML use):  ``joint = direction * (raw - offset_rad)``; the measured range narrows the
YAML's limits. System identification adds the fitted simulator parameters (an ArmDynamics).
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pearl_robot.errors import ConfigError
from pearl_robot.io import atomic_write_yaml
from pearl_robot.paths import calibration_dir
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.robot.spec import RobotSpec


@dataclass(frozen=True)
class JointCalibration:
    offset_rad: float = 0.0
    direction: int = 1
    min_rad: float | None = None  # measured range, in joint angles
    max_rad: float | None = None


@dataclass
class Calibration:
    robot_id: str
    joints: dict[str, JointCalibration]
    servo_ids: dict[str, int] = field(default_factory=dict)
    dynamics: ArmDynamics | None = None
    fit: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    source: Path | None = None

    @classmethod
    def identity(cls, spec: RobotSpec) -> Calibration:
        return cls(
            spec.robot_id, {j.name: JointCalibration() for j in spec.joints}, {j.name: j.servo_id for j in spec.joints}
        )

    def arrays(self, spec: RobotSpec) -> tuple[np.ndarray, np.ndarray]:
        """(offset_rad, direction) in spec joint order."""
        offsets = np.array([self.joints[n].offset_rad for n in spec.joint_names])
        directions = np.array([self.joints[n].direction for n in spec.joint_names], dtype=float)
        return offsets, directions

    def check_matches(self, spec: RobotSpec) -> None:
        """Refuse a calibration made for another arm or another hardware file."""
        where = self.source or "calibration"
        fix = f"re-run `pearl-robot calibrate joints --hardware {spec.source}`"
        if self.robot_id != spec.robot_id:
            raise ConfigError(
                where, "robot_id", f"is '{self.robot_id}', the hardware file says '{spec.robot_id}'; {fix}"
            )
        if set(self.joints) != set(spec.joint_names):
            raise ConfigError(
                where, "joints", f"{sorted(self.joints)} do not match the hardware's {list(spec.joint_names)}; {fix}"
            )
        for joint in spec.joints:
            if self.servo_ids and self.servo_ids.get(joint.name) != joint.servo_id:
                raise ConfigError(
                    where,
                    f"joints.{joint.name}.id",
                    f"servo id {self.servo_ids.get(joint.name)} != {joint.servo_id}; {fix}",
                )

    def to_dict(self) -> dict[str, Any]:
        joints = {}
        for name, cal in self.joints.items():
            entry: dict[str, Any] = {"offset_rad": float(cal.offset_rad), "direction": int(cal.direction)}
            if self.servo_ids.get(name) is not None:
                entry["id"] = int(self.servo_ids[name])
            if cal.min_rad is not None:
                entry["min_rad"] = float(cal.min_rad)
                entry["max_rad"] = float(cal.max_rad)
            joints[name] = entry
        out: dict[str, Any] = {"robot_id": self.robot_id, "created": self.created or _now(), "joints": joints}
        if self.dynamics is not None:
            out["dynamics"] = _plain(self.dynamics.to_dict())
        if self.fit:
            out["fit"] = _plain(self.fit)
        return out

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        target = Path(path) if path else default_path(self.robot_id)
        atomic_write_yaml(target, self.to_dict())
        self.source = target
        return target


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def default_path(robot_id: str) -> Path:
    return calibration_dir() / f"{robot_id}.yaml"


def load_calibration(path: str | os.PathLike[str]) -> Calibration:
    path = Path(path)
    if not path.exists():
        raise ConfigError(path, "<file>", "calibration file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(path, "<yaml>", f"malformed YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("robot_id"), str):
        raise ConfigError(path, "robot_id", "missing")
    raw_joints = data.get("joints")
    if not isinstance(raw_joints, dict) or not raw_joints:
        raise ConfigError(path, "joints", "expected a mapping of joint name -> calibration")
    joints: dict[str, JointCalibration] = {}
    servo_ids: dict[str, int] = {}
    for name, entry in raw_joints.items():
        if not isinstance(entry, dict):
            raise ConfigError(path, f"joints.{name}", "expected a mapping")
        direction = entry.get("direction", 1)
        if direction not in (1, -1):
            raise ConfigError(path, f"joints.{name}.direction", f"must be 1 or -1, got {direction!r}")
        offset = entry.get("offset_rad", 0.0)
        if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not np.isfinite(offset):
            raise ConfigError(path, f"joints.{name}.offset_rad", f"expected a finite number, got {offset!r}")
        lo, hi = entry.get("min_rad"), entry.get("max_rad")
        if (lo is None) != (hi is None) or (lo is not None and not lo < hi):
            raise ConfigError(path, f"joints.{name}.min_rad", "min_rad and max_rad go together, min < max")
        joints[name] = JointCalibration(float(offset), int(direction), lo, hi)
        if "id" in entry:
            servo_ids[name] = int(entry["id"])
    dynamics = None
    if data.get("dynamics") is not None:
        try:
            dynamics = ArmDynamics.from_dict(data["dynamics"])
        except TypeError as exc:
            raise ConfigError(path, "dynamics", str(exc)) from None
    return Calibration(
        data["robot_id"], joints, servo_ids, dynamics, data.get("fit") or {}, str(data.get("created", "")), path
    )
