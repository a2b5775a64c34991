"""RobotEnv: a Gymnasium env over any Robot plus a reach task, optionally paced by a RateLoop.

Actions in [-1, 1] (one per arm joint) move each joint target by at most ``action_scale_rad`` per
step; the gripper holds its target. The same env runs on SimRobot in training and on the real arm.

Observation: arm joint positions (rad) and velocities (rad/s); the commanded target minus the position, in
units of ``action_scale_rad`` (the controller's own state: the policy moves a target it would otherwise not
see, and a lagging or sagging arm would look like one at rest); the end-effector position (m); and, when the
goal is observed, the reach error ``goal - end effector`` in units of ``REACH_ERROR_UNIT_M`` followed by
the goal (m). The two scaled parts are what a reaching policy acts on: in their natural units (a few cm,
a few hundredths of a rad) they would be tiny inputs that Adam's bounded steps take long to amplify.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from pearl_robot.control.loop import RateLoop
from pearl_robot.robot.base import Lifecycle, Robot
from pearl_robot.robot.kinematics import Kinematics
from pearl_robot.tasks.reach import ReachTask

REACH_ERROR_UNIT_M = 0.1


class RobotEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(
        self,
        robot: Robot,
        task: ReachTask,
        loop: RateLoop | None = None,
        action_scale_rad: float | None = None,
        reset_noise_rad: float = 0.05,
        reset_speed_rad_s: float = 0.3,
        dry_run: bool = False,
    ) -> None:
        """``dry_run``: compute and report targets but never enable the robot or send a command."""
        self.robot = robot
        self.robot_spec = robot.spec
        self.task = task
        self.loop = loop
        self.kinematics = Kinematics(self.robot_spec)
        self.arm = self.robot_spec.arm_joint_indices
        period_cap = self.robot_spec.velocity_max[self.arm] * self.robot_spec.period_s
        self.action_scale_rad = np.minimum(action_scale_rad or self.robot_spec.safety.max_step_rad, period_cap)
        self.reset_noise_rad = reset_noise_rad
        self.reset_speed_rad_s = reset_speed_rad_s
        self.dry_run = dry_run
        n_arm = len(self.arm)
        # bounds: joint limits, a generous velocity bound, target offsets within the joint range, a 1 m box
        # around the base for positions (and the errors between two of them)
        span_steps = (self.robot_spec.position_max - self.robot_spec.position_min)[self.arm] / self.action_scale_rad
        box = np.ones(3)
        goal_parts = [2 * box / REACH_ERROR_UNIT_M, box] if task.goal_observed else []
        high = np.concatenate(
            [self.robot_spec.position_max[self.arm], 10 * self.robot_spec.velocity_max[self.arm], span_steps, box]
            + goal_parts
        )
        low = np.concatenate(
            [self.robot_spec.position_min[self.arm], -high[n_arm : 3 * n_arm], -box] + [-p for p in goal_parts]
        )
        self.observation_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self._obs_bounds = (self.observation_space.low, self.observation_space.high)  # a subclass may extend the space
        self.action_space = gym.spaces.Box(-1.0, 1.0, (n_arm,), np.float32)
        self._target = self.robot_spec.home_rad.copy()
        self._steps = 0
        self.last_state = None

    @property
    def commanded_target(self) -> np.ndarray:
        """The joint targets last commanded (all joints, rad); a copy, read-only for callers."""
        return self._target.copy()

    def set_task(self, task: ReachTask) -> None:
        if task.goal_observed != self.task.goal_observed:
            raise ValueError("a new task must keep the observation layout (goal_observed)")
        self.task = task

    # ---- gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._ensure_connected()
        if self.dry_run:
            return self._reset_bookkeeping(self.robot.read())
        if self.robot.lifecycle is Lifecycle.INACTIVE:
            self.robot.enable()
        start = self.robot_spec.home_rad.copy()
        start[self.arm] += self.np_random.uniform(-self.reset_noise_rad, self.reset_noise_rad, len(self.arm))
        start = np.clip(start, self.robot_spec.position_min, self.robot_spec.position_max)
        if self.robot.can_teleport:
            self.robot.teleport(start)
        else:
            self.move_to(start)
        return self._reset_bookkeeping(self.robot.read())

    def _reset_bookkeeping(self, state):
        self._target = state.position.copy()
        self._steps = 0
        if self.loop is not None:
            self.loop.start()
        self.last_state = state
        return self._observation(state), {}

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=float)
        if action.shape != (len(self.arm),) or not np.all(np.isfinite(action)):
            # hold position: the safety layer counts it; the episode goes on
            action = np.zeros(len(self.arm))
        action = np.clip(action, -1.0, 1.0)
        target = self._target.copy()
        target[self.arm] += action * self.action_scale_rad
        target = np.clip(target, self.robot_spec.position_min, self.robot_spec.position_max)
        if self.dry_run:
            sent = None
            self._target = target
        else:
            sent = self.robot.write(target)
            self._target = np.asarray(sent, dtype=float)
        if self.loop is not None:
            self.loop.wait()
        state = self.robot.read()
        self.last_state = state
        self._steps += 1
        ee = self.kinematics.end_effector(state.position)
        reward, info = self.task.reward(ee, action)
        info["faults"] = [str(f) for f in state.faults]
        info["requested_target"] = target
        info["sent_target"] = sent
        truncated = self._steps >= self.task.horizon
        return self._observation(state), reward, False, truncated, info

    def close(self) -> None:
        self.robot.close()

    # ---- helpers ----------------------------------------------------------------------------
    def _ensure_connected(self) -> None:
        if self.robot.lifecycle is Lifecycle.UNCONFIGURED:
            self.robot.connect()

    def move_to(self, goal: np.ndarray) -> None:
        """A slow, rate-limited motion to ``goal`` (used for resets on hardware)."""
        loop = self.loop or RateLoop(self.robot_spec.period_s, realtime=self.robot.realtime)
        loop.start()
        step = self.reset_speed_rad_s * self.robot_spec.period_s
        target = self.robot.read().position.copy()
        max_steps = int(np.max(np.abs(goal - target)) / step) + 2 * int(self.robot_spec.control_rate_hz)
        for _ in range(max_steps):
            target = target + np.clip(goal - target, -step, step)
            self.robot.write(target)
            loop.wait()
            if np.max(np.abs(self.robot.read().position - goal)) < 0.02 and np.allclose(target, goal):
                break

    def _observation(self, state) -> np.ndarray:
        ee = self.kinematics.end_effector(state.position)
        offset_steps = (self._target[self.arm] - state.position[self.arm]) / self.action_scale_rad
        parts = [state.position[self.arm], state.velocity[self.arm], offset_steps, ee]
        if self.task.goal_observed:
            parts += [(self.task.goal - ee) / REACH_ERROR_UNIT_M, self.task.goal]
        obs = np.concatenate(parts).astype(np.float32)
        return np.clip(obs, *self._obs_bounds)
