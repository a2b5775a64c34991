"""Sessions read for export: their episodes in log order, renumbered across sessions, each with the
session it came from and whether it ran to its end. Shared by the Minari and LeRobot exports.

An episode is *partial* when its log has no ``episode_end`` (the process died and the session was never
resumed) or its end record says it was cut short (``store.is_partial``: an operator or safety stop, a
fault, an interruption recovered on resume). Partial episodes are exported, marked as such, never as complete ones.
Episodes with no steps (a start that was refused) hold no data and are left out. Steps an operator drove
(teleop take-over) are marked ``intervention``; a log older than that field has none.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from pearl_robot.adapt.store import SessionData, is_partial, read_session
from pearl_robot.envs.robot_env import RobotEnv
from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.mock import MockRobot
from pearl_robot.robot.spec import RobotSpec, load_spec
from pearl_robot.tasks.arm_control import controller_action_names
from pearl_robot.tasks.reach import ReachTask

STEP_FIELDS = ("episode", "obs", "requested_action", "reward", "next_obs", "position", "velocity")
EXTRA_HINT = "pip install 'pearl-robot[export]' (in a checkout: pip install -e '.[export]')"


class ExportError(PearlRobotError):
    """A session cannot be exported (missing, empty, corrupt, or unlike the others it is merged with)."""


@dataclass
class Episode:
    """One recorded episode: its log records and where it came from."""

    session: str
    session_episode: int
    start: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None

    @property
    def partial(self) -> bool:
        return self.end is None or is_partial(self.end)

    @property
    def end_reason(self) -> str:
        if self.end is None:
            return "no episode end in the log (the process died; the session was not resumed)"
        if self.partial:
            return str(self.end.get("reason") or "stopped early")
        return "ran to its horizon"

    @property
    def observations(self) -> np.ndarray:
        """(T + 1, obs) float32: every step's observation, then the last step's next observation."""
        return np.asarray([s["obs"] for s in self.steps] + [self.steps[-1]["next_obs"]], dtype=np.float32)

    @property
    def actions(self) -> np.ndarray:
        """(T, action size) float32: the policy's actions as recorded (joint target increments, or the
        scripted controller's settings on a controller-action family: ``Sources.action_names``)."""
        return np.asarray([s["requested_action"] for s in self.steps], dtype=np.float32)

    @property
    def rewards(self) -> np.ndarray:
        return np.asarray([s["reward"] for s in self.steps], dtype=np.float64)

    @property
    def interventions(self) -> np.ndarray:
        """(T,) bool: the steps an operator drove (their actions are the operator's, as executed)."""
        return np.asarray([bool(s.get("intervention", False)) for s in self.steps], dtype=bool)

    def column(self, key: str, width: int) -> np.ndarray:
        """(T, width) float64 of a per-step vector field; NaN where a step holds none (a dry run's targets)."""
        rows = [s.get(key) if s.get(key) is not None else [np.nan] * width for s in self.steps]
        return np.asarray(rows, dtype=np.float64)

    def latents(self, size: int) -> dict[str, np.ndarray]:
        """The episode's z and the posterior it was drawn from (mean, std), (size,) float32 each; NaN
        where the start record was lost."""

        def get(key: str) -> np.ndarray:
            value = self.start.get(key)
            return np.full(size, np.nan, np.float32) if value is None else np.asarray(value, dtype=np.float32)

        return {"z": get("z"), "posterior_mean": get("posterior_mean"), "posterior_std": np.sqrt(get("posterior_var"))}


@dataclass
class Sources:
    """What an export writes: the episodes of all sessions, and the arm and spaces they share."""

    sessions: list[str]
    metas: list[dict[str, Any]]
    episodes: list[Episode]
    spec: RobotSpec
    env: RobotEnv
    latent_size: int
    action_names: list[str]  # one per value of the policy's action (joint increments or controller settings)

    @property
    def total_steps(self) -> int:
        return sum(len(e.steps) for e in self.episodes)

    @property
    def default_name(self) -> str:
        """``pearl-robot/<first session's folder name>[-and-N-more]``."""
        name = re.sub(r"[^-\w]", "_", Path(self.sessions[0]).resolve().name)
        more = f"-and-{len(self.sessions) - 1}-more" if len(self.sessions) > 1 else ""
        return f"pearl-robot/{name}{more}"

    @property
    def arm_joint_names(self) -> list[str]:
        return [self.spec.joint_names[i] for i in self.spec.arm_joint_indices]


