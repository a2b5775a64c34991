"""Joint calibration with torque off: the calibration pose gives each joint's offset, a small move in
the positive direction gives its direction, a sweep through the full range gives its range.

The procedure only reads the robot (raw angles, torque off) and talks to the operator through a small
``Operator`` object, so the CLI owns the prompts (never ``input()`` in library code). Without an
operator to confirm (non-interactive), each step ends by itself: the pose is taken as soon as the arm
is at rest (so it must be in the pose when the procedure starts: a scripted setup), a direction step
ends once the joint has moved past a threshold and come to rest, and the range sweep lasts a fixed time.

Rest and motion. Encoders jitter by a few ticks, a hand trembles, gears have backlash: at 20 Hz one tick
between two samples is already 0.03 rad/s, so single-sample differences say nothing. ``RestDetector``
judges the latest ``rest_time_s`` of samples: the arm is at rest when, on every joint, the least-squares
slope over that window is below ``rest_speed_rad_s`` and the samples scatter about that line by less than
``rest_spread_rad`` (RMS; a swinging joint can have a flat slope). A joint has moved once the median of
its last three samples lies more than ``move_threshold_rad`` from where the step began, far beyond noise.

Cues. On an arm with servo LEDs (``led_indicator``: the Dynamixel LED, address 65, is RAM and writable
with torque off) the procedure shows which step it is on, so the operator need not watch the terminal,
and a scripted hand in another process (``pearl-robot virtual-bus --operator``) can follow it:

- all LEDs lit: put the arm in its calibration pose and hold it (the first step, and after each move);
- one LED lit: move that joint in its positive direction, past the threshold, and hold it there;
- all LEDs blinking (off, then on, every ``blink_s``): move every joint through its full range;
- all LEDs off: nothing to do (before the first step, after the last).

An arm without servo LEDs (Feetech STS) shows the same cues in a cue file (``CueFile``, ``calibrate
joints --cue-file PATH``): JSON ``{"lit": [joint indices]}``, replaced atomically at each change, for a
second screen, a lab's own indicator, or the scripted hand (``virtual-bus --operator --operator-cues PATH``).

The steps always come in this order: the pose, then for each joint in the hardware file's order its
move and its way back to the pose, then the range sweep.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from pearl_robot.calibrate.model import Calibration, JointCalibration
from pearl_robot.errors import ConfigError, PearlRobotError
from pearl_robot.robot.base import Robot
from pearl_robot.robot.spec import RobotSpec


class CalibrationError(PearlRobotError):
    """The operator's moves did not give a usable calibration (a joint that never moved, a tiny range...)."""


class Operator(Protocol):
    def instruct(self, message: str) -> Callable[[], bool] | None:
        """Show ``message``; return a poll that turns True once the operator confirms, or None when no
        one will confirm (non-interactive: the step ends by itself)."""


class Indicator(Protocol):
    def show(self, joints: Collection[int]) -> None:
        """Light the cue of ``joints`` (indices in the spec's joint order), every other one off."""


@dataclass
class JointCalibrationSettings:
    """The defaults work on encoders with 2-3 ticks (3-5 mrad) of noise at 20 Hz, under a trembling hand."""

    move_threshold_rad: float = 0.15  # a direction move must exceed this (about 100 ticks: beyond any noise)
    rest_time_s: float = 0.5  # the rest test judges this much of the latest samples (10 at 20 Hz)
    rest_speed_rad_s: float = 0.05  # at rest: least-squares slope below this (5 std of it under 3-tick noise)
    rest_spread_rad: float = 0.01  # at rest: RMS scatter about that line below this (6.5 ticks: 2x a 3-tick noise)
    step_timeout_s: float = 30.0
    range_sweep_s: float = 10.0
    min_range_rad: float = 0.3
    samples_for_pose: int = 60  # averaged for the offsets: 3 s at 20 Hz, 0.4 tick std under 3-tick noise
    blink_s: float = 0.25  # the LEDs' half period during the range sweep


