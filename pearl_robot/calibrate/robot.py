"""CalibratedRobot: raw backend angles <-> the arm's joint angles, identically on every backend.

The wrapped backend runs on the *raw* spec (limits and home mapped into raw angles), so whatever it
clamps, it clamps in its own units; everything above sees calibrated joint angles and the calibrated
limits (the hardware YAML's limits narrowed to the measured range).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pearl_robot.calibrate.model import Calibration
from pearl_robot.errors import ConfigError
from pearl_robot.robot.base import Robot, RobotState, RobotWrapper, non_numbers
from pearl_robot.robot.spec import JointSpec, RobotSpec


def calibrated_spec(spec: RobotSpec, calibration: Calibration) -> RobotSpec:
    """The hardware YAML's limits narrowed to the calibrated range of each joint."""
    joints = []
    for joint in spec.joints:
        cal = calibration.joints[joint.name]
        lo, hi = joint.min_rad, joint.max_rad
        if cal.min_rad is not None:
            lo, hi = max(lo, cal.min_rad), min(hi, cal.max_rad)
            if lo >= hi:
                raise ConfigError(
                    calibration.source or "calibration",
                    f"joints.{joint.name}.min_rad",
                    f"measured range [{cal.min_rad:.3f}, {cal.max_rad:.3f}] does not overlap the hardware limits",
                )
        joints.append(dataclasses.replace(joint, min_rad=lo, max_rad=hi))
    home = np.clip(spec.home_rad, [j.min_rad for j in joints], [j.max_rad for j in joints])
    return dataclasses.replace(spec, joints=tuple(joints), home_rad=home)


def raw_spec(spec: RobotSpec, calibration: Calibration) -> RobotSpec:
    """The spec in the backend's raw angles: what the wrapped backend sees."""
    offsets, directions = calibration.arrays(spec)
    joints: list[JointSpec] = []
    for joint, off, sign in zip(spec.joints, offsets, directions):
        a, b = sign * joint.min_rad + off, sign * joint.max_rad + off
        joints.append(dataclasses.replace(joint, min_rad=float(min(a, b)), max_rad=float(max(a, b))))
    return dataclasses.replace(spec, joints=tuple(joints), home_rad=directions * spec.home_rad + offsets)


class CalibratedRobot(RobotWrapper):
    """``joint = direction * (raw - offset)``. The wrapped backend must run on ``raw_spec(spec, calibration)``."""

    def __init__(self, inner: Robot, spec: RobotSpec, calibration: Calibration) -> None:
        calibration.check_matches(spec)
        super().__init__(inner, calibrated_spec(spec, calibration))
        self.calibration = calibration
        self.offsets, self.directions = calibration.arrays(spec)

    def to_joint(self, raw: np.ndarray) -> np.ndarray:
        return self.directions * (np.asarray(raw, dtype=float) - self.offsets)

    def to_raw(self, joint: np.ndarray) -> np.ndarray:
        return self.directions * np.asarray(joint, dtype=float) + self.offsets

    def read(self) -> RobotState:
        raw = self.inner.read()
        effort = None if raw.effort is None else self.directions * raw.effort
        return RobotState(
            self.to_joint(raw.position), self.directions * raw.velocity, effort, raw.timestamp, raw.faults
        )

    def write(self, targets: np.ndarray) -> np.ndarray:
        if non_numbers(targets):
            return self.inner.write(targets)  # the backend refuses it: True is no angle
        targets = np.asarray(targets, dtype=float)
        if targets.shape != (self.spec.num_joints,):
            return self.inner.write(targets)  # the backend raises its clear shape error
        return self.to_joint(self.inner.write(self.to_raw(targets)))

    def teleport(self, position: np.ndarray) -> None:
        self.inner.teleport(self.to_raw(position))


class UncalibratedRobot(RobotWrapper):
    """A hardware backend with no (valid) calibration: states are readable (the calibration procedure
    needs them), enabling is refused with the reason and the fix."""

    def __init__(self, inner: Robot, reason: str) -> None:
        super().__init__(inner)
        self.reason = reason

    def enable(self) -> None:
        raise ConfigError(self.spec.source, "calibration", self.reason)


def open_calibrated(
    cls: type[Robot], address: str, spec: RobotSpec, calibration: object, options: dict, name: str = "ROBOT"
) -> Robot:
    """Build ``cls`` wrapped in its calibration; an arm without one can connect but not enable.

    ``calibration``: a file, a ``Calibration`` or None (``calibration/<robot-id>.yaml``)."""
    from pearl_robot.calibrate.model import default_path, load_calibration

    path = default_path(spec.robot_id) if calibration is None else calibration
    hardware = f" --hardware {spec.source}" if spec.source else ""
    fix = (
        f"run `pearl-robot calibrate joints --robot {name}{hardware}` (it writes {default_path(spec.robot_id)}), "
        "or pass --calibration FILE"
    )
    try:
        loaded = path if isinstance(path, Calibration) else load_calibration(path)
        loaded.check_matches(spec)
    except ConfigError as exc:
        reason = f"this arm is not calibrated ({exc.reason if exc.field == '<file>' else exc}); {fix}"
        return UncalibratedRobot(cls.from_address(address, spec, **options), reason)
    inner = cls.from_address(address, raw_spec(spec, loaded), **options)
    return CalibratedRobot(inner, spec, loaded)
