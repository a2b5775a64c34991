"""PEARL's MuJoCo locomotion families on gymnasium's current (v5) MuJoCo models; no mujoco-py.

Each env subclasses gymnasium's env and replaces ``step`` with a lean one: it sets the controls, runs
``mj_step`` for the frame skip and computes the task's reward directly (no gymnasium wrappers, no
per-step checks), which roughly doubles collection speed over ``gymnasium.make``. Episodes truncate at
the family's ``max_path_length``. This module imports gymnasium's MuJoCo envs at import time, so the
registry imports it only when one of these families is built.

Rewards follow the reference (oyster) implementation:

- cheetah-vel: ``-|v_x - v*| - 0.05 |a|^2``, ``v* ~ U(0, 3)``.
- cheetah-dir: ``d v_x - 0.05 |a|^2``, ``d in {+1, -1}``.
- ant-dir: ``v_xy . (cos t, sin t) - 0.5 |a|^2 - 5e-4 |clip(cfrc_ext, -1, 1)|^2 + 1``, ``t in {0, pi}``
  (forward / backward as in the paper; the reference's config samples two random directions, a bug);
  terminates when the torso height leaves [0.2, 1].
- ant-goal: ``-|xy - g|_1 - 0.1 |a|^2 - 5e-4 |clip(cfrc_ext, -1, 1)|^2``, goals uniform on the disc of
  radius 3; never terminates.
- humanoid-dir: gym's humanoid reward with the centre-of-mass velocity projected on ``(cos t, sin t)``,
  ``t ~ U(0, 2 pi)``: ``1.25 v . d + 5 - 0.1 |ctrl|^2 - min(5e-7 |cfrc_ext|^2, 10)``; terminates when
  the torso height leaves [1, 2]. Actions in [-1, 1] are scaled to the model's [-0.4, 0.4] controls.

Observations are gymnasium v5's (cheetah 17-d; ant-dir 27-d, positions without x, y and no contact
forces, as the reference; ant-goal 107-d, with x, y and the clipped contact forces, as the reference;
humanoid 348-d). Deliberate difference: the reference cheetah appends the torso's centre of mass
(including the unbounded x position) to the observation; here it does not.

The dir families have only two tasks, so their train and test tasks are the same two directions (as
in the reference: 2 train / 2 test).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv

from pearl_robot.tasks.base import Task, TaskFamily


def _clip1(action: Any) -> np.ndarray:
    """Clip to [-1, 1]; about twice as fast as ``np.clip`` on a small array."""
    return np.minimum(np.maximum(action, -1.0), 1.0)


class TaskEnvMixin:
    """A pending task applied at the next ``reset`` and a step counter that truncates paths.

    Mixed in before a gymnasium MujocoEnv subclass; the subclass implements ``_load_task(params)``.
    """

    max_path_length: int = 200
    _pending: dict[str, Any] | None = None
    _steps: int = 0

    def set_task(self, params: dict[str, Any]) -> None:
        self._pending = dict(params)

    def _load_task(self, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if self._pending is not None:
            self._load_task(self._pending)
            self._pending = None
        self._steps = 0
        return super().reset(seed=seed, options=options)


class CheetahEnv(TaskEnvMixin, HalfCheetahEnv):
    """Half-cheetah with a target velocity (``mode="vel"``) or a direction (``mode="dir"``)."""

    def __init__(self, mode: str, max_path_length: int = 200, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.max_path_length = max_path_length
        self.goal_velocity = 0.0
        self.direction = 1.0
        self._dt = float(self.dt)

    def _initialize_simulation(self):
        """gymnasium's half_cheetah.xml uses the deprecated ``settotalmass="14"``, which makes MuJoCo warn
        and write MUJOCO_LOG.TXT into the working directory: compile without it and scale the masses
        after compiling (``mj_setTotalmass`` + ``mj_setConst``: the same model, bit for bit)."""
        with open(self.fullpath) as f:
            xml = f.read()
        if 'settotalmass="14"' not in xml:
            return super()._initialize_simulation()
        model = mujoco.MjModel.from_xml_string(xml.replace(' settotalmass="14"', ""))
        data = mujoco.MjData(model)
        mujoco.mj_setTotalmass(model, 14.0)
        mujoco.mj_setConst(model, data)
        return model, data

    def _load_task(self, params: dict[str, Any]) -> None:
        if self.mode == "vel":
            self.goal_velocity = float(params["velocity"])
        else:
            self.direction = float(params["direction"])

    def step(self, action):
        a = _clip1(action)
        data = self.data
        x_before = data.qpos[0]
        data.ctrl[:] = a
        mujoco.mj_step(self.model, data, nstep=self.frame_skip)
        velocity = float(data.qpos[0] - x_before) / self._dt
        ctrl_cost = 0.05 * float(np.dot(a, a))
        if self.mode == "vel":
            forward = -abs(velocity - self.goal_velocity)
        else:
            forward = self.direction * velocity
        obs = np.concatenate((data.qpos[1:], data.qvel))
        self._steps += 1
        info = {"x_velocity": velocity, "reward_forward": forward, "reward_ctrl": -ctrl_cost}
        return obs, forward - ctrl_cost, False, self._steps >= self.max_path_length, info


class AntTaskEnv(TaskEnvMixin, AntEnv):
    """Ant with a direction (``mode="dir"``) or a goal position (``mode="goal"``)."""

    def __init__(self, mode: str, max_path_length: int = 200, **kwargs: Any) -> None:
        goal = mode == "goal"
        super().__init__(
            exclude_current_positions_from_observation=not goal, include_cfrc_ext_in_observation=goal, **kwargs
        )
        self.mode = mode
        self.max_path_length = max_path_length
        self.direction = np.array([1.0, 0.0])
        self.goal = np.zeros(2)
        self._dt = float(self.dt)

    def _load_task(self, params: dict[str, Any]) -> None:
        if self.mode == "dir":
            angle = float(params["angle"])
            self.direction = np.array([math.cos(angle), math.sin(angle)])
        else:
            self.goal = np.asarray(params["goal"], dtype=float)

    def step(self, action):
        a = _clip1(action)
        model, data = self.model, self.data
        xy_before = data.qpos[:2].copy()
        data.ctrl[:] = a
        mujoco.mj_step(model, data, nstep=self.frame_skip)
        mujoco.mj_rnePostConstraint(model, data)  # fills cfrc_ext
        contact = np.clip(data.cfrc_ext, -1.0, 1.0)
        contact_cost = 5e-4 * float(np.sum(contact * contact))
        self._steps += 1
        truncated = self._steps >= self.max_path_length
        if self.mode == "dir":
            velocity = (data.qpos[:2] - xy_before) / self._dt
            forward = float(velocity @ self.direction)
            ctrl_cost = 0.5 * float(np.dot(a, a))
            reward = forward - ctrl_cost - contact_cost + 1.0
            z = data.qpos[2]
            terminated = not (0.2 <= z <= 1.0 and np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all())
            obs = np.concatenate((data.qpos[2:], data.qvel))
            info = {"reward_forward": forward, "reward_ctrl": -ctrl_cost, "reward_contact": -contact_cost}
            return obs, reward, terminated, truncated, info
        distance = float(np.abs(data.qpos[:2] - self.goal).sum())
        ctrl_cost = 0.1 * float(np.dot(a, a))
        reward = -distance - ctrl_cost - contact_cost
        obs = np.concatenate((data.qpos, data.qvel, contact[1:].ravel()))
        info = {"goal_distance_l1": distance, "reward_ctrl": -ctrl_cost, "reward_contact": -contact_cost}
        return obs, reward, False, truncated, info


class HumanoidDirEnv(TaskEnvMixin, HumanoidEnv):
    """Humanoid rewarded for centre-of-mass velocity along a direction; actions scaled to the controls."""

    def __init__(self, max_path_length: int = 200, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_path_length = max_path_length
        self.direction = np.array([1.0, 0.0])
        self._ctrl_scale = self.model.actuator_ctrlrange[:, 1].copy()
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.model.nu,), np.float32)
        self._mass = self.model.body_mass / self.model.body_mass.sum()
        self._dt = float(self.dt)

    def _set_action_space(self):  # gymnasium's would use the model's [-0.4, 0.4]; ours is [-1, 1]
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.model.nu,), np.float32)
        return self.action_space

    def _load_task(self, params: dict[str, Any]) -> None:
        angle = float(params["angle"])
        self.direction = np.array([math.cos(angle), math.sin(angle)])

    def step(self, action):
        ctrl = _clip1(action) * self._ctrl_scale
        model, data = self.model, self.data
        com_before = self._mass @ data.xipos
        data.ctrl[:] = ctrl
        mujoco.mj_step(model, data, nstep=self.frame_skip)
        mujoco.mj_rnePostConstraint(model, data)
        velocity = (self._mass @ data.xipos - com_before)[:2] / self._dt
        forward = 1.25 * float(velocity @ self.direction)
        ctrl_cost = 0.1 * float(np.dot(ctrl, ctrl))
        contact_cost = min(5e-7 * float(np.sum(np.square(data.cfrc_ext))), 10.0)
        reward = forward + 5.0 - ctrl_cost - contact_cost
        z = data.qpos[2]
        terminated = not 1.0 < z < 2.0
        self._steps += 1
        info = {"reward_forward": forward, "reward_ctrl": -ctrl_cost, "reward_contact": -contact_cost}
        return self._get_obs(), reward, terminated, self._steps >= self.max_path_length, info


# ---- families ---------------------------------------------------------------------------------


class _MujocoFamily(TaskFamily):
    max_path_length = 200

    def _make(self) -> gym.Env:
        raise NotImplementedError

    def make_env(self, seed: int | None = None) -> gym.Env:
        env = self._make()
        env.reset(seed=seed)
        env.action_space.seed(seed)
        return env

    def apply(self, env: gym.Env, task: Task) -> None:
        env.unwrapped.set_task(task.params)


class CheetahVelFamily(_MujocoFamily):
    """Half-cheetah running at a target velocity ~ U(0, 3) (the reference code's range)."""

    name = "cheetah-vel"
    num_train_tasks = 100
    num_test_tasks = 30

    def __init__(self, max_velocity: float = 3.0, **counts: Any) -> None:
        super().__init__(**counts)
        self.max_velocity = float(max_velocity)

    def _make(self) -> gym.Env:
        return CheetahEnv("vel", self.max_path_length)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return [Task(self.name, i, {"velocity": float(v)}) for i, v in enumerate(rng.uniform(0, self.max_velocity, n))]


def _alternating(name: str, n: int, key: str, values: tuple[float, float]) -> list[Task]:
    return [Task(name, i, {key: values[i % 2]}) for i in range(n)]


class CheetahDirFamily(_MujocoFamily):
    """Half-cheetah running forward (+1) or backward (-1)."""

    name = "cheetah-dir"
    num_train_tasks = 2
    num_test_tasks = 2

    def _make(self) -> gym.Env:
        return CheetahEnv("dir", self.max_path_length)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return _alternating(self.name, n, "direction", (1.0, -1.0))


class AntDirFamily(_MujocoFamily):
    """Ant running forward (angle 0) or backward (angle pi), as in the paper."""

    name = "ant-dir"
    num_train_tasks = 2
    num_test_tasks = 2

    def _make(self) -> gym.Env:
        return AntTaskEnv("dir", self.max_path_length)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return _alternating(self.name, n, "angle", (0.0, math.pi))


class AntGoalFamily(_MujocoFamily):
    """Ant walking to a goal uniform on the disc of radius 3."""

    name = "ant-goal"
    num_train_tasks = 150
    num_test_tasks = 30

    def __init__(self, radius: float = 3.0, **counts: Any) -> None:
        super().__init__(**counts)
        self.radius = float(radius)

    def _make(self) -> gym.Env:
        return AntTaskEnv("goal", self.max_path_length)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        angle = rng.uniform(0, 2 * math.pi, n)
        r = self.radius * np.sqrt(rng.uniform(0, 1, n))
        goals = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
        return [Task(self.name, i, {"goal": [float(g[0]), float(g[1])]}) for i, g in enumerate(goals)]


class HumanoidDirFamily(_MujocoFamily):
    """Humanoid running in a direction ~ U(0, 2 pi)."""

    name = "humanoid-dir"
    num_train_tasks = 100
    num_test_tasks = 30

    def _make(self) -> gym.Env:
        return HumanoidDirEnv(self.max_path_length)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return [Task(self.name, i, {"angle": float(t)}) for i, t in enumerate(rng.uniform(0, 2 * math.pi, n))]
