"""Physical parameters of a simulated arm that task families, system identification and the
virtual servo bus vary: per-joint damping, friction loss, armature and actuator gain, payload mass
and control latency. Applied to a compiled MuJoCo model relative to its nominal values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import mujoco
import numpy as np


@dataclass(frozen=True)
class ArmDynamics:
    """Multipliers on the model's nominal per-joint values (1.0 = as in the MJCF: for the shipped arm the
    XM430-W350 values of docs/servo_model.md), plus absolute extras: the payload and ``latency_s``, the
    delay between sending a target and the servo acting on it (what ``calibrate sysid`` estimates).

    ``current_limit_scale`` multiplies the actuator's force range (the stall torque in the MJCF): a servo
    in current-based position mode with its Current Limit at that share of the maximum.

    Per-joint sequences are in the joint order of the actuated joints; a scalar applies to all joints.
    """

    damping_scale: tuple[float, ...] | float = 1.0
    frictionloss_scale: tuple[float, ...] | float = 1.0
    armature_scale: tuple[float, ...] | float = 1.0
    gain_scale: tuple[float, ...] | float = 1.0
    current_limit_scale: tuple[float, ...] | float = 1.0
    payload_mass_kg: float = 0.0
    latency_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ArmDynamics:
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
        return cls(**kwargs)


def _per_joint(value: tuple[float, ...] | float, n: int, name: str) -> np.ndarray:
    arr = (
        np.broadcast_to(np.asarray(value, dtype=float), (n,)).copy()
        if np.ndim(value) == 0
        else np.asarray(value, float)
    )
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected {n} values (one per joint), got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}: values must be finite and >= 0")
    return arr


class DynamicsApplier:
    """Remembers a model's nominal parameters so dynamics can be applied (and re-applied) exactly."""

    def __init__(self, model: mujoco.MjModel, joint_names: tuple[str, ...], payload_body: str = "payload") -> None:
        self.model = model
        self.dof = np.array([model.joint(n).dofadr[0] for n in joint_names])
        self.actuators = np.array([model.actuator(n).id for n in joint_names])
        self.nominal_damping = model.dof_damping[self.dof].copy()
        self.nominal_frictionloss = model.dof_frictionloss[self.dof].copy()
        self.nominal_armature = model.dof_armature[self.dof].copy()
        self.nominal_gain = model.actuator_gainprm[self.actuators, 0].copy()
        self.nominal_bias = model.actuator_biasprm[self.actuators, :3].copy()
        self.nominal_forcerange = model.actuator_forcerange[self.actuators].copy()
        try:
            self.payload_body = model.body(payload_body).id
            self.nominal_payload_mass = float(model.body_mass[self.payload_body])
            self.nominal_payload_inertia = model.body_inertia[self.payload_body].copy()
        except KeyError:
            self.payload_body = None

    def apply(self, dynamics: ArmDynamics) -> None:
        n = len(self.dof)
        m = self.model
        m.dof_damping[self.dof] = self.nominal_damping * _per_joint(dynamics.damping_scale, n, "damping_scale")
        m.dof_frictionloss[self.dof] = self.nominal_frictionloss * _per_joint(
            dynamics.frictionloss_scale, n, "frictionloss_scale"
        )
        m.dof_armature[self.dof] = self.nominal_armature * _per_joint(dynamics.armature_scale, n, "armature_scale")
        gain = _per_joint(dynamics.gain_scale, n, "gain_scale")
        # A position actuator is force = kp*ctrl - kp*q - kv*qdot: scale kp in gain and bias together.
        m.actuator_gainprm[self.actuators, 0] = self.nominal_gain * gain
        m.actuator_biasprm[self.actuators, 1] = self.nominal_bias[:, 1] * gain
        m.actuator_biasprm[self.actuators, 2] = self.nominal_bias[:, 2]
        limit = _per_joint(dynamics.current_limit_scale, n, "current_limit_scale")
        m.actuator_forcerange[self.actuators] = self.nominal_forcerange * limit[:, None]
        if dynamics.payload_mass_kg < 0 or not np.isfinite(dynamics.payload_mass_kg):
            raise ValueError("payload_mass_kg must be finite and >= 0")
        if self.payload_body is not None:
            mass = self.nominal_payload_mass + dynamics.payload_mass_kg
            m.body_mass[self.payload_body] = mass
            # a small solid sphere of 2 cm radius carrying the payload
            m.body_inertia[self.payload_body] = self.nominal_payload_inertia + 0.4 * dynamics.payload_mass_kg * 0.02**2
        elif dynamics.payload_mass_kg:
            raise ValueError("this model has no 'payload' body to carry a payload mass")
        if dynamics.latency_s < 0:
            raise ValueError("latency_s must be >= 0")

    def set_torque(self, enabled: bool, dynamics: ArmDynamics) -> None:
        """Torque off = zero actuator stiffness and damping: the arm goes limp, as a servo does."""
        if enabled:
            self.apply(dynamics)
        else:
            self.model.actuator_gainprm[self.actuators, 0] = 0.0
            self.model.actuator_biasprm[self.actuators, 1:3] = 0.0
