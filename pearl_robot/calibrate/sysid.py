"""System identification: excite each joint with safe chirp and step position commands, record the
response at the control rate, and fit the MuJoCo model's per-joint damping, friction loss, armature and
actuator gain (and the payload mass) by minimizing simulated-vs-recorded trajectory error.

Everything goes through the Robot interface, so the same procedure runs on the virtual bus, a remote
robot or the real arm. The simulator replays exactly the targets that were *sent* (after the safety
layer), from the recorded initial state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from pearl_robot.control.loop import RateLoop
from pearl_robot.robot.base import Robot
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.robot.sim import SimRobot
from pearl_robot.robot.spec import RobotSpec

FITTED_FIELDS = ("damping_scale", "frictionloss_scale", "armature_scale", "gain_scale")
SCALE_BOUNDS = (0.2, 5.0)
PAYLOAD_BOUNDS_KG = (0.0, 1.0)


@dataclass
class Recording:
    """Targets sent and joint positions measured, one row per control period (row 0: the start)."""

    sent: np.ndarray  # (T, n_joints) rad
    position: np.ndarray  # (T + 1, n_joints) rad
    velocity: np.ndarray  # (T + 1, n_joints) rad/s
    period_s: float


def excitation(spec: RobotSpec, duration_s: float = 6.0, amplitude_rad: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Per arm joint in turn: a chirp (0.2 -> 1.5 Hz) then +-steps, around the home pose, inside the
    limits and under the per-step cap. Returns (T, n_joints) targets and the excited joint of each row."""
    period = spec.period_s
    cap = np.minimum(spec.safety.max_step_rad, spec.velocity_max * period)
    home = spec.home_rad
    segments = []
    steps_per_joint = int(duration_s / period)
    t = np.arange(steps_per_joint) * period
    chirp_len = int(0.6 * steps_per_joint)
    for joint in spec.arm_joint_indices:
        room = min(home[joint] - spec.position_min[joint], spec.position_max[joint] - home[joint]) * 0.8
        amp = min(amplitude_rad, room)
        f0, f1 = 0.2, 1.5
        tc = t[:chirp_len]
        phase = 2 * np.pi * (f0 * tc + 0.5 * (f1 - f0) / tc[-1] * tc**2)
        chirp = amp * np.sin(phase)
        steps = np.repeat([amp * 0.6, -amp * 0.6, 0.1 * amp, 0.0], (steps_per_joint - chirp_len) // 4 + 1)
        signal = np.concatenate([chirp, steps])[:steps_per_joint]
        seg = np.tile(home, (steps_per_joint, 1))
        seg[:, joint] += signal
        segments.append(seg)
    targets = np.concatenate(segments)
    excited = np.repeat(spec.arm_joint_indices, steps_per_joint)
    # rate-limit to the safety cap so the safety layer never has to clip the excitation
    limited = [home.copy()]
    for row in targets:
        limited.append(limited[-1] + np.clip(row - limited[-1], -cap * 0.95, cap * 0.95))
    return np.clip(np.array(limited[1:]), spec.position_min, spec.position_max), excited


def record(
    robot: Robot, targets: np.ndarray, loop: RateLoop | None = None, on_step: Callable | None = None
) -> Recording:
    """Drive an ACTIVE robot through ``targets`` at its control rate, recording the response."""
    spec = robot.spec
    loop = loop or RateLoop(spec.period_s, realtime=robot.realtime)
    state = robot.read()
    positions, velocities, sent_rows = [state.position], [state.velocity], []
    loop.start()
    for i, target in enumerate(targets):
        sent_rows.append(np.asarray(robot.write(target), dtype=float))
        loop.wait()
        state = robot.read()
        positions.append(state.position)
        velocities.append(state.velocity)
        if on_step is not None:
            on_step(i, len(targets))
    return Recording(np.array(sent_rows), np.array(positions), np.array(velocities), spec.period_s)


class TrajectorySimulator:
    """Replays a recording's sent targets in MuJoCo under candidate dynamics."""

    def __init__(self, spec: RobotSpec, recording: Recording, latency_s: float = 0.0) -> None:
        self.spec = spec
        self.recording = recording
        self.latency_s = latency_s
        self.sim = SimRobot(spec)
        self.sim.connect()
        self.sim.enable()
        self.arm = spec.arm_joint_indices

    def rollout(self, dynamics: ArmDynamics) -> np.ndarray:
        sim = self.sim
        sim.set_dynamics(dynamics)
        sim.teleport(self.recording.position[0])
        out = [sim.read().position]
        for target in self.recording.sent:
            sim.write(target)
            out.append(sim.read().position)
        return np.array(out)


def unpack(theta: np.ndarray, spec: RobotSpec, latency_s: float) -> ArmDynamics:
    n = spec.num_joints
    arm = spec.arm_joint_indices
    fields = {}
    for k, name in enumerate(FITTED_FIELDS):
        scale = np.ones(n)
        scale[arm] = np.exp(theta[k * len(arm) : (k + 1) * len(arm)])
        fields[name] = tuple(float(v) for v in scale)
    return ArmDynamics(**fields, payload_mass_kg=float(theta[-1]), latency_s=latency_s)


@dataclass
class FitResult:
    dynamics: ArmDynamics
    rms_before_rad: float
    rms_after_rad: float
    simulated_before: np.ndarray
    simulated_after: np.ndarray
    evaluations: int


def jacobian_sparsity(spec: RobotSpec, excited: np.ndarray) -> np.ndarray:
    """Which parameters a residual row is taken to depend on: the excited joint's own parameters and the
    payload. Exact residuals, approximate Jacobian: finite differences then perturb the parameters of
    different joints together, several times fewer MuJoCo rollouts per iteration."""
    arm = list(spec.arm_joint_indices)
    n_arm = len(arm)
    rows_per_step = n_arm
    excited_rows = np.concatenate([[excited[0]], excited])  # row 0 (the start) belongs to the first segment
    sparsity = np.zeros((len(excited_rows) * rows_per_step, len(FITTED_FIELDS) * n_arm + 1), dtype=bool)
    for step, joint in enumerate(excited_rows):
        k = arm.index(joint)
        for field_index in range(len(FITTED_FIELDS)):
            sparsity[step * rows_per_step : (step + 1) * rows_per_step, field_index * n_arm + k] = True
    sparsity[:, -1] = True
    return sparsity


def fit_dynamics(
    spec: RobotSpec,
    recording: Recording,
    excited: np.ndarray | None = None,
    latency_s: float = 0.0,
    max_evaluations: int = 200,
) -> FitResult:
    """Least squares over log-scales (bounded) and the payload mass, from the nominal model."""
    sim = TrajectorySimulator(spec, recording, latency_s)
    arm = spec.arm_joint_indices
    measured = recording.position[:, arm]
    nominal = ArmDynamics(latency_s=latency_s)
    theta0 = np.zeros(len(FITTED_FIELDS) * len(arm) + 1)
    theta0[-1] = 0.05

    def residuals(theta: np.ndarray) -> np.ndarray:
        return (sim.rollout(unpack(theta, spec, latency_s))[:, arm] - measured).ravel()

    lo = np.full_like(theta0, np.log(SCALE_BOUNDS[0]))
    hi = np.full_like(theta0, np.log(SCALE_BOUNDS[1]))
    lo[-1], hi[-1] = PAYLOAD_BOUNDS_KG
    before = sim.rollout(nominal)
    sparsity = None if excited is None else jacobian_sparsity(spec, excited)
    result = least_squares(
        residuals,
        theta0,
        bounds=(lo, hi),
        x_scale="jac",
        diff_step=1e-3,
        max_nfev=max_evaluations,
        jac_sparsity=sparsity,
        tr_solver="exact" if sparsity is None else "lsmr",
    )
    fitted = unpack(result.x, spec, latency_s)
    after = sim.rollout(fitted)

    def rms(simulated: np.ndarray) -> float:
        return float(np.sqrt(np.mean((simulated[:, arm] - measured) ** 2)))

    return FitResult(fitted, rms(before), rms(after), before, after, int(result.nfev))


def plot_fit(recording: Recording, fit: FitResult, spec: RobotSpec, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arm = spec.arm_joint_indices
    t = np.arange(len(recording.position)) * recording.period_s
    fig, axes = plt.subplots(len(arm), 1, figsize=(10, 2.2 * len(arm)), sharex=True)
    for ax, joint in zip(np.atleast_1d(axes), arm):
        ax.plot(t, recording.position[:, joint], "k", lw=1.2, label="recorded")
        ax.plot(t, fit.simulated_before[:, joint], "C1--", lw=0.9, label="nominal sim")
        ax.plot(t, fit.simulated_after[:, joint], "C0", lw=0.9, label="fitted sim")
        ax.set_ylabel(f"{spec.joint_names[joint]} (rad)")
    np.atleast_1d(axes)[0].legend(loc="upper right", fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel("time (s)")
    fig.suptitle(f"system identification: RMS {fit.rms_before_rad * 1e3:.1f} -> {fit.rms_after_rad * 1e3:.1f} mrad")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
