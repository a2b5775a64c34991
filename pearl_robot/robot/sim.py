"""SimRobot: the arm in MuJoCo, stepping one control period (frame skip) per command, like the real
20 Hz controller. Position actuators with a force range stand in for the servos' position loop."""

from __future__ import annotations

import collections
import time

import mujoco
import numpy as np

from pearl_robot.errors import ConfigError
from pearl_robot.robot.base import Robot, RobotState
from pearl_robot.robot.dynamics import ArmDynamics, DynamicsApplier
from pearl_robot.robot.mock import teleport_target
from pearl_robot.robot.spec import RobotSpec

TELEPORT_SLACK_RAD = 0.02  # a start measured on the real arm may sit this far past a limit (encoder noise)


def load_model(spec: RobotSpec) -> mujoco.MjModel:
    if spec.mjcf is None:
        raise ConfigError(spec.source, "sim.mjcf", "this robot has no MJCF model; add one to simulate it")
    try:
        model = mujoco.MjModel.from_xml_path(str(spec.mjcf))
    except ValueError as exc:
        raise ConfigError(spec.mjcf, "<mjcf>", str(exc).strip().splitlines()[0]) from None
    for name in spec.joint_names:
        for kind, lookup in (("joint", model.joint), ("actuator", model.actuator)):
            try:
                lookup(name)
            except KeyError:
                raise ConfigError(spec.mjcf, kind, f"no {kind} named '{name}' (from {spec.source.name})") from None
    return model


class SimRobot(Robot):
    """Lock-step simulation: each ``write()`` applies the targets and integrates one control period.

    ``dynamics`` perturbs the nominal model (task families, the virtual bus, system identification).
    """

    def __init__(self, spec: RobotSpec, dynamics: ArmDynamics | None = None) -> None:
        super().__init__(spec)
        self.model = load_model(spec)
        self.data = mujoco.MjData(self.model)
        self.frame_skip = max(1, round(spec.period_s / self.model.opt.timestep))
        self._qpos = np.array([self.model.joint(n).qposadr[0] for n in spec.joint_names])
        self._qvel = np.array([self.model.joint(n).dofadr[0] for n in spec.joint_names])
        self._act = np.array([self.model.actuator(n).id for n in spec.joint_names])
        self._ctrl_lo = self.model.actuator_ctrlrange[self._act, 0].copy()
        self._ctrl_hi = self.model.actuator_ctrlrange[self._act, 1].copy()
        self._dynamics_applier = DynamicsApplier(self.model, spec.joint_names)
        self.dynamics = dynamics or ArmDynamics()
        self._pending: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        self.torque_enabled = False
        self.teleport(spec.home_rad)

    @classmethod
    def from_address(cls, address: str, spec: RobotSpec, **options: object) -> SimRobot:
        return cls(spec, **options)

    # ---- dynamics -------------------------------------------------------------------------
    def set_dynamics(self, dynamics: ArmDynamics) -> None:
        self._dynamics_applier.apply(dynamics)
        self.dynamics = dynamics
        self._dynamics_applier.set_torque(self.torque_enabled, dynamics)

    @property
    def sim_time_s(self) -> float:
        return float(self.data.time)

    # ---- lifecycle hooks ------------------------------------------------------------------
    def _connect(self) -> None:
        self._set_torque(False)

    def _enable(self) -> None:
        self._pending.clear()
        self.data.ctrl[self._act] = self.data.qpos[self._qpos]
        self._set_torque(True)

    def _disable(self) -> None:
        self._set_torque(False)

    def _close(self) -> None:
        self._set_torque(False)

    def _set_torque(self, enabled: bool) -> None:
        self.torque_enabled = enabled
        self._dynamics_applier.set_torque(enabled, self.dynamics)

    # ---- I/O ------------------------------------------------------------------------------
    def _read(self) -> RobotState:
        return RobotState(
            position=self.data.qpos[self._qpos].copy(),
            velocity=self.data.qvel[self._qvel].copy(),
            effort=self.data.actuator_force[self._act].copy(),
            timestamp=time.monotonic(),
        )

    def _write(self, targets: np.ndarray) -> np.ndarray:
        sent = np.clip(
            targets, self.model.actuator_ctrlrange[self._act, 0], self.model.actuator_ctrlrange[self._act, 1]
        )
        if self.dynamics.latency_s > 0:
            self._pending.append((self.data.time + self.dynamics.latency_s, sent))
            self._integrate_with_latency()
        else:
            self.data.ctrl[self._act] = sent
            mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        return sent

    def _integrate_with_latency(self) -> None:
        """One control period, applying each delayed command at its due physics step (stepping in chunks)."""
        timestep = self.model.opt.timestep
        remaining = self.frame_skip
        while remaining > 0:
            while self._pending and self._pending[0][0] <= self.data.time + 0.5 * timestep:
                self.data.ctrl[self._act] = self._pending.popleft()[1]
            chunk = remaining
            if self._pending:
                due_steps = int(np.ceil((self._pending[0][0] - self.data.time) / timestep - 0.5))
                chunk = max(1, min(remaining, due_steps))
            mujoco.mj_step(self.model, self.data, nstep=chunk)
            remaining -= chunk

    def step_idle(self, periods: int = 1) -> None:
        """Let time pass without a new command (the servos keep their last goal)."""
        for _ in range(periods):
            if self._pending:
                self._integrate_with_latency()
            else:
                mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)

    # ---- teleport (simulation only) --------------------------------------------------------
    @property
    def can_teleport(self) -> bool:
        return True

    def teleport(self, position: np.ndarray) -> None:
        """Set the joint state (at rest) to ``position``, within the joint limits (+ TELEPORT_SLACK_RAD)."""
        position = teleport_target(self.spec, position, TELEPORT_SLACK_RAD)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._qpos] = position
        self.data.ctrl[self._act] = position
        self._pending.clear()
        mujoco.mj_forward(self.model, self.data)
