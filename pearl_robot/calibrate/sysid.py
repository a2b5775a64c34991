"""System identification: hold the arm still, excite each joint with safe chirps and steps, then all
joints at once, recording the response at the control rate through the Robot interface (the same
procedure runs on the virtual bus, a remote robot or the real arm); fit the MuJoCo model's per-joint
damping, friction loss, armature and actuator gain, the payload mass and the command latency to the
per-joint part (``sysid_fit``), and judge the fit on the all-joint part it never saw, against the
encoder noise measured while the arm held still (``sysid_report``).

The simulator replays exactly the targets that were *sent* (after the safety layer), from the recorded
initial state. ``identify`` is the whole procedure; docs/servo_model.md explains the model and the fit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from pearl_robot.calibrate.sysid_fit import fit
from pearl_robot.calibrate.sysid_replay import BatchReplay
from pearl_robot.calibrate.sysid_report import SysidResult, estimates
from pearl_robot.control.loop import RateLoop
from pearl_robot.dynamixel.control_table import RAD_PER_TICK
from pearl_robot.robot.base import Robot
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.robot.sim import SimRobot
from pearl_robot.robot.spec import RobotSpec

QUANTIZATION_RMS_RAD = RAD_PER_TICK / np.sqrt(12)  # the floor of a noiseless 4096-tick encoder
NOISE_WINDOW_S = 1.0  # the end of the still hold, where the encoder noise is measured


@dataclass
class Recording:
    """Targets sent and joint positions measured, one row per control period (row 0: the start)."""

    sent: np.ndarray  # (T, n_joints) rad
    position: np.ndarray  # (T + 1, n_joints) rad
    velocity: np.ndarray  # (T + 1, n_joints) rad/s
    period_s: float

    def head(self, periods: int) -> Recording:
        """The first ``periods`` control periods (a replay of them starts where this one does)."""
        return Recording(self.sent[:periods], self.position[: periods + 1], self.velocity[: periods + 1], self.period_s)


def _step_cap(spec: RobotSpec) -> np.ndarray:
    return np.minimum(spec.safety.max_step_rad, spec.velocity_max * spec.period_s) * 0.95


def _rate_limited(spec: RobotSpec, start: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``targets`` followed under the safety layer's per-step cap (so it never has to clip them), from
    ``start``, inside the joint limits."""
    cap = _step_cap(spec)
    limited = [np.asarray(start, dtype=float)]
    for row in targets:
        limited.append(limited[-1] + np.clip(row - limited[-1], -cap, cap))
    return np.clip(np.array(limited[1:]), spec.position_min, spec.position_max)


def _room(spec: RobotSpec, joint: int, amplitude_rad: float) -> float:
    home = spec.home_rad
    room = min(home[joint] - spec.position_min[joint], spec.position_max[joint] - home[joint]) * 0.8
    return min(amplitude_rad, room)


