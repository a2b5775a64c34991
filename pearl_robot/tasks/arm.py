"""The arm families on the project's own robot stack: ``RobotEnv(open_robot(...), ReachTask)``, so a
policy trained here runs unchanged on hardware through the Robot interface.

- ``arm-reach``: the reach goal varies per task and is NOT observed (``ReachTask(goal_observed=False)``);
  the agent infers it from rewards. Goals from ``sample_reachable_goals``. Reward ``-distance``.
- ``arm-dynamics``: payload mass, joint damping, friction loss, actuator gain and control latency vary
  per task (``ArmDynamics`` applied with ``SimRobot.set_dynamics``) and are not observed; the reach goal
  is observed and drawn per episode from a fixed pool of reachable goals. Reward
  ``-distance - overshoot_cost * max(0, distance - previous distance)``: moving away from the goal
  (overshoot, oscillation) costs extra, which is what an aggressive policy causes on a laggy or weak arm.

Why task inference matters in arm-dynamics. The actions are increments of the servos' position targets,
which the policy does not observe; the arm follows its target through the servo's own lag, a payload
sag (gravity torque / gain), stiction and the control latency. How hard a policy may push toward the goal
depends on those hidden parameters: on a stiff arm with no latency a high feedback gain reaches and holds
the goal quickly, while on a weak, laggy arm the same gain overshoots and oscillates (the effect of an
action shows up only several steps later), and the overshoot term makes that costly. The default ranges
are wide on purpose (gain x 4^U(-1, 1), latency 0-0.3 s, payload 0-0.4 kg);
``tests/tasks/test_task_inference.py`` measures that a controller tuned per task clearly beats the best
single controller tuned for all tasks.

``center`` (or the ``dynamics`` of a ``calibration`` file) centres the ranges on fitted parameters:
multipliers multiply the centre's (per joint where it is per joint), payload and latency add to it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from pearl_robot.control.scripted import ScriptedReacher
from pearl_robot.envs.robot_env import RobotEnv
from pearl_robot.errors import ConfigError, PearlRobotError
from pearl_robot.robot.base import Robot
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.robot.registry import open_robot
from pearl_robot.robot.spec import RobotSpec, load_spec
from pearl_robot.tasks.arm_control import ControllerActions, tolerance_reward
from pearl_robot.tasks.base import Task, TaskFamily
from pearl_robot.tasks.reach import ReachTask, sample_reachable_goals


class _LastKinematics:
    """Forward kinematics that remembers its last answer: RobotEnv asks for the end effector of the same
    state twice per step (reward, then observation); the second call is free."""

    def __init__(self, kinematics: Any) -> None:
        self.inner = kinematics
        self._key: bytes | None = None
        self._ee: np.ndarray | None = None

    def end_effector(self, position_rad: np.ndarray) -> np.ndarray:
        key = np.asarray(position_rad, dtype=float).tobytes()
        if key != self._key:
            self._ee = self.inner.end_effector(position_rad)
            self._key = key
        return self._ee.copy()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ArmTaskEnv(RobotEnv):
    """RobotEnv plus what a task family needs.

    - ``set_goal`` / ``set_dynamics`` take effect at the next ``reset`` (a task never changes mid-episode);
    - ``goal_pool``: a new goal drawn from it at every reset (from the env's seeded generator);
    - ``overshoot_cost``: an extra reward term ``-overshoot_cost * max(0, distance - previous distance)``;
    - ``speed_cost``: an extra reward term ``-speed_cost * |arm joint velocity|``;
    - one forward-kinematics call per step instead of two.
    """

    def __init__(
        self,
        robot: Robot,
        task: ReachTask,
        *,
        goal_pool: np.ndarray | None = None,
        overshoot_cost: float = 0.0,
        speed_cost: float = 0.0,
        action_mode: str = "joint",
        residual_scale: float = 0.3,
        reward_mode: str = "distance",
        tolerance_m: tuple[float, float] = (0.01, 0.05),
        dynamics_features: Callable[[ArmDynamics], np.ndarray] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(robot, task, **kwargs)
        self.kinematics = _LastKinematics(self.kinematics)
        self.goal_pool = None if goal_pool is None else np.asarray(goal_pool, dtype=float)
        self.overshoot_cost = float(overshoot_cost)
        self.speed_cost = float(speed_cost)
        self.reward_mode = reward_mode
        self.tolerance_m = (float(tolerance_m[0]), float(tolerance_m[1]))
        self.controller: ControllerActions | None = None
        if action_mode == "controller":
            reacher = ScriptedReacher(self.kinematics, self.arm, self.action_scale_rad)
            self.controller = ControllerActions(reacher, residual_scale)
            self.action_space = gym.spaces.Box(-1.0, 1.0, (self.controller.size,), np.float32)
        self.dynamics_features = dynamics_features
        if dynamics_features is not None:  # the oracle's observation: the task's parameters appended
            n = len(dynamics_features(ArmDynamics()))
            space = self.observation_space
            self.observation_space = gym.spaces.Box(
                np.concatenate([space.low, np.full(n, -10.0)]).astype(np.float32),
                np.concatenate([space.high, np.full(n, 10.0)]).astype(np.float32),
                dtype=np.float32,
            )
        self._last_distance = 0.0
        self._pending_goal: np.ndarray | None = None
        self._pending_dynamics: ArmDynamics | None = None

    def set_goal(self, goal: Any) -> None:
        self._pending_goal = np.asarray(goal, dtype=float).reshape(3)

    def set_dynamics(self, dynamics: ArmDynamics) -> None:
        backend = self.robot.unwrapped()
        if not hasattr(backend, "set_dynamics"):
            raise PearlRobotError(
                f"{type(backend).__name__} has real dynamics that cannot be set; arm-dynamics tasks apply to "
                "simulated arms only (on hardware the arm itself is the task)"
            )
        self._pending_dynamics = dynamics

    @property
    def dynamics(self) -> ArmDynamics | None:
        return getattr(self.robot.unwrapped(), "dynamics", None)

    def _observation(self, state) -> np.ndarray:
        obs = super()._observation(state)
        if self.dynamics_features is None:
            return obs
        features = self.dynamics_features(self.dynamics or ArmDynamics())
        return np.concatenate([obs, features]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            gym.Env.reset(self, seed=seed)  # seed np_random before the goal is drawn
        if self._pending_dynamics is not None:
            self.robot.unwrapped().set_dynamics(self._pending_dynamics)
            self._pending_dynamics = None
        goal = None
        if self.goal_pool is not None:
            goal = self.goal_pool[int(self.np_random.integers(len(self.goal_pool)))]
        elif self._pending_goal is not None:
            goal = self._pending_goal
            self._pending_goal = None
        if goal is not None:
            self.task = dataclasses.replace(self.task, goal=np.array(goal, dtype=float))
        obs, info = super().reset(options=options)
        ee = self.kinematics.end_effector(self.last_state.position)
        self._last_distance = float(np.linalg.norm(ee - self.task.goal))
        return obs, info

    def step(self, action):
        controller_info = {}
        if self.controller is not None:
            action = np.asarray(action, dtype=float)
            if action.shape == (self.controller.size,) and np.all(np.isfinite(action)):
                action, gain, blend = self.controller.joint_action(
                    action, self.last_state.position, self._target, self.task.goal
                )
                controller_info = {"controller_gain": gain, "controller_blend": blend}
            else:
                action = np.full(len(self.arm), np.nan)  # RobotEnv holds position on a bad action
        obs, reward, terminated, truncated, info = super().step(action)
        info.update(controller_info)
        distance = info["distance_m"]
        if self.reward_mode == "tolerance":
            reward = tolerance_reward(distance, *self.tolerance_m)
        if self.overshoot_cost:
            away = max(0.0, distance - self._last_distance)
            reward -= self.overshoot_cost * away
            info["moved_away_m"] = away
        self._last_distance = distance
        if self.speed_cost:
            speed = float(np.linalg.norm(self.last_state.velocity[self.arm]))
            reward -= self.speed_cost * speed
            info["speed_rad_s"] = speed
        return obs, reward, terminated, truncated, info


# ---- families ---------------------------------------------------------------------------------


class _ArmFamily(TaskFamily):
    max_path_length = 50  # 2.5 s at 20 Hz

    def __init__(
        self,
        hardware: str | os.PathLike[str] | RobotSpec | None = None,
        calibration: str | os.PathLike[str] | None = None,
        robot: str = "sim",
        safe: bool | None = None,
        **counts: Any,
    ) -> None:
        """``robot``: the backend name for ``open_robot`` (``sim`` to train; a hardware name runs the
        same env on the real arm, with ``calibration`` passed to it).

        ``safe``: wrap the robot in SafeRobot. Default: on every backend but ``sim``, where it changes
        nothing (RobotEnv already clamps targets to the joint limits and to the same per-step cap) and
        costs about a fifth of a simulated step."""
        super().__init__(**counts)
        self.hardware = hardware
        self.calibration = None if calibration is None else str(calibration)
        self.robot = robot
        self.safe = robot != "sim" if safe is None else bool(safe)
        self.spec = load_spec(hardware)
        self._calibrated_dynamics: ArmDynamics | None = None
        if self.calibration is not None:
            from pearl_robot.calibrate.model import load_calibration

            loaded = load_calibration(self.calibration)
            if loaded.robot_id != self.spec.robot_id:
                raise ConfigError(
                    self.calibration,
                    "robot_id",
                    f"is '{loaded.robot_id}', the hardware file says '{self.spec.robot_id}': a calibration of "
                    "another arm",
                )
            self._calibrated_dynamics = loaded.dynamics

    def open_robot(self) -> Robot:
        calibration = None if self.robot == "sim" else self.calibration
        return open_robot(self.robot, self.spec, calibration=calibration, safe=self.safe)

    def _reach_task(self, goal: np.ndarray, goal_observed: bool) -> ReachTask:
        return ReachTask(goal=np.asarray(goal, dtype=float), horizon=self.max_path_length, goal_observed=goal_observed)


class ArmReachFamily(_ArmFamily):
    """Reach a hidden goal (inferred from rewards); 80 train / 20 test goals; 50 steps per path.

    The arm's dynamics are nominal, or a calibration file's fitted ones (``calibration``)."""

    name = "arm-reach"
    num_train_tasks = 80
    num_test_tasks = 20

    def __init__(self, goal_margin: float = 0.3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.goal_margin = float(goal_margin)

    def make_env(self, seed: int | None = None, robot: Robot | None = None, **env_options: Any) -> ArmTaskEnv:
        """``robot``/``env_options`` (``loop``, ``dry_run``, ...): the adaptation session's env on a given
        robot, returned before its first reset (which enables the robot)."""
        default_goal = sample_reachable_goals(self.spec, 1, np.random.default_rng(0), margin=self.goal_margin)[0]
        env = ArmTaskEnv(robot or self.open_robot(), self._reach_task(default_goal, goal_observed=False), **env_options)
        if self._calibrated_dynamics is not None and self.robot == "sim":
            env.set_dynamics(self._calibrated_dynamics)
        if robot is None:
            env.reset(seed=seed)
        return env

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        goals = sample_reachable_goals(self.spec, n, rng, margin=self.goal_margin)
        return [Task(self.name, i, {"goal": [float(v) for v in g]}) for i, g in enumerate(goals)]

    def apply(self, env: gym.Env, task: Task) -> None:
        env.unwrapped.set_goal(task.params["goal"])


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, size: int | None) -> Any:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def _times(center: tuple[float, ...] | float, factor: Any) -> tuple[float, ...] | float:
    product = np.asarray(center, dtype=float) * np.asarray(factor, dtype=float)
    return float(product) if product.ndim == 0 else tuple(float(v) for v in product)


class ArmDynamicsFamily(_ArmFamily):
    """Reach an observed goal on an arm whose dynamics vary per task and are not observed.

    Per task, relative to ``center`` (default nominal; or a calibration file's fitted dynamics):
    gain_scale x log-U(gain_range), damping_scale x log-U(damping_range), frictionloss_scale x
    log-U(frictionloss_range) (one factor for all joints, or one per joint with ``per_joint=True``),
    payload_mass_kg + U(payload_range_kg), latency_s + U(latency_range_s). 40 train / 10 test tasks;
    50 steps per path; a new goal from a pool of ``goal_pool_size`` reachable goals at every reset.
    """

    name = "arm-dynamics"
    num_train_tasks = 40
    num_test_tasks = 10

    def __init__(
        self,
        center: dict[str, Any] | None = None,
        gain_range: tuple[float, float] = (0.25, 4.0),
        damping_range: tuple[float, float] = (0.5, 2.0),
        frictionloss_range: tuple[float, float] = (0.5, 3.0),
        payload_range_kg: tuple[float, float] = (0.0, 0.4),
        latency_range_s: tuple[float, float] = (0.0, 0.3),
        per_joint: bool = False,
        overshoot_cost: float = 10.0,
        speed_cost: float = 0.0,
        goal_margin: float = 0.3,
        goal_pool_size: int = 256,
        goal_pool_seed: int = 0,
        action_mode: str = "joint",
        residual_scale: float = 0.3,
        reward_mode: str = "distance",
        tolerance_m: tuple[float, float] = (0.01, 0.05),
        observe_dynamics: bool = False,
        **kwargs: Any,
    ) -> None:
        """``action_mode``: ``joint`` (target increments) or ``controller`` (the scripted controller's gain,
        blend and a residual: ``pearl_robot.tasks.arm_control``); ``reward_mode``: ``distance`` or
        ``tolerance`` (``tolerance_m``: bound and margin); ``observe_dynamics``: the task's parameters
        appended to the observation (an oracle's view, for baselines only)."""
        super().__init__(**kwargs)
        if action_mode not in ("joint", "controller"):
            raise ConfigError("<task family>", f"{self.name}.action_mode", f"joint or controller, got {action_mode!r}")
        if reward_mode not in ("distance", "tolerance"):
            raise ConfigError(
                "<task family>", f"{self.name}.reward_mode", f"distance or tolerance, got {reward_mode!r}"
            )
        bound, margin = _check_range(f"{self.name}.tolerance_m", tolerance_m)
        if margin <= 0:
            raise ConfigError("<task family>", f"{self.name}.tolerance_m", "the margin must be > 0")
        self.env_options = {
            "action_mode": action_mode,
            "residual_scale": float(residual_scale),
            "reward_mode": reward_mode,
            "tolerance_m": (bound, margin),
            "dynamics_features": dynamics_features if observe_dynamics else None,
        }
        if center is not None:
            try:
                self.center = ArmDynamics.from_dict(dict(center))
            except TypeError as exc:
                raise ConfigError("<task family>", "arm-dynamics.center", f"not ArmDynamics fields: {exc}") from None
        elif self.calibration is not None and self._calibrated_dynamics is None and self.robot == "sim":
            raise ConfigError(
                self.calibration,
                "dynamics",
                "no fitted dynamics to centre the family on; run `pearl-robot calibrate sysid --calibration "
                f"{self.calibration}` first",
            )
        else:
            self.center = self._calibrated_dynamics or ArmDynamics()
        self.ranges = {
            "gain": _check_range(f"{self.name}.gain_range", gain_range, positive=True),
            "damping": _check_range(f"{self.name}.damping_range", damping_range, positive=True),
            "frictionloss": _check_range(f"{self.name}.frictionloss_range", frictionloss_range, positive=True),
            "payload": _check_range(f"{self.name}.payload_range_kg", payload_range_kg),
            "latency": _check_range(f"{self.name}.latency_range_s", latency_range_s),
        }
        self.per_joint = bool(per_joint)
        self.overshoot_cost = float(overshoot_cost)
        self.speed_cost = float(speed_cost)
        self.goal_margin = float(goal_margin)
        self.goal_pool_size = int(goal_pool_size)
        self.goal_pool_seed = int(goal_pool_seed)
        self._goal_pool: np.ndarray | None = None

    def goal_pool(self) -> np.ndarray:
        if self._goal_pool is None:
            rng = np.random.default_rng(self.goal_pool_seed)
            self._goal_pool = sample_reachable_goals(self.spec, self.goal_pool_size, rng, margin=self.goal_margin)
        return self._goal_pool

    def make_env(self, seed: int | None = None, robot: Robot | None = None, **env_options: Any) -> ArmTaskEnv:
        """``robot``/``env_options`` (``loop``, ``dry_run``, ...): the adaptation session's env on a given
        robot, returned before its first reset (which enables the robot)."""
        pool = self.goal_pool()
        task = self._reach_task(pool[0], goal_observed=True)
        env = ArmTaskEnv(
            robot or self.open_robot(),
            task,
            goal_pool=pool,
            overshoot_cost=self.overshoot_cost,
            speed_cost=self.speed_cost,
            **self.env_options,
            **env_options,
        )
        if self.robot == "sim" and hasattr(env.robot.unwrapped(), "set_dynamics"):
            env.set_dynamics(self.center)
        if robot is None:
            env.reset(seed=seed)
        return env

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        joints = len(self.spec.joint_names) if self.per_joint else None
        c, r = self.center, self.ranges
        tasks = []
        for i in range(n):
            dynamics = dataclasses.replace(
                c,
                gain_scale=_times(c.gain_scale, _log_uniform(rng, *r["gain"], joints)),
                damping_scale=_times(c.damping_scale, _log_uniform(rng, *r["damping"], joints)),
                frictionloss_scale=_times(c.frictionloss_scale, _log_uniform(rng, *r["frictionloss"], joints)),
                payload_mass_kg=float(c.payload_mass_kg + rng.uniform(*r["payload"])),
                latency_s=float(c.latency_s + rng.uniform(*r["latency"])),
            )
            tasks.append(Task(self.name, i, dynamics.to_dict()))
        return tasks

    def apply(self, env: gym.Env, task: Task) -> None:
        env.unwrapped.set_dynamics(ArmDynamics.from_dict(task.params))


class ArmFleetFamily(ArmDynamicsFamily):
    """Reach an observed goal to within 1 cm on one arm of a lab's fleet: arms that differ in what makes
    one controller wrong for another.

    - ``remote`` arms (share ``remote_share``): driven through a robot server over a slow link, latency
      U(``remote_latency_s``) (0.3-0.6 s: a congested Wi-Fi or VPN hop), servo P gain x
      log-U(``remote_gain``), a light payload U(``remote_payload_kg``) (0-0.2 kg). An aggressive closed loop
      oscillates behind the delay; what pays is trusting the commands (blend 1) with a high gain.
    - ``loaded`` arms: weak servos (P gain x log-U(``loaded_gain``)) in current-based position mode with a
      Current Limit at log-U(``loaded_current_limit``) of the maximum, carrying U(``loaded_payload_kg``).
      The payload sags the arm below its commands and the limit caps its torque; what pays is closing the
      loop on the measured position (a low blend).
    - every arm: damping x log-U(0.7, 1.4), friction loss x log-U(0.5, 2).

    Reward: ``tolerance`` (0 within 1 cm, about -1 beyond 6 cm). Actions: ``controller`` (the scripted
    controller's gain, blend and a residual; ``pearl_robot.tasks.arm_control``). Neither the kind nor
    the parameters are observed. ``tests/tasks/test_task_inference.py`` measures what tuning a scripted
    controller per arm is worth here against the best single tuning (``adaptation_value``).
    """

    name = "arm-fleet"

    def __init__(
        self,
        remote_share: float = 0.5,
        remote_latency_s: tuple[float, float] = (0.3, 0.6),
        remote_gain: tuple[float, float] = (1.0, 4.0),
        remote_payload_kg: tuple[float, float] = (0.0, 0.2),
        loaded_gain: tuple[float, float] = (0.1, 0.3),
        loaded_payload_kg: tuple[float, float] = (0.2, 0.6),
        loaded_current_limit: tuple[float, float] = (0.4, 0.8),
        damping_range: tuple[float, float] = (0.7, 1.4),
        frictionloss_range: tuple[float, float] = (0.5, 2.0),
        overshoot_cost: float = 0.0,
        action_mode: str = "controller",
        reward_mode: str = "tolerance",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            damping_range=damping_range,
            frictionloss_range=frictionloss_range,
            overshoot_cost=overshoot_cost,
            action_mode=action_mode,
            reward_mode=reward_mode,
            **kwargs,
        )
        if not 0.0 <= float(remote_share) <= 1.0:
            raise ConfigError("<task family>", "arm-fleet.remote_share", f"must be in [0, 1], got {remote_share!r}")
        self.remote_share = float(remote_share)
        self.ranges.update(
            {
                "remote_latency": _check_range(f"{self.name}.remote_latency_s", remote_latency_s),
                "remote_gain": _check_range(f"{self.name}.remote_gain", remote_gain, positive=True),
                "remote_payload": _check_range(f"{self.name}.remote_payload_kg", remote_payload_kg),
                "loaded_gain": _check_range(f"{self.name}.loaded_gain", loaded_gain, positive=True),
                "loaded_payload": _check_range(f"{self.name}.loaded_payload_kg", loaded_payload_kg),
                "loaded_current_limit": _check_range(
                    f"{self.name}.loaded_current_limit", loaded_current_limit, positive=True
                ),
            }
        )

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        joints = len(self.spec.joint_names) if self.per_joint else None
        c, r = self.center, self.ranges
        tasks = []
        for i in range(n):
            remote = bool(rng.random() < self.remote_share)
            if remote:
                gain = _log_uniform(rng, *r["remote_gain"], joints)
                latency = rng.uniform(*r["remote_latency"])
                payload = rng.uniform(*r["remote_payload"])
                limit: Any = 1.0
            else:
                gain = _log_uniform(rng, *r["loaded_gain"], joints)
                latency = rng.uniform(0.0, 0.05)
                payload = rng.uniform(*r["loaded_payload"])
                limit = _log_uniform(rng, *r["loaded_current_limit"], joints)
            dynamics = dataclasses.replace(
                c,
                gain_scale=_times(c.gain_scale, gain),
                current_limit_scale=_times(c.current_limit_scale, limit),
                damping_scale=_times(c.damping_scale, _log_uniform(rng, *r["damping"], joints)),
                frictionloss_scale=_times(c.frictionloss_scale, _log_uniform(rng, *r["frictionloss"], joints)),
                payload_mass_kg=float(c.payload_mass_kg + payload),
                latency_s=float(c.latency_s + latency),
                extra={**c.extra, "kind": "remote" if remote else "loaded"},
            )
            tasks.append(Task(self.name, i, dynamics.to_dict()))
        return tasks


def dynamics_features(dynamics: ArmDynamics) -> np.ndarray:
    """The task's parameters as an oracle observes them, each scaled to about [-1, 1]: log actuator gain,
    latency / 0.3 s, payload / 0.5 kg, log current limit, log damping, log friction loss (joint means)."""

    def log_mean(value: Any) -> float:
        return float(np.mean(np.log(np.maximum(np.asarray(value, dtype=float), 1e-6))))

    return np.array(
        [
            log_mean(dynamics.gain_scale),
            dynamics.latency_s / 0.3,
            dynamics.payload_mass_kg / 0.5,
            log_mean(dynamics.current_limit_scale),
            log_mean(dynamics.damping_scale),
            log_mean(dynamics.frictionloss_scale),
        ]
    )


def _check_range(field: str, value: Any, positive: bool = False) -> tuple[float, float]:
    """``value`` as (low, high), or a ConfigError naming ``field`` (``family.parameter``)."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError("<task family>", field, f"expected [low, high], got {value!r}") from None
    bad_low = lo <= 0 if positive else lo < 0
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi) or bad_low:
        bound = "0 < low <= high" if positive else "0 <= low <= high"
        raise ConfigError("<task family>", field, f"expected {bound}, got {value!r}")
    return lo, hi
