"""Replay a recorded session's sent targets on the simulator and measure the sim-to-real gap.

Each episode starts from its recorded initial joint state (the first step's observation: arm joints; the
other joints hold their start position, which is what the env sent for them), the simulator integrates
one recorded control period per sent target, and the simulated joint positions after every step are
compared with the recorded ones: RMS and max error per joint, per episode and over the session (rad).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from pearl_robot.adapt.store import SessionData, read_session
from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.robot.sim import SimRobot
from pearl_robot.robot.spec import RobotSpec

# the recorded timestamps give the control period when they are this close to the hardware file's;
# otherwise (a simulated session run unpaced) the hardware file's period is the one the session stepped at
PERIOD_TOLERANCE = (0.5, 2.0)


# what a step record must hold to be replayed (``AdaptationSession`` writes them all)
STEP_FIELDS = ("episode", "timestamp", "obs", "sent_target", "position")


class ReplayError(PearlRobotError):
    """The session cannot be replayed (missing, corrupt, a dry run, another arm)."""


@dataclass
class EpisodeTrack:
    """One replayed episode: row 0 is the initial state, row t+1 the state after sent target t."""

    episode: int
    time_s: np.ndarray
    recorded: np.ndarray
    simulated: np.ndarray

    @property
    def error(self) -> np.ndarray:
        return self.simulated - self.recorded


@dataclass
class Replay:
    joint_names: tuple[str, ...]
    period_s: float
    period_source: str
    dynamics: ArmDynamics
    dynamics_source: str
    episodes: list[EpisodeTrack]

    def summary(self) -> dict[str, Any]:
        """Per-joint tracking error (rad), per episode and overall, JSON-ready."""
        errors = [track.error[1:] for track in self.episodes]
        return {
            "joint_names": list(self.joint_names),
            "period_s": self.period_s,
            "period_source": self.period_source,
            "dynamics_source": self.dynamics_source,
            "dynamics": self.dynamics.to_dict(),
            "episodes": [
                {"episode": track.episode, "steps": len(error), **_stats(error)}
                for track, error in zip(self.episodes, errors)
            ],
            "overall": {"steps": sum(len(e) for e in errors), **_stats(np.concatenate(errors))},
        }


def _stats(error: np.ndarray) -> dict[str, list[float]]:
    return {
        "rms_rad": np.sqrt(np.mean(error**2, axis=0)).tolist(),
        "max_rad": np.max(np.abs(error), axis=0).tolist(),
    }


def load_session(folder: str | os.PathLike[str]) -> SessionData:
    """The session's records; a missing or unreadable session, or one with nothing sent, is a ReplayError."""
    try:
        data = read_session(folder, tuple(f for f in STEP_FIELDS if f != "sent_target"))  # a dry run: below
    except PearlRobotError as exc:
        raise ReplayError(str(exc)) from None
    if any(s.get("sent_target") is None for s in data.steps()):
        raise ReplayError(f"{folder}: a dry run (nothing was sent to the arm): there are no targets to replay")
    return data


def recorded_period(data: SessionData, spec: RobotSpec) -> tuple[float, str]:
    """The control period the session ran at: median step-to-step time of its measured timestamps."""
    gaps = [np.diff([s["timestamp"] for s in data.steps(e)]) for e in _episodes(data)]
    gaps = np.concatenate(gaps) if gaps else np.array([])
    gaps = gaps[np.isfinite(gaps) & (gaps > 0)]
    nominal = spec.period_s
    if gaps.size:
        measured = float(np.median(gaps))
        if PERIOD_TOLERANCE[0] <= measured / nominal <= PERIOD_TOLERANCE[1]:
            return measured, "recorded timestamps"
        return nominal, f"hardware file; the recorded steps are {measured * 1e3:.2f} ms apart: an unpaced session"
    return nominal, "hardware file; too few steps to measure"


def _episodes(data: SessionData) -> list[int]:
    return sorted({s["episode"] for s in data.steps()})


def initial_state(first_step: dict[str, Any], spec: RobotSpec) -> np.ndarray:
    """The joint state an episode started from: arm joints observed, the others as held (sent) at step 0."""
    position = np.asarray(first_step["sent_target"], dtype=float).copy()
    arm = spec.arm_joint_indices
    position[arm] = np.asarray(first_step["obs"], dtype=float)[: len(arm)]
    return position


def check_session_matches(data: SessionData, spec: RobotSpec, where: str) -> None:
    recorded_id = data.meta.get("robot_id")
    if recorded_id is not None and recorded_id != spec.robot_id:
        raise ReplayError(f"{where} was recorded on '{recorded_id}', the hardware file is '{spec.robot_id}'")
    joints = data.meta.get("joint_names")
    if joints is not None and tuple(joints) != spec.joint_names:
        raise ReplayError(f"{where} has joints {joints}, the hardware file {list(spec.joint_names)}")
    widths = {len(s["sent_target"]) for s in data.steps()} | {len(s["position"]) for s in data.steps()}
    if widths != {spec.num_joints}:
        raise ReplayError(f"{where}: steps hold {sorted(widths)} joints, the hardware file {spec.num_joints}")


def replay(
    data: SessionData, spec: RobotSpec, dynamics: ArmDynamics, dynamics_source: str, where: str = "the session"
) -> Replay:
    """Step the simulator through every episode's sent targets at the recorded control period."""
    check_session_matches(data, spec, where)
    period, period_source = recorded_period(data, spec)
    robot = SimRobot(dataclasses.replace(spec, control_rate_hz=1.0 / period), dynamics)
    tracks = []
    with robot:
        robot.enable()
        robot.set_dynamics(dynamics)
        for episode in _episodes(data):
            steps = data.steps(episode)
            start = initial_state(steps[0], spec)
            robot.teleport(start)
            simulated = [start]
            for step in steps:
                robot.write(np.asarray(step["sent_target"], dtype=float))
                simulated.append(robot.read().position)
            recorded = np.vstack([start] + [np.asarray(s["position"], dtype=float) for s in steps])
            time_s = period * np.arange(len(steps) + 1)
            tracks.append(EpisodeTrack(episode, time_s, recorded, np.vstack(simulated)))
    return Replay(spec.joint_names, period, period_source, dynamics, dynamics_source, tracks)
