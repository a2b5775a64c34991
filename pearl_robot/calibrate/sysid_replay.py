"""Replays recorded targets in MuJoCo under many candidate dynamics at once, for system identification.

The semantics are ``SimRobot``'s (the arm starts at rest at the first recorded position with that as its
goal; target ``i`` is sent at the start of period ``i``; positions are read at the end of each period),
with two differences that make the fit fast and smooth:

- one ``mujoco.rollout`` call runs every candidate on a thread pool (a finite-difference Jacobian is one
  call), each candidate on its own copy of the model;
- the command latency is continuous: a target due inside a physics step is blended into that step by the
  fraction of the step it is due for, so the replay changes continuously with the latency instead of
  jumping by whole 2 ms steps (``SimRobot`` rounds the due time to the nearest step: the two agree
  when the latency is a multiple of the timestep and otherwise differ by under half a step).
"""

from __future__ import annotations

import copy
import os

import mujoco
import mujoco.rollout
import numpy as np

from pearl_robot.robot.dynamics import ArmDynamics, DynamicsApplier
from pearl_robot.robot.sim import load_model
from pearl_robot.robot.spec import RobotSpec


class BatchReplay:
    """``replay(dynamics_list)`` -> positions ``(len(list), T + 1, n_joints)`` for targets ``sent`` (T, n)."""

    def __init__(self, spec: RobotSpec, sent: np.ndarray, start_position: np.ndarray, period_s: float) -> None:
        self.spec = spec
        self._nominal = load_model(spec)
        self.timestep = float(self._nominal.opt.timestep)
        self.frame_skip = max(1, round(period_s / self.timestep))
        act = np.array([self._nominal.actuator(n).id for n in spec.joint_names])
        self._act = act
        self._qpos = 1 + np.array([self._nominal.joint(n).qposadr[0] for n in spec.joint_names])  # state[0] = time
        lo, hi = self._nominal.actuator_ctrlrange[act, 0], self._nominal.actuator_ctrlrange[act, 1]
        start = np.asarray(start_position, dtype=float)
        # command 0 is the goal the arm holds before the first target arrives (SimRobot.teleport's)
        self.commands = np.clip(np.vstack([start, np.asarray(sent, dtype=float)]), lo, hi)
        self.start = start
        self._initial_state = self._state_at_rest(start)
        self._models: list[mujoco.MjModel] = []
        self._appliers: list[DynamicsApplier] = []
        threads = max(1, min(os.cpu_count() or 1, 16))
        self._datas = [mujoco.MjData(self._nominal) for _ in range(threads)]

    @property
    def num_periods(self) -> int:
        return len(self.commands) - 1

    def _state_at_rest(self, position: np.ndarray) -> np.ndarray:
        data = mujoco.MjData(self._nominal)
        mujoco.mj_resetData(self._nominal, data)
        data.qpos[self._qpos - 1] = position
        data.ctrl[self._act] = position
        mujoco.mj_forward(self._nominal, data)
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        state = np.empty(mujoco.mj_stateSize(self._nominal, spec))
        mujoco.mj_getState(self._nominal, data, state, spec)
        return state

    def _model(self, index: int) -> tuple[mujoco.MjModel, DynamicsApplier]:
        while len(self._models) <= index:
            model = copy.copy(self._nominal)
            self._models.append(model)
            self._appliers.append(DynamicsApplier(model, self.spec.joint_names))
        return self._models[index], self._appliers[index]

    def controls(self, latency_s: float) -> np.ndarray:
        """Actuator controls per physics step, ``(T * frame_skip, nu)``, with target ``i`` due at
        ``i * period + latency`` (blended into the step it falls in)."""
        steps = self.num_periods * self.frame_skip
        s = np.arange(steps, dtype=float)
        shift = latency_s / self.timestep
        # commands[k] (k >= 1: target k - 1) is due at step (k - 1) * frame_skip + shift
        k = np.clip(np.floor((s - shift) / self.frame_skip).astype(int) + 1, 0, self.num_periods)
        next_due = k * self.frame_skip + shift  # when commands[k + 1] is due
        fraction = np.where(k < self.num_periods, np.clip(s + 1 - next_due, 0.0, 1.0), 0.0)
        nxt = np.minimum(k + 1, self.num_periods)
        blended = (1 - fraction)[:, None] * self.commands[k] + fraction[:, None] * self.commands[nxt]
        ctrl = np.zeros((steps, self._nominal.nu))
        ctrl[:, self._act] = blended
        return ctrl

    def replay(self, candidates: list[ArmDynamics]) -> np.ndarray:
        models = []
        for index, dynamics in enumerate(candidates):
            model, applier = self._model(index)
            applier.apply(dynamics)
            models.append(model)
        controls = np.stack([self.controls(d.latency_s) for d in candidates])
        state, _ = mujoco.rollout.rollout(
            models, self._datas[: len(models)], self._initial_state, controls, skip_checks=False
        )
        positions = state[:, self.frame_skip - 1 :: self.frame_skip, :][:, :, self._qpos]
        start = np.broadcast_to(self.start, (len(candidates), 1, len(self.start)))
        return np.concatenate([start, positions], axis=1)
