"""The least-squares fit of system identification: per arm joint, log-scales of damping, friction loss,
armature and actuator gain, the payload mass and the command latency, bounded, from the nominal model.

The latency is found first by a scan (every 10 ms over its bounds, the other parameters nominal), then
refined with the rest: started at zero latency, the fit explains a delayed arm as a weak, over-damped one
and stays there (gain 0.3 for a true 0.95 on the demo's held-out arm, 100 ms of latency). The Jacobian
is dense, by forward differences of one batched replay (``BatchReplay``) per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from pearl_robot.calibrate.sysid_replay import BatchReplay
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.robot.spec import RobotSpec

FITTED_FIELDS = ("damping_scale", "frictionloss_scale", "armature_scale", "gain_scale")
# Multipliers on the MJCF's XM430-W350 values (docs/servo_model.md): damping x0.1-10 spans servo lags of
# 5-500 ms at the nominal gain, friction 0.003-0.3 N*m, armature 0.009-0.23 kg*m^2, gain (the servo's
# Position P Gain) x0.1-10.
SCALE_BOUNDS = {
    "damping_scale": (0.1, 10.0),
    "frictionloss_scale": (0.1, 10.0),
    "armature_scale": (0.2, 5.0),
    "gain_scale": (0.1, 10.0),
}
PAYLOAD_BOUNDS_KG = (0.0, 1.0)
LATENCY_BOUNDS_S = (0.0, 0.5)
LATENCY_SCAN_STEP_S = 0.01
# forward-difference steps: 1 % on a scale (friction makes smaller steps noisy), 5 g, one physics step
_STEP = {"scale": 0.01, "payload_mass_kg": 0.005, "latency_s": 0.002}


@dataclass(frozen=True)
class Parameter:
    """One fitted number: ``field`` of ArmDynamics, for ``joint`` (None: the whole arm), with its bounds."""

    field: str
    joint: str | None
    lower: float
    upper: float

    @property
    def name(self) -> str:
        return self.field if self.joint is None else f"{self.field}[{self.joint}]"

    @property
    def log_scale(self) -> bool:
        return self.field in SCALE_BOUNDS

    @property
    def physical_lower(self) -> bool:
        """The lower bound is a physical limit (no payload, no latency), not a guess to be warned about."""
        return not self.log_scale and self.lower == 0.0


class ParameterLayout:
    """Maps the optimiser's vector (log for scales) to ArmDynamics and back."""

    def __init__(self, spec: RobotSpec, latency_s: float | None) -> None:
        self.spec = spec
        self.fixed_latency_s = latency_s
        arm = [spec.joint_names[i] for i in spec.arm_joint_indices]
        self.parameters = [Parameter(f, j, *SCALE_BOUNDS[f]) for f in FITTED_FIELDS for j in arm]
        self.parameters.append(Parameter("payload_mass_kg", None, *PAYLOAD_BOUNDS_KG))
        if latency_s is None:
            self.parameters.append(Parameter("latency_s", None, *LATENCY_BOUNDS_S))

    def to_theta(self, values: np.ndarray) -> np.ndarray:
        return np.array([np.log(v) if p.log_scale else v for p, v in zip(self.parameters, values)])

    def to_values(self, theta: np.ndarray) -> np.ndarray:
        return np.array([np.exp(t) if p.log_scale else t for p, t in zip(self.parameters, theta)])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.to_theta(np.array([p.lower for p in self.parameters])), self.to_theta(
            np.array([p.upper for p in self.parameters])
        )

    def steps(self) -> np.ndarray:
        return np.array([_STEP["scale"] if p.log_scale else _STEP[p.field] for p in self.parameters])

    def initial(self, latency_s: float) -> np.ndarray:
        values = [1.0 if p.log_scale else 0.0 for p in self.parameters]
        if self.fixed_latency_s is None:
            values[-1] = latency_s
        return self.to_theta(np.array(values))

    def dynamics(self, theta: np.ndarray) -> ArmDynamics:
        n = self.spec.num_joints
        scales = {f: np.ones(n) for f in FITTED_FIELDS}
        extras = {"payload_mass_kg": 0.0, "latency_s": self.fixed_latency_s or 0.0}
        for p, value in zip(self.parameters, self.to_values(theta)):
            if p.joint is None:
                extras[p.field] = float(value)
            else:
                scales[p.field][self.spec.joint_names.index(p.joint)] = value
        return ArmDynamics(**{f: tuple(float(v) for v in s) for f, s in scales.items()}, **extras)


