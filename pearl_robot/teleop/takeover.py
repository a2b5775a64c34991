"""TakeoverRobot: a person takes the arm over from the policy, and hands it back.

It sits between the env and the SafeRobot (a Robot like every wrapper, so nothing above it changes):
while the operator has the arm, every target the env writes is replaced by the operator's, and that goes
through the same SafeRobot (joint limits, step cap, watchdog, e-stop), never around it. Rules:

- take-over starts from the last target sent: the arm holds until the operator jogs;
- the operator's target stays within one step cap of the measured position (arm joints): holding a jog
  key against a lagging or blocked arm does not wind the target up, so releasing it moves nothing;
- hand-back starts from where the arm is: while the last target is more than a step cap from the measured
  position, the arm is first held where it is (still the operator's steps); then the policy's next target
  is its increment applied to the measured position, capped at one step from it. So the first target the
  policy commands after a hand-back is within the step cap of the measured position: no jump;
- a stop from the device (its stop key, a gamepad unplugged) hands control back to the caller's safe stop.

``intervened`` says whether the last write was the operator's: the session marks that step."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import numpy as np

from pearl_robot.control.loop import RateLoop
from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.base import Lifecycle, Robot, RobotState, RobotWrapper
from pearl_robot.teleop.jog import Jogger
from pearl_robot.teleop.source import TeleopEvent, TeleopSource


class Control(enum.Enum):
    POLICY = "policy"
    OPERATOR = "operator"
    HANDING_BACK = "handing back"


def _safe_layer(robot: Robot) -> Robot | None:
    from pearl_robot.robot.safety import SafeRobot

    while robot is not None:
        if isinstance(robot, SafeRobot):
            return robot
        robot = getattr(robot, "inner", None)
    return None


class TakeoverRobot(RobotWrapper):
    def __init__(
        self,
        inner: Robot,
        source: TeleopSource,
        *,
        reset_jog: bool = False,
        say: Callable[[str], None] | None = None,
    ) -> None:
        """``reset_jog``: between episodes the operator jogs the arm until they hand it back
        (``before_episode``); ``say``: one line to the operator at each change of control."""
        safe = _safe_layer(inner)
        if safe is None:
            raise PearlRobotError("teleoperation drives the arm through its SafeRobot layer; this robot has none")
        super().__init__(inner)
        self.source = source
        self.jogger = Jogger(inner.spec)
        self.reset_jog = reset_jog
        self.say = say or (lambda line: None)
        self.arm = inner.spec.arm_joint_indices
        self.step_cap = np.asarray(safe.step_cap, dtype=float)
        self.control = Control.POLICY
        self.stop_reason: str | None = None
        self.intervened = False
        self.takeovers = 0
        self._target: np.ndarray | None = None  # the operator's
        self._last_sent: np.ndarray | None = None
        self._position: np.ndarray | None = None  # the last measured

    def __getattr__(self, name: str) -> Any:
        """The safety layer's counters and state (``events``, ``estopped``, ...) read through this wrapper."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # ---- the operator's input -----------------------------------------------------------------
    def poll(self) -> None:
        """Read the device once; call once per control step, before the step's write."""
        command = self.source.poll()
        if command is None:
            return
        for event in command.events:
            self._on_event(event)
        if self.control is Control.OPERATOR and command.moves:
            self._target = self.jogger.apply(self._operator_target(), command)

    def _on_event(self, event: TeleopEvent) -> None:
        if event is TeleopEvent.STOP:
            detail = getattr(self.source, "stop_detail", "") or "stop key"
            self.stop_reason = f"teleop stop ({self.source.name}: {detail})"
            self.control = Control.POLICY  # the session's safe stop holds the arm where it is
            return
        operator = self.control is Control.OPERATOR
        if event is TeleopEvent.TAKE_OVER or (event is TeleopEvent.TOGGLE and not operator):
            self.take_over()
        elif event is TeleopEvent.HAND_BACK or (event is TeleopEvent.TOGGLE and operator):
            self.hand_back()

    def take_over(self) -> None:
        if self.control is not Control.OPERATOR:
            self.control = Control.OPERATOR
            self._target = None  # from the last target sent, at the next write
            self.takeovers += 1
            self.say(f"teleop: the operator ({self.source.name}) has the arm")

    def hand_back(self) -> None:
        if self.control is Control.OPERATOR:
            self.control = Control.HANDING_BACK
            self.say("teleop: handing the arm back to the policy, from where it is")

    def release(self) -> None:
        """End any take-over now (before a reset: the reset's motion is the env's, not the operator's)."""
        self.control = Control.POLICY
        self.intervened = False

    # ---- Robot ----------------------------------------------------------------------------------
    def enable(self) -> None:
        self.inner.enable()
        self._last_sent = self._position = self._target = None

    def disable(self) -> None:
        self.release()
        self.inner.disable()
        self._last_sent = None

    def read(self) -> RobotState:
        state = self.inner.read()
        self._position = np.asarray(state.position, dtype=float).copy()
        return state

    def teleport(self, position: np.ndarray) -> None:
        self.inner.teleport(position)
        self._last_sent = np.asarray(position, dtype=float).copy()
        self._position = self._target = None

    def write(self, targets: np.ndarray) -> np.ndarray:
        if self.control is Control.POLICY or self.inner.lifecycle is not Lifecycle.ACTIVE:
            self.intervened = False
            return self._send(targets)
        position = self._measured()
        if self.control is Control.OPERATOR:
            self.intervened = True
            sent = self._send(self._leashed(self._operator_target(), position))
            self._target = np.asarray(sent, dtype=float).copy()
            return sent
        return self._hand_back_write(np.asarray(targets, dtype=float), position)

    def _hand_back_write(self, targets: np.ndarray, position: np.ndarray) -> np.ndarray:
        arm, last = self.arm, self._reference()
        if np.any(np.abs(last[arm] - position[arm]) > self.step_cap[arm]):
            hold = last.copy()  # the arm lags its target: bring the target to the arm first
            hold[arm] = position[arm]
            self.intervened = True
            return self._send(hold)
        goal = targets.copy()
        increment = targets[arm] - last[arm] if targets.shape == last.shape else 0.0
        goal[arm] = np.clip(position[arm] + increment, position[arm] - self.step_cap[arm],
                            position[arm] + self.step_cap[arm])  # fmt: skip
        self.control = Control.POLICY
        self.intervened = False
        self.say("teleop: the policy has the arm")
        return self._send(goal)

    # ---- between episodes ---------------------------------------------------------------------
    def before_episode(self, episode: int, first: bool, stop_requested: Callable[[], bool]) -> None:
        """End any take-over; with ``reset_jog``, before every episode but the first, let the operator jog
        the arm (through the SafeRobot, at the control rate) until they hand it back or stop."""
        self.release()
        if not self.reset_jog or first or self.inner.lifecycle is not Lifecycle.ACTIVE:
            return
        self.say(f"teleop: reset jog before episode {episode}: jog the arm, hand it back to start the episode")
        self.take_over()
        loop = RateLoop(self.spec.period_s, realtime=True)  # a person at the controls: paced on every backend
        loop.start()
        while self.control is Control.OPERATOR and not stop_requested() and self.stop_reason is None:
            self.poll()
            if self.control is not Control.OPERATOR or self.stop_reason is not None:
                break
            self.write(self._reference())  # replaced by the operator's target
            loop.wait()
            self.read()
        self.release()

    # ---- helpers --------------------------------------------------------------------------------
    def _send(self, targets: np.ndarray) -> np.ndarray:
        sent = self.inner.write(targets)
        self._last_sent = np.asarray(sent, dtype=float).copy()
        return sent

    def _measured(self) -> np.ndarray:
        if self._position is None:
            self.read()
        return self._position

    def _reference(self) -> np.ndarray:
        """The last target sent (the measured position before the first)."""
        return self._last_sent.copy() if self._last_sent is not None else self._measured().copy()

    def _operator_target(self) -> np.ndarray:
        if self._target is None:
            self._target = self._reference()
        return self._target

    def _leashed(self, target: np.ndarray, position: np.ndarray) -> np.ndarray:
        goal = np.asarray(target, dtype=float).copy()
        arm = self.arm
        goal[arm] = np.clip(goal[arm], position[arm] - self.step_cap[arm], position[arm] + self.step_cap[arm])
        return goal


def executed_action(env: Any, before: np.ndarray, sent: np.ndarray | None) -> np.ndarray | None:
    """The env action that commands what was sent, from the target before the step: what an operator's
    step did, in the policy's action space. None where the actions are not joint-target increments (a
    controller-parameter action space) or nothing was sent."""
    arm = env.arm
    if sent is None or getattr(env, "controller", None) is not None or env.action_space.shape != (len(arm),):
        return None
    increment = (np.asarray(sent, dtype=float) - np.asarray(before, dtype=float))[arm]
    return np.clip(increment / env.action_scale_rad, -1.0, 1.0)