class RestDetector:
    """The latest ``rest_time_s`` of position samples and what they say (see the module docstring)."""

    def __init__(self, settings: JointCalibrationSettings) -> None:
        self.settings = settings
        self._times: deque[float] = deque()
        self._positions: deque[np.ndarray] = deque()

    def add(self, t: float, position: np.ndarray) -> None:
        """One sample at time ``t`` (s); the window keeps the fewest latest samples spanning ``rest_time_s``."""
        self._times.append(float(t))
        self._positions.append(np.asarray(position, dtype=float))
        while len(self._times) > 2 and self._times[-1] - self._times[1] >= self.settings.rest_time_s:
            self._times.popleft()
            self._positions.popleft()

    def at_rest(self) -> bool:
        s = self.settings
        if len(self._times) < 3 or self._times[-1] - self._times[0] < s.rest_time_s:
            return False
        t = np.array(self._times)
        t -= t.mean()
        q = np.array(self._positions)
        q -= q.mean(axis=0)
        slope = t @ q / (t @ t)
        scatter = np.sqrt(np.mean((q - np.outer(t, slope)) ** 2, axis=0))
        return bool(np.all(np.abs(slope) <= s.rest_speed_rad_s) and np.all(scatter <= s.rest_spread_rad))

    def position(self) -> np.ndarray:
        """Where the arm is over the window (its mean)."""
        return np.mean(self._positions, axis=0)

    def latest(self) -> np.ndarray:
        """Where the arm is now: the median of the last three samples (one wild sample is not a move)."""
        return np.median(list(self._positions)[-3:], axis=0)


class ServoLeds:
    """The LEDs of a Dynamixel arm (a connected ``SerialRobot``) as the procedure's cue: one SYNC WRITE
    (no reply) per change."""

    def __init__(self, robot: Robot) -> None:
        self.robot = robot
        self._lit: frozenset[int] | None = None

    def show(self, joints: Collection[int]) -> None:
        lit = frozenset(joints)
        if lit == self._lit:
            return
        address = self.robot.tables[0]["led"].address  # the same address on every X-series model
        self.robot.bus.sync_write(address, 1, {i: bytes((k in lit,)) for k, i in enumerate(self.robot.ids)})
        self._lit = lit


