"""Shared by the teleoperation session tests: a scripted policy that also plays the operator (it types on
the keyboard's pty at given steps), a session runner, and the arm's numbers."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable

import numpy as np

from pearl_robot.adapt.session import AdaptationSession, SessionConfig
from pearl_robot.adapt.store import SessionData, SessionStore
from pearl_robot.control.loop import RateLoop
from pearl_robot.envs.robot_env import RobotEnv
from pearl_robot.robot.base import Robot
from pearl_robot.robot.spec import load_spec
from pearl_robot.tasks.reach import ReachTask
from pearl_robot.teleop.source import TeleopSource
from pearl_robot.teleop.takeover import TakeoverRobot

HORIZON = 10
SPEC = load_spec()
ARM = SPEC.arm_joint_indices
CAP = np.minimum(SPEC.safety.max_step_rad, SPEC.velocity_max * SPEC.period_s)  # SafeRobot's step cap
# typed after the policy's action number N (1-based, counted over the session): polled before the next one.
# Take over and select joint 1; jog it up faster than the cap for two periods; hand back.
OPERATOR = {3: b" 1", 4: b"+" * 10, 5: b"+" * 10, 6: b" "}


class PushingPolicy:
    """Pushes every arm joint up by a full step (the worst case for a hand-back), and types the operator's
    keys; keeps every posterior input it is given."""

    latent_size = 2

    def __init__(self, keys: dict[int, bytes], type_keys: Callable[[bytes], None]) -> None:
        self.keys, self.type_keys = keys, type_keys
        self.acted = 0
        self.posterior_inputs: list[np.ndarray] = []

    def act(self, obs, z, deterministic=True):
        self.acted += 1
        if self.acted in self.keys:
            self.type_keys(self.keys[self.acted])
        return np.ones(len(ARM))

    def context_reward(self, reward, info):
        return reward

    def context_row(self, obs, action, reward, next_obs):
        return np.concatenate([obs, action, [reward], next_obs])

    def posterior(self, context):
        self.posterior_inputs.append(np.array(context))
        return np.array([0.3, -0.2]), np.array([0.04, 0.09])

    def prior(self):
        return np.zeros(2), np.ones(2)


def context_row(step: dict) -> np.ndarray:
    """The posterior input row of a step record, as PushingPolicy builds it."""
    return np.concatenate([step["obs"], step["requested_action"], [step["context_reward"]], step["next_obs"]])


def run_session(
    robot: Robot,
    folder,
    source: TeleopSource,
    type_keys: Callable[[bytes], None],
    *,
    episodes: int = 3,
    keys: dict[int, bytes] | None = None,
    include: bool = False,
    reset_jog: bool = False,
    made: Callable[[TakeoverRobot], None] | None = None,
) -> tuple[AdaptationSession, PushingPolicy, SessionData]:
    """``made``: told the TakeoverRobot before the session runs (for an operator on another thread)."""
    takeover = TakeoverRobot(robot, source, reset_jog=reset_jog)
    if made is not None:
        made(takeover)
    env = RobotEnv(
        takeover, ReachTask(np.array([0.2, 0.0, 0.15]), HORIZON), loop=RateLoop(SPEC.period_s, realtime=robot.realtime)
    )
    store = SessionStore(folder)
    store.create({"robot": "test", "hardware": None, "robot_id": SPEC.robot_id, "joint_names": list(SPEC.joint_names)})
    policy = PushingPolicy(OPERATOR if keys is None else keys, type_keys)
    config = SessionConfig(episodes, 1, seed=1, context_includes_interventions=include)
    session = AdaptationSession(env, policy, store, config, teleop=takeover)
    with robot:
        session.run()
    return session, policy, SessionStore(folder).load()


def intervention_run(data: SessionData, episode: int = 0) -> list[int]:
    return [s["t"] for s in data.steps(episode) if s["intervention"]]


class Lines:
    """The command's stdout, read from its pipe line by line without blocking past a deadline (raw reads:
    a buffered reader would hold lines that select() then never reports)."""

    def __init__(self, stream):
        self.fd, self.seen, self._partial = stream.fileno(), [], b""

    def wait_for(self, text, timeout_s=60.0):
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.seen):
            assert time.monotonic() < deadline, f"no '{text}' in {self.seen}"
            if select.select([self.fd], [], [], 0.05)[0]:
                chunk = os.read(self.fd, 65536)
                assert chunk, f"the command ended before '{text}': {self.seen}"
                *lines, self._partial = (self._partial + chunk).split(b"\n")
                self.seen += [line.decode() for line in lines]

    def rest(self):
        """Everything else, once the command has ended."""
        while chunk := os.read(self.fd, 65536):
            self._partial += chunk
        self.seen += [line.decode() for line in self._partial.split(b"\n") if line]
        return self.seen
