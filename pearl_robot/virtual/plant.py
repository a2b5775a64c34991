"""What the virtual servos move: joint angles at the output shaft, in radians.

``MujocoPlant`` is the arm of ``SimRobot`` (the same MJCF through ``sim.load_model``, perturbed by the
same ``ArmDynamics``) integrated in real time by a thread: each wake-up steps the model until its
clock catches up with the wall clock, then publishes a snapshot that the bus reads without waiting.
Its servos are the MJCF's XM430-W350 model (docs/servo_model.md): a ~50 ms lag, the stall torque and
a top speed from the motor's back-EMF, as identified on real servos; ``IdealPlant`` is the option.
Torque is per joint, as on a servo chain: a joint with torque off has no actuator stiffness and
hangs on gravity, friction and the joint damping. ``IdealPlant`` has no physics: joints jump to their goals. It keeps
protocol tests fast and lets a test place joints exactly.

``Hand`` is the operator's hand on the arm (``VirtualServoBus.hand``): with torque off a real arm is
moved and held by a person during calibration; here ``hand.hold(joint, position)`` takes a joint,
moves it to a true joint angle (at a hand's speed) and holds it there against gravity, the actuators
and the other joints (kinematically: its position and velocity are imposed after every physics
step), until ``hand.release(joint)``.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from pearl_robot.control.realtime import set_realtime_priority


class Plant(Protocol):
    def joint_state(self, index: int) -> tuple[float, float, float]:
        """(position rad, velocity rad/s, actuator effort N*m) of one joint."""
        ...

    def set_goal(self, index: int, position_rad: float) -> None: ...

    def set_torque(self, index: int, enabled: bool) -> None: ...

    def set_profile_velocity(self, index: int, rad_s: float | None) -> None:
        """Limit how fast the goal trajectory moves (None: step to the goal)."""
        ...

    def hold(self, index: int, position_rad: float, speed_rad_s: float | None = None) -> None:
        """The operator's hand takes a joint to ``position_rad`` and holds it there (see ``Hand``)."""
        ...

    def release(self, index: int) -> None: ...

    def hand_settled(self) -> bool: ...

    def start(self, realtime_priority: int | None = None) -> None:
        """Start its thread, if it has one (at SCHED_FIFO ``realtime_priority`` where permitted)."""
        ...

    def stop(self) -> None: ...