class CueFile:
    """The cues as a file (see the module docstring): what an arm without servo LEDs shows them on."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lit: frozenset[int] | None = None

    def show(self, joints: Collection[int]) -> None:
        lit = frozenset(int(k) for k in joints)
        if lit == self._lit:
            return
        partial = self.path.with_name(f".{self.path.name}.partial")
        partial.write_text(json.dumps({"lit": sorted(lit)}))
        os.replace(partial, self.path)  # a reader sees the old cue or the new one, never half of one
        self._lit = lit


def read_cue_file(path: str | os.PathLike[str]) -> frozenset[int] | None:
    """The joints a cue file lights; None where there is none yet (or it cannot be read)."""
    try:
        return frozenset(int(k) for k in json.loads(Path(path).read_text())["lit"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def led_indicator(robot: Robot) -> ServoLeds | None:
    """The servo LEDs of ``robot`` (or of the backend it wraps), None where it has none (mock, sim)."""
    backend = robot.unwrapped()
    tables = getattr(backend, "tables", None)
    if not tables or not hasattr(backend, "bus") or not all("led" in table for table in tables):
        return None
    return ServoLeds(backend)


def parse_pose(text: str | None, spec: RobotSpec, option: str = "--pose") -> np.ndarray:
    """Comma-separated radians, one per joint (None: every joint at 0)."""
    if text is None:
        return np.zeros(spec.num_joints)
    try:
        pose = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise ConfigError(option, "<value>", f"expected comma-separated radians, got {text!r}") from None
    if pose.shape != (spec.num_joints,) or not np.all(np.isfinite(pose)):
        raise ConfigError(option, "<value>", f"expected {spec.num_joints} finite angles (one per joint), got {text!r}")
    outside = [n for n, p, j in zip(spec.joint_names, pose, spec.joints) if not j.min_rad <= p <= j.max_rad]
    if outside:
        raise ConfigError(option, "<value>", f"outside the hardware limits: {', '.join(outside)}")
    return pose


class JointCalibrationProcedure:
    def __init__(
        self,
        robot: Robot,
        spec: RobotSpec,
        operator: Operator,
        settings: JointCalibrationSettings | None = None,
        calibration_pose_rad: np.ndarray | None = None,
        indicator: Indicator | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``robot`` is a connected raw backend (torque off); ``spec`` the arm's hardware spec;
        ``indicator`` shows each step's cue (``led_indicator(robot)``), if any."""
        self.robot = robot
        self.spec = spec
        self.operator = operator
        self.settings = settings or JointCalibrationSettings()
        self.pose = np.zeros(spec.num_joints) if calibration_pose_rad is None else np.asarray(calibration_pose_rad)
        self.indicator = indicator
        self.clock = clock
        self.period_s = spec.period_s

    def _show(self, joints: Collection[int]) -> None:
        if self.indicator is not None:
            self.indicator.show(joints)

    def _sample(self) -> np.ndarray:
        position = self.robot.read().position
        time.sleep(self.period_s)
        return position

    def _wait(
        self,
        done: Callable[[], bool] | None,
        finished: Callable[[RestDetector], bool],
        timeout_s: float,
        on_sample: Callable[[RestDetector], None] | None = None,
    ) -> RestDetector:
        """Sample until the operator confirms (``done``) or, without one, until ``finished``."""
        window = RestDetector(self.settings)
        deadline = self.clock() + timeout_s
        while True:
            position = self.robot.read().position
            window.add(self.clock(), position)
            if on_sample is not None:
                on_sample(window)
            if done() if done is not None else finished(window):
                return window
            if self.clock() > deadline:
                raise CalibrationError(f"timed out after {timeout_s:.0f} s waiting for the operator")
            time.sleep(self.period_s)

    def _moved_then_rested(self, reference: np.ndarray, joint: int) -> Callable[[RestDetector], bool]:
        threshold, moved = self.settings.move_threshold_rad, False

        def finished(window: RestDetector) -> bool:
            nonlocal moved
            moved = moved or abs(window.latest()[joint] - reference[joint]) > threshold
            return moved and window.at_rest()

        return finished

    def run(self) -> Calibration:
        try:
            calibration = self._run()
        except BaseException:
            with contextlib.suppress(Exception):  # the arm's own error matters, not a failed LED write
                self._show(())
            raise
        self._show(())
        return calibration

    def _run(self) -> Calibration:
        spec, s = self.spec, self.settings
        every = range(spec.num_joints)
        names = ", ".join(f"{n}={p:+.2f}" for n, p in zip(spec.joint_names, self.pose))
        self._show(every)
        done = self.operator.instruct(f"Torque is off. Put the arm in its calibration pose ({names} rad) and hold it.")
        self._wait(done, RestDetector.at_rest, s.step_timeout_s)  # a swinging arm is not in its pose
        raw_pose = np.mean([self._sample() for _ in range(s.samples_for_pose)], axis=0)

        directions = np.ones(spec.num_joints, dtype=int)
        here = raw_pose
        for joint, name in enumerate(spec.joint_names):
            self._show([joint])
            done = self.operator.instruct(
                f"Move {name} by more than {np.degrees(s.move_threshold_rad):.0f} deg in its POSITIVE direction "
                "and hold it there."
            )
            moved = self._wait(done, self._moved_then_rested(here, joint), s.step_timeout_s).position()
            delta = moved[joint] - here[joint]
            if abs(delta) < s.move_threshold_rad / 2:
                raise CalibrationError(f"{name} moved only {delta:+.3f} rad; move it further and run again")
            directions[joint] = 1 if delta > 0 else -1
            self._show(every)
            done = self.operator.instruct(f"Put {name} back in its calibration pose.")
            here = self._wait(done, self._moved_then_rested(moved, joint), s.step_timeout_s).position()

        lows, highs = raw_pose.copy(), raw_pose.copy()
        sweep_start = self.clock()

        def track(window: RestDetector) -> None:
            latest = window.latest()
            np.minimum(lows, latest, out=lows)
            np.maximum(highs, latest, out=highs)
            self._show(every if int((self.clock() - sweep_start) / s.blink_s) % 2 else ())

        self._show(())
        done = self.operator.instruct("Move every joint slowly through its full range, end stop to end stop.")
        sweep_end = sweep_start + s.range_sweep_s
        self._wait(done, lambda w: self.clock() >= sweep_end, max(s.step_timeout_s, s.range_sweep_s + 5), track)

        joints: dict[str, JointCalibration] = {}
        for k, name in enumerate(spec.joint_names):
            offset = float(raw_pose[k] - directions[k] * self.pose[k])
            a, b = directions[k] * (lows[k] - offset), directions[k] * (highs[k] - offset)
            lo, hi = float(min(a, b)), float(max(a, b))
            if hi - lo < s.min_range_rad:
                raise CalibrationError(
                    f"{name} swept only {hi - lo:.2f} rad; move it end stop to end stop during the range step"
                )
            joints[name] = JointCalibration(offset, int(directions[k]), lo, hi)
        return Calibration(spec.robot_id, joints, {j.name: j.servo_id for j in spec.joints})
