"""What the virtual servos move: joint angles at the output shaft, in radians.

``MujocoPlant`` is the arm of ``SimRobot`` (the same MJCF through ``sim.load_model``, perturbed by the
same ``ArmDynamics``) integrated in real time by a thread: each wake-up steps the model until its
clock catches up with the wall clock, then publishes a snapshot that the bus reads without waiting.
Torque is per joint, as on a servo chain: a joint with torque off has no actuator stiffness and
hangs on gravity and friction. ``IdealPlant`` has no physics: joints jump to their goals. It keeps
protocol tests fast and lets a test place joints exactly.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np


class Plant(Protocol):
    def joint_state(self, index: int) -> tuple[float, float, float]:
        """(position rad, velocity rad/s, actuator effort N*m) of one joint."""
        ...

    def set_goal(self, index: int, position_rad: float) -> None: ...

    def set_torque(self, index: int, enabled: bool) -> None: ...

    def set_profile_velocity(self, index: int, rad_s: float | None) -> None:
        """Limit how fast the goal trajectory moves (None: step to the goal)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class IdealPlant:
    """Joints at their goals while torque is on; where they were left while it is off."""

    def __init__(self, positions: Sequence[float]) -> None:
        self.position = np.array(positions, dtype=float)
        self.goal = self.position.copy()
        self.torque = np.zeros(len(self.position), dtype=bool)
        self._lock = threading.Lock()

    def joint_state(self, index: int) -> tuple[float, float, float]:
        with self._lock:
            return float(self.position[index]), 0.0, 0.0

    def set_goal(self, index: int, position_rad: float) -> None:
        with self._lock:
            self.goal[index] = position_rad
            if self.torque[index]:
                self.position[index] = position_rad

    def set_torque(self, index: int, enabled: bool) -> None:
        with self._lock:
            self.torque[index] = enabled
            if enabled:
                self.position[index] = self.goal[index]

    def set_profile_velocity(self, index: int, rad_s: float | None) -> None:
        pass

    def set_position(self, index: int, position_rad: float) -> None:
        """Move a joint by hand (tests): the arm is where the test says."""
        with self._lock:
            self.position[index] = position_rad

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class MujocoPlant:
    """The MuJoCo arm in real time. ``wake_s`` is how often the thread catches up and publishes."""

    def __init__(
        self,
        spec,
        dynamics=None,
        initial_position_rad: Sequence[float] | None = None,
        *,
        wake_s: float = 0.004,
        max_lag_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import mujoco

        from pearl_robot.robot.dynamics import ArmDynamics, DynamicsApplier
        from pearl_robot.robot.sim import load_model

        self._mujoco = mujoco
        self.spec = spec
        self.model = load_model(spec)
        self.data = mujoco.MjData(self.model)
        self.dt = float(self.model.opt.timestep)
        self.dynamics = dynamics or ArmDynamics()
        self._applier = DynamicsApplier(self.model, spec.joint_names)
        self._qpos = np.array([self.model.joint(n).qposadr[0] for n in spec.joint_names])
        self._qvel = np.array([self.model.joint(n).dofadr[0] for n in spec.joint_names])
        self._act = np.array([self.model.actuator(n).id for n in spec.joint_names])
        n = spec.num_joints
        start = np.array(spec.home_rad if initial_position_rad is None else initial_position_rad, dtype=float)
        self.data.qpos[self._qpos] = start
        mujoco.mj_forward(self.model, self.data)
        self.torque = np.zeros(n, dtype=bool)
        self.goal = start.copy()  # what the servos were told
        self.trajectory = start.copy()  # the goal after the profile limit: what the actuators track
        self.rate_limit = np.full(n, np.inf)
        self._pending: collections.deque[tuple[float, int, float]] = collections.deque()  # latency queue
        self.wake_s = wake_s
        self.max_lag_s = max_lag_s
        self.clock = clock
        self.lag_events = 0  # times the thread fell more than max_lag_s behind and dropped time
        self._lock = threading.Lock()
        self._snapshot = self._take_snapshot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._apply_gains()

    # ---- commands (any thread) ----------------------------------------------------------------
    def joint_state(self, index: int) -> tuple[float, float, float]:
        q, qd, tau = self._snapshot
        return float(q[index]), float(qd[index]), float(tau[index])

    def set_goal(self, index: int, position_rad: float) -> None:
        with self._lock:
            latency = self.dynamics.latency_s
            if latency > 0:
                self._pending.append((self.data.time + latency, index, position_rad))
            else:
                self.goal[index] = position_rad

    def set_torque(self, index: int, enabled: bool) -> None:
        with self._lock:
            if enabled and not self.torque[index]:
                self.trajectory[index] = self.data.qpos[self._qpos[index]]  # profiles start where the joint is
            self.torque[index] = enabled
            self._apply_gains()

    def set_profile_velocity(self, index: int, rad_s: float | None) -> None:
        with self._lock:
            self.rate_limit[index] = np.inf if not rad_s else float(rad_s)

    def set_dynamics(self, dynamics) -> None:
        with self._lock:
            self.dynamics = dynamics
            self._apply_gains()

    # ---- the real-time thread ----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._t0 = self.clock() - self.data.time
        self._thread = threading.Thread(target=self._run, name="virtual-bus-physics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.wake_s):
            self.advance_to(self.clock() - self._t0)

    def advance_to(self, sim_time_s: float) -> None:
        """Step until the model's clock reaches ``sim_time_s`` (dropping time beyond ``max_lag_s``)."""
        with self._lock:
            behind = sim_time_s - self.data.time
            if behind > self.max_lag_s:
                self.lag_events += 1
                self._t0 += behind - self.max_lag_s
                behind = self.max_lag_s
            steps = int(math.floor(behind / self.dt + 1e-9))
            if steps and not self._pending and np.isinf(self.rate_limit).all():
                self.trajectory = self.goal.copy()  # nothing changes within the batch: one call
                self.data.ctrl[self._act] = self.trajectory
                self._mujoco.mj_step(self.model, self.data, nstep=steps)
            else:
                for _ in range(steps):
                    self._step()
            if steps:
                self._snapshot = self._take_snapshot()

    def _step(self) -> None:
        now = self.data.time
        while self._pending and self._pending[0][0] <= now + 0.5 * self.dt:
            _, index, value = self._pending.popleft()
            self.goal[index] = value
        delta = self.goal - self.trajectory
        limit = self.rate_limit * self.dt
        self.trajectory = self.trajectory + np.clip(delta, -limit, limit)
        self.data.ctrl[self._act] = self.trajectory
        self._mujoco.mj_step(self.model, self.data)

    def _take_snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            self.data.qpos[self._qpos].copy(),
            self.data.qvel[self._qvel].copy(),
            self.data.actuator_force[self._act].copy(),
        )

    def _apply_gains(self) -> None:
        """Nominal gains scaled by the dynamics, then zero stiffness on joints with torque off."""
        self._applier.apply(self.dynamics)
        off = self._act[~self.torque]
        self.model.actuator_gainprm[off, 0] = 0.0
        self.model.actuator_biasprm[off, 1:3] = 0.0
