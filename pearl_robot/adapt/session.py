"""AdaptationSession: PEARL's posterior sampling on any Robot.

Episode k < ``num_prior_episodes`` acts with z drawn from the prior N(0, I); every later episode draws z
from the posterior inferred from ALL context gathered on this robot so far (posterior sampling: one z per
episode, resampled each episode). Resets are slow motions to the start pose; the RateLoop paces the
20 Hz control; every step is written to the store as it happens. An operator stop (``request_stop``,
Ctrl-C in the CLI, or a ``STOP`` file in the session folder) brings the arm to a safe stop within one
control period and keeps every record; the STOP file is removed once the arm is safe (it asked for one stop).

An episode is recorded from its first step: one that never gets there (a robot that refuses to enable, a
stop during the reset) leaves no record, so it is not counted and a resume plays it. An episode cut short
(stop, fault, crash) keeps its steps as context and is marked ``partial`` in its ``episode_end``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pearl_robot.adapt.store import SessionData, SessionStore, SessionStoreError
from pearl_robot.control.loop import LoopStats
from pearl_robot.control.realtime import realtime_episode
from pearl_robot.envs.robot_env import RobotEnv
from pearl_robot.errors import PearlRobotError, RobotFault
from pearl_robot.robot.base import Lifecycle
from pearl_robot.viz.sink import NullTelemetry, Telemetry

if TYPE_CHECKING:
    from pearl_robot.teleop.takeover import TakeoverRobot


class AdaptivePolicy(Protocol):
    """What a session needs from a meta-trained agent (numpy inference, no torch in the loop)."""

    latent_size: int

    def act(self, obs: np.ndarray, z: np.ndarray, deterministic: bool = True) -> np.ndarray: ...

    def context_reward(self, reward: float, info: dict) -> float: ...

    def context_row(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray) -> np.ndarray: ...

    def posterior(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def prior(self) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class SessionConfig:
    episodes: int
    num_prior_episodes: int = 1
    deterministic_actions: bool = True
    seed: int = 0
    dry_run: bool = False
    same_start: bool = False  # every episode from the same seeded reset (same goal): a clean adaptation curve
    robot_options: dict[str, Any] = field(default_factory=dict)  # recorded in every episode_start
    context_includes_interventions: bool = False  # the operator's (teleop) steps are posterior context too


@dataclass
class EpisodeSummary:
    episode: int
    z_source: str
    episode_return: float
    steps: int
    posterior_mean_norm: float
    posterior_std_mean: float
    safety_events: dict[str, int]
    period_error_p99_ms: float
    missed_deadlines: int
    aborted: bool = False
    reason: str = ""
    partial: bool = False  # cut short: not comparable with full episodes
    interventions: int = 0  # steps the operator drove (teleop take-over)
    extra: dict = field(default_factory=dict)


class SessionAborted(PearlRobotError):
    """The session stopped early (operator stop or a robot fault); the data so far is on disk."""


class AdaptationSession:
    def __init__(
        self,
        env: RobotEnv,
        policy: AdaptivePolicy,
        store: SessionStore,
        config: SessionConfig,
        report: Callable[[EpisodeSummary], None] | None = None,
        teleop: TakeoverRobot | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        """``teleop``: the TakeoverRobot between ``env`` and its SafeRobot, when a person may take over."""
        self.env = env
        self.teleop = teleop
        self.policy = policy
        self.store = store
        self.config = config
        self.report = report or (lambda summary: None)
        self.telemetry = telemetry or NullTelemetry()  # --viz: live telemetry
        self.rng = np.random.default_rng(config.seed)
        self._stop = threading.Event()
        self._stop_reason = ""
        self.context: list[np.ndarray] = []
        self.summaries: list[EpisodeSummary] = []

    # ---- operator control --------------------------------------------------------------------
    def request_stop(self, reason: str = "operator stop") -> None:
        """Safe to call from a signal handler or another thread: the loop stops within one period."""
        self._stop_reason = reason
        self._stop.set()

    @property
    def stop_file(self) -> Path:
        return self.store.folder / "STOP"

    def _stop_requested(self) -> bool:
        if not self._stop.is_set() and self.teleop is not None and self.teleop.stop_reason:
            self.request_stop(self.teleop.stop_reason)
        if not self._stop.is_set() and self.stop_file.exists():
            self.request_stop("STOP file")
        return self._stop.is_set()

    def _consume_stop_file(self) -> None:
        if self._stop.is_set() and self._stop_reason == "STOP file":
            with contextlib.suppress(OSError):
                self.stop_file.unlink()

    # ---- resume -----------------------------------------------------------------------------
    def restore(self, data: SessionData) -> int:
        """Rebuild the context from the records on disk; returns the next episode index. An episode cut
        short by a crash keeps its steps (they are context too) and is closed as interrupted."""
        for step in data.steps():
            if step.get("intervention") and not self.config.context_includes_interventions:
                continue
            self.context.append(
                self.policy.context_row(
                    np.asarray(step["obs"]), np.asarray(step["requested_action"]), step["context_reward"],
                    np.asarray(step["next_obs"]),
                )
            )  # fmt: skip
        ended = {e["episode"] for e in data.episode_ends()}
        for start in data.episode_starts():
            if start["episode"] not in ended:
                steps = data.steps(start["episode"])
                self.store.append(
                    "episode_end", sync=True, episode=start["episode"], z_source=start["z_source"],
                    episode_return=float(sum(s["reward"] for s in steps)), steps=len(steps), aborted=True,
                    partial=True, reason="interrupted (process died); recovered on resume",
                )  # fmt: skip
        # burn the z draws already made, so a resumed session samples what an unbroken one would
        for _ in data.episode_starts():
            self.rng.standard_normal(self.policy.latent_size)
        return len(data.episode_starts())

    # ---- the protocol -----------------------------------------------------------------------
    def infer(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.context:
            return self.policy.prior()
        return self.policy.posterior(np.stack(self.context))

    def run(self, start_episode: int = 0) -> list[EpisodeSummary]:
        try:
            for episode in range(start_episode, self.config.episodes):
                if self.teleop is not None:
                    self.teleop.before_episode(episode, episode == start_episode, self._stop_requested)
                if self._stop_requested():
                    raise SessionAborted(f"{self._stop_reason}: stopped before episode {episode}")
                summary = self._run_episode(episode)
                self.summaries.append(summary)
                self.report(summary)
                if summary.aborted:
                    raise SessionAborted(f"{summary.reason}: episode {episode} stopped after {summary.steps} steps")
        finally:
            self._make_safe()
            self._consume_stop_file()
            self.store.close()
        return self.summaries

    def _run_episode(self, episode: int) -> EpisodeSummary:
        from_prior = episode < self.config.num_prior_episodes
        mean, var = self.policy.prior() if from_prior else self.infer()
        z = mean + np.sqrt(var) * self.rng.standard_normal(self.policy.latent_size)
        z_source = "prior" if from_prior else "posterior"
        start = dict(
            episode=episode,
            z=z,
            z_source=z_source,
            posterior_mean=mean,
            posterior_var=var,
            context_size=len(self.context),
            wall_time=time.time(),
            robot_options=self.config.robot_options,
        )
        events_before = dict(getattr(self.env.robot, "events", {}))
        env = self.env
        total, steps, aborted, reason, interventions = 0.0, 0, False, "", 0
        truncated = False
        try:
            obs, _ = env.reset(seed=self.config.seed + (0 if self.config.same_start else episode))
            with realtime_episode(enabled=env.loop is not None and env.loop.realtime):  # no collector pauses
                if env.loop is not None:
                    env.loop.stats = LoopStats()  # per-episode timing
                    env.loop.start()
                while not truncated:
                    if self.teleop is not None:
                        self.teleop.poll()
                    if self._stop_requested():
                        aborted, reason = True, self._stop_reason
                        break
                    action = policy_action = self.policy.act(obs, z, deterministic=self.config.deterministic_actions)
                    before = env.commanded_target if self.teleop is not None else None
                    next_obs, reward, _, truncated, info = env.step(action)
                    intervention = self.teleop is not None and self.teleop.intervened
                    if intervention:  # the operator's step, as the action that commands what was sent
                        action = _executed_action(env, before, info.get("sent_target"), action)
                    state = env.last_state
                    context_reward = self.policy.context_reward(reward, info)
                    if steps == 0:
                        start["goal"] = getattr(env.task, "goal", None)
                        self.store.append("episode_start", **start)
                        self.telemetry.on_episode_start(start)
                    self.store.append(
                        "step",
                        episode=episode,
                        t=steps,
                        timestamp=state.timestamp,
                        obs=obs,
                        requested_action=action,
                        sent_target=info.get("sent_target"),
                        position=state.position,
                        velocity=state.velocity,
                        effort=state.effort,
                        reward=reward,
                        context_reward=context_reward,
                        sparse_reward=info.get("sparse_reward"),
                        next_obs=next_obs,
                        faults=info.get("faults", []),
                        intervention=intervention,
                        **({"policy_action": policy_action} if intervention else {}),
                    )
                    self.telemetry.on_env_step(env, episode, steps, reward, info, intervention)
                    if not intervention or self.config.context_includes_interventions:
                        self.context.append(self.policy.context_row(obs, action, context_reward, next_obs))
                    interventions += intervention
                    total += reward
                    steps += 1
                    obs = next_obs
                    if getattr(env.robot, "estopped", False):
                        aborted, reason = True, f"safety stop: {env.robot.estop_reason}"
                        break
        except SessionStoreError:
            raise
        except PearlRobotError as exc:  # RobotFault, or a refusal to enable
            if steps == 0:
                raise
            aborted, reason = True, f"robot fault: {exc}" if isinstance(exc, RobotFault) else str(exc)
        if steps == 0:
            raise SessionAborted(f"{reason}: stopped before the first step of episode {episode}; nothing recorded")
        events_after = dict(getattr(env.robot, "events", {}))
        events = {k: v - events_before.get(k, 0) for k, v in events_after.items() if v - events_before.get(k, 0)}
        timing = env.loop.stats.summary() if env.loop is not None else {}
        summary = EpisodeSummary(
            episode=episode,
            z_source=z_source,
            episode_return=total,
            steps=steps,
            posterior_mean_norm=float(np.linalg.norm(mean)),
            posterior_std_mean=float(np.mean(np.sqrt(var))),
            safety_events=events,
            period_error_p99_ms=timing.get("period_error_p99_ms", 0.0),
            missed_deadlines=int(timing.get("missed_deadlines", 0)),
            aborted=aborted,
            reason=reason,
            partial=not truncated,
            interventions=interventions,
        )
        self.store.append("episode_end", sync=True, **{k: v for k, v in summary.__dict__.items() if k != "extra"})
        self.telemetry.on_episode_end(summary.__dict__)
        return summary

    def _make_safe(self) -> None:
        """Hold where the arm is, then torque off; never raises (the robot may already be gone)."""
        robot = self.env.robot
        try:
            if self.teleop is not None:
                self.teleop.release()  # the safe stop is the session's, not the operator's
            if robot.lifecycle is Lifecycle.ACTIVE and not self.config.dry_run:
                robot.write(robot.read().position)
            if robot.lifecycle in (Lifecycle.ACTIVE, Lifecycle.ERROR):
                robot.disable()
        except Exception:  # noqa: BLE001 - the backend has already made itself safe on its own faults
            pass


def _executed_action(env: RobotEnv, before: np.ndarray, sent: np.ndarray | None, proposed: np.ndarray) -> np.ndarray:
    """An operator's step in the policy's action space; the policy's proposal where none expresses it."""
    from pearl_robot.teleop.takeover import executed_action

    executed = executed_action(env, before, sent)
    return proposed if executed is None else executed