def excitation(spec: RobotSpec, duration_s: float = 6.0, amplitude_rad: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Per arm joint in turn: a chirp (0.2 -> 1.5 Hz) then +-steps, around the home pose, inside the
    limits and under the per-step cap. Returns (T, n_joints) targets and the excited joint of each row."""
    period = spec.period_s
    home = spec.home_rad
    segments = []
    steps_per_joint = int(duration_s / period)
    t = np.arange(steps_per_joint) * period
    chirp_len = int(0.6 * steps_per_joint)
    for joint in spec.arm_joint_indices:
        amp = _room(spec, joint, amplitude_rad)
        f0, f1 = 0.2, 1.5
        tc = t[:chirp_len]
        phase = 2 * np.pi * (f0 * tc + 0.5 * (f1 - f0) / tc[-1] * tc**2)
        chirp = amp * np.sin(phase)
        steps = np.repeat([amp * 0.6, -amp * 0.6, 0.1 * amp, 0.0], (steps_per_joint - chirp_len) // 4 + 1)
        signal = np.concatenate([chirp, steps])[:steps_per_joint]
        seg = np.tile(home, (steps_per_joint, 1))
        seg[:, joint] += signal
        segments.append(seg)
    excited = np.repeat(spec.arm_joint_indices, steps_per_joint)
    return _rate_limited(spec, home, np.concatenate(segments)), excited


def validation_excitation(
    spec: RobotSpec, duration_s: float = 6.0, amplitude_rad: float = 0.25, seed: int = 1
) -> np.ndarray:
    """Every arm joint at once (the fit saw one at a time): a sum of three sines per joint at random
    frequencies (0.2-1.2 Hz) and phases, returning to the home pose."""
    rng = np.random.default_rng(seed)
    period = spec.period_s
    t = np.arange(int(duration_s / period)) * period
    window = np.sin(np.pi * t / t[-1]) ** 2  # starts and ends at home, at rest
    targets = np.tile(spec.home_rad, (len(t), 1))
    for joint in spec.arm_joint_indices:
        freq = rng.uniform(0.2, 1.2, 3)
        phase = rng.uniform(0, 2 * np.pi, 3)
        wave = np.sin(2 * np.pi * freq[:, None] * t + phase[:, None]).sum(axis=0) / 3
        targets[:, joint] += _room(spec, joint, amplitude_rad) * window * wave
    return _rate_limited(spec, spec.home_rad, targets)


def still_hold(spec: RobotSpec, start: np.ndarray, duration_s: float) -> np.ndarray:
    """From ``start`` to the home pose under the per-step cap, then ``duration_s`` held there."""
    cap = _step_cap(spec)
    ramp = int(np.ceil(np.max(np.abs(spec.home_rad - start) / cap)))
    periods = ramp + int(round(duration_s / spec.period_s))
    return _rate_limited(spec, start, np.tile(spec.home_rad, (periods, 1)))


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
    """Replays a recording's sent targets on ``SimRobot`` under given dynamics: the reference replay, the one
    the figures are computed with (``BatchReplay`` is the fit's fast equivalent)."""

    def __init__(self, spec: RobotSpec, recording: Recording) -> None:
        self.spec = spec
        self.recording = recording
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


def identify(
    robot: Robot,
    spec: RobotSpec | None = None,
    *,
    seconds_per_joint: float = 6.0,
    validation_s: float | None = None,
    still_s: float = 1.5,
    latency_s: float | None = None,
    max_evaluations: int = 100,
    on_step: Callable[[int, int], None] | None = None,
) -> SysidResult:
    """The whole system identification on an ACTIVE ``robot`` (just enabled: its goal is where it is).

    Records a still hold (``still_s``; the encoder noise from its last second), the per-joint excitation
    (``seconds_per_joint`` each) and an all-joint validation excitation (``validation_s``, default two
    joints' worth), in one run; fits the first two parts and replays everything with the fitted model to
    score the validation part. ``latency_s``: a known command latency, kept fixed (default: estimated).
    The robot is left holding its last position."""
    spec = spec or robot.spec
    started = time.monotonic()
    hold = still_hold(spec, robot.read().position, still_s)
    fit_targets, _ = excitation(spec, seconds_per_joint)
    validation = validation_excitation(spec, validation_s or 2 * seconds_per_joint)
    targets = np.concatenate([hold, fit_targets, validation])
    loop = RateLoop(spec.period_s, realtime=robot.realtime)
    recording = record(robot, targets, loop, on_step)
    robot.write(robot.read().position)
    fit_periods = len(hold) + len(fit_targets)
    noise_rows = recording.position[len(hold) + 1 - int(round(NOISE_WINDOW_S / spec.period_s)) : len(hold) + 1]
    arm = np.asarray(spec.arm_joint_indices)
    # white noise from successive differences (var(diff) = 2 var(noise)): blind to a slow settling drift
    noise = float(np.sqrt(np.mean(np.diff(noise_rows[:, arm], axis=0) ** 2) / 2))

    batch = BatchReplay(spec, recording.sent[:fit_periods], recording.position[0], recording.period_s)
    fitted = fit(spec, batch, recording.position[: fit_periods + 1], latency_s, max_evaluations)
    # the latency rounded to the physics timestep: what SimRobot (and the virtual arm) can realize
    dynamics = replace(fitted.dynamics, latency_s=round(fitted.dynamics.latency_s / batch.timestep) * batch.timestep)
    replay = TrajectorySimulator(spec, recording)
    nominal_run = replay.rollout(ArmDynamics(latency_s=latency_s or 0.0))
    fitted_run = replay.rollout(dynamics)

    def rms(simulated: np.ndarray, rows: slice) -> float:
        return float(np.sqrt(np.mean((simulated[rows][:, arm] - recording.position[rows][:, arm]) ** 2)))

    fit_rows, validation_rows = slice(0, fit_periods + 1), slice(fit_periods + 1, None)
    return SysidResult(
        dynamics=dynamics,
        parameters=estimates(fitted, dynamics),
        latency_estimated=latency_s is None,
        latency_scan_s=fitted.latency_scan_s,
        rms_before_rad=rms(nominal_run, fit_rows),
        rms_after_rad=rms(fitted_run, fit_rows),
        validation_rms_before_rad=rms(nominal_run, validation_rows),
        validation_rms_rad=rms(fitted_run, validation_rows),
        noise_floor_rad=max(noise, QUANTIZATION_RMS_RAD),
        evaluations=fitted.evaluations,
        jacobians=fitted.jacobians,
        optimizer_status=fitted.status,
        missed_deadlines=loop.stats.missed_deadlines,
        period_error_max_s=loop.stats.summary()["period_error_max_ms"] / 1e3,
        seconds=time.monotonic() - started,
        recording=recording,
        fit_periods=fit_periods,
        still_periods=len(hold),
        simulated_before=nominal_run,
        simulated_after=fitted_run,
    )