def require(module: str, fmt: str) -> Any:
    """Import an optional dependency of an export format, or say in one line how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"--format {fmt} needs the optional 'export' extra ({module} is missing): {EXTRA_HINT}"
        raise ExportError(message) from None


def load_sources(folders: list[str | os.PathLike[str]]) -> Sources:
    """Read and check every session; the episodes of all of them, renumbered in the order given."""
    names = [str(f) for f in folders]
    if len({Path(f).resolve() for f in folders}) != len(folders):
        raise ExportError("a session is given twice: its episodes would be in the dataset twice")
    datas = [_load(Path(f)) for f in folders]
    per_session = [_episodes(name, data) for name, data in zip(names, datas)]
    specs = [load_spec(d.meta.get("hardware")) for d in datas]
    envs = [_env(spec, episodes[0]) for spec, episodes in zip(specs, per_session)]
    for name, spec, env in zip(names[1:], specs[1:], envs[1:]):
        _check_same(names[0], specs[0], envs[0], name, spec, env)
    episodes = [e for session in per_session for e in session]
    latent = {e.session: len(e.start["z"]) for e in episodes if e.start.get("z") is not None}
    if len(set(latent.values())) > 1:
        raise ExportError(f"the sessions' latent sizes differ ({latent}): export them separately")
    size = next(iter(latent.values()), 0)
    actions = action_names(specs[0], envs[0].action_space.shape[0])
    return Sources(names, [d.meta for d in datas], episodes, specs[0], envs[0], size, actions)


def action_names(spec: RobotSpec, size: int) -> list[str]:
    """Joint target increments (one per arm joint) or, for a controller-action family (``arm-fleet``),
    the scripted controller's gain and blend (and a residual per arm joint)."""
    arm = [spec.joint_names[i] for i in spec.arm_joint_indices]
    return arm if size == len(arm) else controller_action_names(arm, residual=size > 2)


def _load(folder: Path) -> SessionData:
    try:
        return read_session(folder, STEP_FIELDS)
    except PearlRobotError as exc:
        raise ExportError(str(exc).replace("recorded steps", "recorded steps (nothing to export)")) from None


def episode_metadata(episode: Episode) -> dict[str, Any]:
    """What every export keeps about an episode besides its arrays: where it came from, whether it is
    partial, how it ended."""
    end = episode.end or {}
    return {
        "session": episode.session,
        "session_episode": int(episode.session_episode),
        "partial": episode.partial,
        "end_reason": episode.end_reason,
        "z_source": str(episode.start.get("z_source", "")),
        "episode_return": float(end.get("episode_return", episode.rewards.sum())),
        "intervention_steps": int(episode.interventions.sum()),
    }


def _episodes(session: str, data: SessionData) -> list[Episode]:
    """The session's episodes in log order. A new start (or a step of another episode) before an episode's
    end leaves that episode without one: it is partial. A re-run of an episode index is a new episode."""
    episodes: list[Episode] = []
    current: Episode | None = None
    for record in data.records:
        kind, index = record["kind"], record.get("episode")
        if kind == "episode_start" or (kind == "step" and (current is None or current.session_episode != index)):
            current = Episode(session, index, record if kind == "episode_start" else {})
            episodes.append(current)
        if kind == "step":
            current.steps.append(record)
        elif kind == "episode_end" and current is not None and current.session_episode == index:
            current.end = record
            current = None
    return [e for e in episodes if e.steps]


def _env(spec: RobotSpec, episode: Episode) -> RobotEnv:
    """The RobotEnv the session ran in, for its spaces (over a mock arm: nothing is opened)."""
    n_arm = len(spec.arm_joint_indices)
    size = len(episode.steps[0]["obs"])
    layouts = {3 * n_arm + 3: False, 3 * n_arm + 9: True}
    if size not in layouts:
        raise ExportError(
            f"{episode.session}: observations of {size} values do not match {spec.robot_id}'s RobotEnv "
            f"({' or '.join(str(k) for k in layouts)})"
        )
    env = RobotEnv(MockRobot(spec), ReachTask(goal=np.zeros(3), goal_observed=layouts[size]))
    actions = len(episode.steps[0]["requested_action"])
    if actions != n_arm:  # a controller-action family: the policy set the scripted controller, not the joints
        if actions not in (2, 2 + n_arm):
            raise ExportError(
                f"{episode.session}: actions of {actions} values are neither {spec.robot_id}'s joint actions "
                f"({n_arm}) nor controller actions (2 or {2 + n_arm})"
            )
        env.action_space = gym.spaces.Box(-1.0, 1.0, (actions,), np.float32)
    return env


def _check_same(first: str, spec0: RobotSpec, env0: RobotEnv, other: str, spec: RobotSpec, env: RobotEnv) -> None:
    differences = [
        what
        for what, same in (
            ("joints", spec0.joint_names == spec.joint_names),
            ("control rate", spec0.control_rate_hz == spec.control_rate_hz),
            ("observation space", env0.observation_space == env.observation_space),
            ("action space", env0.action_space == env.action_space),
        )
        if not same
    ]
    if differences:
        raise ExportError(f"{other} differs from {first} ({', '.join(differences)}): export them separately")