class IdealPlant:
    """Joints at their goals while torque is on; where they were left while it is off."""

    def __init__(self, positions: Sequence[float]) -> None:
        self.position = np.array(positions, dtype=float)
        self.goal = self.position.copy()
        self.torque = np.zeros(len(self.position), dtype=bool)
        self.held = np.zeros(len(self.position), dtype=bool)
        self._lock = threading.Lock()

    def joint_state(self, index: int) -> tuple[float, float, float]:
        with self._lock:
            return float(self.position[index]), 0.0, 0.0

    def set_goal(self, index: int, position_rad: float) -> None:
        with self._lock:
            self.goal[index] = position_rad
            if self.torque[index] and not self.held[index]:
                self.position[index] = position_rad

    def set_torque(self, index: int, enabled: bool) -> None:
        with self._lock:
            self.torque[index] = enabled
            if enabled and not self.held[index]:
                self.position[index] = self.goal[index]

    def set_profile_velocity(self, index: int, rad_s: float | None) -> None:
        pass

    def set_position(self, index: int, position_rad: float) -> None:
        """Move a joint by hand (tests): the arm is where the test says."""
        with self._lock:
            self.position[index] = position_rad

    # the Hand's interface: no physics, so a hand places a joint at once and the servo cannot move it
    def hold(self, index: int, position_rad: float, speed_rad_s: float | None = None) -> None:
        with self._lock:
            self.held[index] = True
            self.position[index] = position_rad

    def release(self, index: int) -> None:
        with self._lock:
            self.held[index] = False

    def hand_settled(self) -> bool:
        return True

    def start(self, realtime_priority: int | None = None) -> None:
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
        self.realtime_granted = False
        self._lock = threading.Lock()
        # the operator's hand: per joint, held or not, where the hand is, where it goes, how fast
        self._held = np.zeros(n, dtype=bool)
        self._hand_position = np.zeros(n)
        self._hand_target = np.zeros(n)
        self._hand_speed = np.full(n, np.inf)
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

    # ---- the operator's hand (any thread) -------------------------------------------------------
    def hold(self, index: int, position_rad: float, speed_rad_s: float | None = None) -> None:
        """Take joint ``index`` and move it to ``position_rad`` at ``speed_rad_s`` (None: put it there
        at once), then hold it there until ``release``."""
        if speed_rad_s is not None and not speed_rad_s > 0:
            raise ValueError(f"speed_rad_s must be > 0, got {speed_rad_s}")
        with self._lock:
            if not self._held[index]:
                self._hand_position[index] = self.data.qpos[self._qpos[index]]
                self._held[index] = True
            self._hand_target[index] = float(position_rad)
            self._hand_speed[index] = np.inf if speed_rad_s is None else float(speed_rad_s)
            if speed_rad_s is None:
                self._apply_hand(0.0)
                self._snapshot = self._take_snapshot()

    def release(self, index: int) -> None:
        """Let go of joint ``index``: from now on only the physics moves it."""
        with self._lock:
            self._held[index] = False

    def hand_settled(self) -> bool:
        """Every held joint is where the hand was told to put it."""
        with self._lock:
            return bool(np.all(self._hand_position[self._held] == self._hand_target[self._held]))

    def _apply_hand(self, dt: float) -> None:
        """Impose the held joints' position and velocity (after a physics step of ``dt``)."""
        held = np.flatnonzero(self._held)
        if not len(held):
            return
        delta = self._hand_target[held] - self._hand_position[held]
        reach = self._hand_speed[held] * dt if dt > 0 else np.full(len(held), np.inf)  # inf speed: at once
        step = np.clip(delta, -reach, reach)
        arrived = np.abs(delta) <= reach
        new = np.where(arrived, self._hand_target[held], self._hand_position[held] + step)
        velocity = np.where(arrived, 0.0, step / dt) if dt > 0 else np.zeros(len(held))
        self._hand_position[held] = new
        self.data.qpos[self._qpos[held]] = new
        self.data.qvel[self._qvel[held]] = velocity

    # ---- the real-time thread ----------------------------------------------------------------
    def start(self, realtime_priority: int | None = None) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._t0 = self.clock() - self.data.time
        self._thread = threading.Thread(
            target=self._run, args=(realtime_priority,), name="virtual-bus-physics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _run(self, realtime_priority: int | None) -> None:
        # at real-time priority beside a real-time serving thread: a physics step preempted by ordinary
        # work while it holds the plant's lock would hold up the servos' answers (priority inversion)
        self.realtime_granted = realtime_priority is not None and set_realtime_priority(realtime_priority)
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
            if steps and not self._pending and np.isinf(self.rate_limit).all() and not self._held.any():
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
        self._apply_hand(self.dt)

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


class Hand:
    """The operator's hand on a plant's joints (true joint angles, radians; joints by index).

    ``hold(joint, position, speed_rad_s)`` moves a joint there at a hand's pace and holds it;
    ``pose(positions)`` does it for every joint; ``release()`` lets go (of one joint or all);
    ``wait()`` returns once every held joint has arrived."""

    def __init__(self, plant: Plant, num_joints: int) -> None:
        self.plant = plant
        self.num_joints = num_joints
        self.holding: set[int] = set()

    def hold(self, joint: int, position_rad: float, speed_rad_s: float | None = 1.0) -> None:
        if not 0 <= joint < self.num_joints:
            raise IndexError(f"no joint {joint} (the arm has {self.num_joints})")
        self.plant.hold(joint, position_rad, speed_rad_s)
        self.holding.add(joint)

    def pose(self, positions: Sequence[float], speed_rad_s: float | None = 1.0) -> None:
        if len(positions) != self.num_joints:
            raise ValueError(f"expected {self.num_joints} joint angles, got {len(positions)}")
        for joint, position in enumerate(positions):
            self.hold(joint, float(position), speed_rad_s)

    def release(self, joint: int | None = None) -> None:
        for index in sorted(self.holding) if joint is None else [joint]:
            self.plant.release(index)
            self.holding.discard(index)

    def wait(self, timeout_s: float = 10.0, poll_s: float = 0.005) -> bool:
        """True once every held joint is where the hand was told to put it (False after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while not self.plant.hand_settled():
            if time.monotonic() > deadline:
                return False
            time.sleep(poll_s)
        return True
