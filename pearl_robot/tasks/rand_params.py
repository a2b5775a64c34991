"""Walker and hopper with randomised physical parameters (PEARL's ``*-rand-params`` families).

Each task draws one multiplier per model element, as the reference (rand_param_envs): body mass,
body inertia (per axis) and geom friction (per component) x ``1.5 ** U(-3, 3)``, dof damping x
``1.3 ** U(-3, 3)``. ``apply`` sets ``nominal * multiplier`` on the env's MjModel at the next reset (the
nominal values are remembered at construction, so tasks never compound) and recomputes the model's
derived constants (``mj_setConst``: subtree masses, inverse weights used by the constraint solver);
the reference set the arrays without that step. Rewards and termination are gym's walker / hopper:
forward velocity + 1 alive bonus - 1e-3 |a|^2, terminated when the torso falls or tilts too far.

Physics as the reference's models (rand_param_envs' bundled gym ``walker2d.xml`` / ``hopper.xml``):
timestep 0.004 s (gymnasium's models: 0.002 s), frame skip 5 for the walker (dt 0.02 s) and 4 for the
hopper (dt 0.016 s). The walker is gymnasium's ``walker2d.xml`` (its v2-v4 model: right foot friction
0.9, left foot 1.9, as the reference), not ``walker2d_v5.xml`` (both feet 1.9).
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from pearl_robot.tasks.base import Task
from pearl_robot.tasks.locomotion import TaskEnvMixin, _clip1, _MujocoFamily

# model field -> base of the multiplier (the exponent is U(-log_scale_limit, log_scale_limit))
RAND_PARAMS: dict[str, float] = {"body_mass": 1.5, "body_inertia": 1.5, "dof_damping": 1.3, "geom_friction": 1.5}


class RandParamsMixin(TaskEnvMixin):
    """Nominal copies of the randomised fields; a task's multipliers are applied relative to them."""

    def _remember_nominal(self) -> None:
        self.nominal = {key: getattr(self.model, key).copy() for key in RAND_PARAMS}

    def _load_task(self, params: dict[str, Any]) -> None:
        for key, nominal in self.nominal.items():
            scale = np.asarray(params.get(key, 1.0), dtype=float)
            getattr(self.model, key)[:] = nominal * scale
        mujoco.mj_setConst(self.model, self.data)


class _PlanarRunnerStep:
    """Gymnasium's walker/hopper step without its wrapper overhead: forward velocity + 1 (alive) - 1e-3 |a|^2;
    the two differ only in when the body counts as healthy. The model runs at the reference's timestep
    and frame skip (``TIMESTEP_S``, ``FRAME_SKIP``)."""

    TIMESTEP_S = 0.004  # rand_param_envs' walker2d.xml and hopper.xml
    FRAME_SKIP = 4
    XML_FILE: str | None = None  # None: gymnasium's default model of the env

    def __init__(self, max_path_length: int = 200, **kwargs: Any) -> None:
        if self.XML_FILE is not None:
            kwargs.setdefault("xml_file", self.XML_FILE)
        super().__init__(frame_skip=self.FRAME_SKIP, **kwargs)
        self.max_path_length = max_path_length
        self._dt = float(self.dt)
        self._remember_nominal()

    def _initialize_simulation(self):
        model, data = super()._initialize_simulation()
        model.opt.timestep = self.TIMESTEP_S
        return model, data

    def _healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> bool:
        raise NotImplementedError

    def step(self, action):
        a = _clip1(action)
        data = self.data
        x_before = data.qpos[0]
        data.ctrl[:] = a
        mujoco.mj_step(self.model, data, nstep=self.frame_skip)
        qpos, qvel = data.qpos, data.qvel
        velocity = float(qpos[0] - x_before) / self._dt
        ctrl_cost = 1e-3 * float(np.dot(a, a))
        terminated = not self._healthy(qpos, qvel)
        obs = np.concatenate((qpos[1:], np.minimum(np.maximum(qvel, -10.0), 10.0)))
        self._steps += 1
        info = {"x_velocity": velocity, "reward_ctrl": -ctrl_cost}
        return obs, velocity + 1.0 - ctrl_cost, terminated, self._steps >= self.max_path_length, info


class WalkerRandParamsEnv(_PlanarRunnerStep, RandParamsMixin, Walker2dEnv):
    FRAME_SKIP = 5  # Walker2DRandParamsEnv: RandomEnv.__init__(..., 'walker2d.xml', 5)
    XML_FILE = "walker2d.xml"  # feet friction 0.9 (right) / 1.9 (left); walker2d_v5.xml has 1.9 / 1.9

    def _healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> bool:
        return 0.8 < qpos[1] < 2.0 and -1.0 < qpos[2] < 1.0


class HopperRandParamsEnv(_PlanarRunnerStep, RandParamsMixin, HopperEnv):
    FRAME_SKIP = 4  # HopperRandParamsEnv: RandomEnv.__init__(..., 'hopper.xml', 4)

    def _healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> bool:
        state_ok = np.abs(qpos[2:]).max() < 100.0 and np.abs(qvel).max() < 100.0
        return bool(state_ok and qpos[1] > 0.7 and -0.2 < qpos[2] < 0.2)


class _RandParamsFamily(_MujocoFamily):
    num_train_tasks = 40
    num_test_tasks = 10
    env_class: type = WalkerRandParamsEnv

    def __init__(self, log_scale_limit: float = 3.0, **counts: Any) -> None:
        super().__init__(**counts)
        self.log_scale_limit = float(log_scale_limit)
        self._shapes: dict[str, tuple[int, ...]] | None = None

    def _make(self):
        return self.env_class(self.max_path_length)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the randomised model fields (read once from a built env)."""
        if self._shapes is None:
            env = self._make()
            self._shapes = {key: value.shape for key, value in env.nominal.items()}
            env.close()
        return self._shapes

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        tasks = []
        for i in range(n):
            params = {}
            for key, shape in self.shapes().items():
                exponent = rng.uniform(-self.log_scale_limit, self.log_scale_limit, shape)
                params[key] = (RAND_PARAMS[key] ** exponent).tolist()
            tasks.append(Task(self.name, i, params))
        return tasks


class WalkerRandParamsFamily(_RandParamsFamily):
    """Walker2d with random mass, inertia, friction and damping; 40 train / 10 test tasks."""

    name = "walker-rand-params"
    env_class = WalkerRandParamsEnv


class HopperRandParamsFamily(_RandParamsFamily):
    """Hopper with random mass, inertia, friction and damping; 40 train / 10 test tasks."""

    name = "hopper-rand-params"
    env_class = HopperRandParamsEnv