@dataclass
class FitResult:
    """The fitted vector and what the optimiser did. ``stderr``: one standard error per parameter from the
    Jacobian at the optimum (natural units), a guide to what the recording determines, not a guarantee."""

    layout: ParameterLayout
    theta: np.ndarray
    values: np.ndarray
    stderr: np.ndarray
    latency_scan_s: float | None
    evaluations: int
    jacobians: int
    status: str

    @property
    def dynamics(self) -> ArmDynamics:
        return self.layout.dynamics(self.theta)


def scan_latency(replay: BatchReplay, measured: np.ndarray, arm: np.ndarray, chunk: int = 16) -> float:
    """The latency (every ``LATENCY_SCAN_STEP_S`` within its bounds) that best replays ``measured`` with the
    other parameters nominal."""
    candidates = np.arange(LATENCY_BOUNDS_S[0], LATENCY_BOUNDS_S[1] + 1e-9, LATENCY_SCAN_STEP_S)
    costs = []
    for start in range(0, len(candidates), chunk):
        batch = [ArmDynamics(latency_s=float(c)) for c in candidates[start : start + chunk]]
        simulated = replay.replay(batch)[:, :, arm]
        costs.extend(np.mean((simulated - measured) ** 2, axis=(1, 2)))
    return float(candidates[int(np.argmin(costs))])


def fit(
    spec: RobotSpec,
    replay: BatchReplay,
    measured: np.ndarray,
    latency_s: float | None = None,
    max_evaluations: int = 100,
) -> FitResult:
    """Fit ``measured`` (positions of every joint, rows as ``replay``'s) from the nominal model.
    ``latency_s``: a known latency, kept fixed; None: estimated."""
    arm = np.asarray(spec.arm_joint_indices)
    layout = ParameterLayout(spec, latency_s)
    target = measured[:, arm]
    scanned = scan_latency(replay, target, arm) if latency_s is None else None
    theta0 = layout.initial(scanned or 0.0)
    lower, upper = layout.bounds()
    steps = layout.steps()
    jacobians = 0

    def residuals(theta: np.ndarray) -> np.ndarray:
        return (replay.replay([layout.dynamics(theta)])[0][:, arm] - target).ravel()

    def jacobian(theta: np.ndarray) -> np.ndarray:
        nonlocal jacobians
        jacobians += 1
        h = np.where(theta + steps <= upper, steps, -steps)  # step backwards at an upper bound
        probes = [theta] + [theta + h[i] * np.eye(len(theta))[i] for i in range(len(theta))]
        simulated = replay.replay([layout.dynamics(p) for p in probes])[:, :, arm]
        r = (simulated - target).reshape(len(probes), -1)
        return ((r[1:] - r[0]) / h[:, None]).T

    # start off the bounds (no payload, no latency are bounds): from a bound, the trust-region steps of a
    # parameter pushing outwards are cut to nothing and the fit stops where it started
    margin = 0.01 * (upper - lower)
    result = least_squares(
        residuals,
        np.clip(theta0, lower + margin, upper - margin),
        jac=jacobian,
        bounds=(lower, upper),
        x_scale="jac",
        method="trf",
        tr_solver="exact",
        max_nfev=max_evaluations,
    )
    values = layout.to_values(result.x)
    stderr = _standard_errors(result.jac, result.fun) * np.where([p.log_scale for p in layout.parameters], values, 1.0)
    return FitResult(layout, result.x, values, stderr, scanned, int(result.nfev), jacobians, result.message)


def _standard_errors(jac: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """sqrt(diag(s^2 (J^T J)^-1)), with s^2 the residual variance; inf where the data do not determine it."""
    dof = max(1, jac.shape[0] - jac.shape[1])
    s2 = float(residual @ residual) / dof
    u, sv, vt = np.linalg.svd(jac, full_matrices=False)
    tiny = sv <= sv.max() * 1e-10
    inv = np.where(tiny, 0.0, 1.0 / np.where(tiny, 1.0, sv) ** 2)
    var = (vt.T**2) @ inv * s2
    undetermined = (np.abs(vt[tiny]) > 1e-8).any(axis=0) if tiny.any() else np.zeros(jac.shape[1], dtype=bool)
    return np.where(undetermined, np.inf, np.sqrt(var))
