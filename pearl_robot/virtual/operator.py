"""A scripted operator's hand that follows ``pearl-robot calibrate joints`` by its LED cues
(``pearl-robot virtual-bus --operator``), or by its cue file on an arm without servo LEDs
(``--operator-cues FILE`` with ``calibrate joints --cue-file FILE``).

The calibration runs in another process, so the hand watches what a person at the arm would watch:
the servos' LEDs (the cues are listed in ``pearl_robot.calibrate.joints``), read from the virtual
servos with ``VirtualServoBus.observe``. All lit: the hand takes the arm to the calibration pose and
holds it there. One lit: it moves that joint ``move_rad`` in its positive direction and holds it.
Blinking: it sweeps every joint to one end stop and the other (``margin_rad`` short of the hardware
limits) and back to the pose. It acts a reaction time after each cue, holds with a tremor (a smoothed
random jitter, on top of the servos' encoder noise), keeps holding when the LEDs go out, and lets go of
a joint whose torque comes on: the servo holds it from then on.

The arm starts in the calibration pose, held (a scripted setup, as the non-interactive procedure needs).
In an interactive session the hand follows the same cues by itself; ``log`` (the bus's standard error)
says what it does, so the person at the keyboard presses Enter once it says "there, holding".
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pearl_robot.calibrate.joints import read_cue_file

if TYPE_CHECKING:
    from pearl_robot.robot.spec import RobotSpec
    from pearl_robot.virtual.bus import VirtualServoBus

POSE, SWEEP = "pose", "sweep"  # cues besides a joint index; None: no cue (LEDs off or unknown)


@dataclass(frozen=True)
class Waypoint:
    position: np.ndarray  # true joint angles of every joint, rad
    dwell_s: float = 0.0  # how long to stay once there before the next waypoint


class VirtualOperator:
    """Runs the hand in its own thread (``start``/``stop``); ``errors`` keeps what went wrong in it."""

    def __init__(
        self,
        bus: VirtualServoBus,
        spec: RobotSpec,
        pose: Sequence[float] | None = None,
        *,
        move_rad: float = 0.4,
        speed_rad_s: float = 3.0,
        margin_rad: float = 0.05,
        reaction_s: float = 0.15,
        tremor_rad: float = 0.001,
        tremor_time_s: float = 0.03,
        blink_window_s: float = 1.0,
        poll_s: float = 0.01,
        seed: int = 0,
        log: Callable[[str], None] | None = None,
        cue_file: str | os.PathLike[str] | None = None,
    ) -> None:
        """``tremor_rad``: RMS of the hand's jitter (1 mrad, under a tick), correlated over
        ``tremor_time_s``; ``blink_window_s``: LEDs that went on and off twice within it are blinking;
        ``cue_file``: follow the cues of ``calibrate joints --cue-file`` instead of the LEDs (an arm
        without servo LEDs, where the person at the arm reads them off a screen)."""
        self.cue_file = cue_file
        self._cue_name = "its LED is lit" if cue_file is None else "its cue is shown"
        self.bus, self.hand, self.spec = bus, bus.hand, spec
        n = spec.num_joints
        self.pose = np.zeros(n) if pose is None else np.asarray(pose, dtype=float)
        self.move_rad, self.speed, self.reaction_s = move_rad, speed_rad_s, reaction_s
        self.swept = (spec.position_min + margin_rad, spec.position_max - margin_rad)  # what a sweep covers
        self.tremor_rad, self.tremor_time_s = tremor_rad, tremor_time_s
        self.blink_window_s, self.poll_s = blink_window_s, poll_s
        self.log = log or (lambda line: None)
        self.errors: list[BaseException] = []
        self._rng = np.random.default_rng(seed)
        self._tremor = np.zeros(n)
        self._pattern: frozenset[int] = frozenset()
        self._flips: deque[float] = deque()  # when the LEDs went from all on to all off or back
        self._cue: str | int | None = None
        self._plan: list[Waypoint] = [Waypoint(self.pose)]
        self._plan_from = 0.0  # when the hand starts on the plan (after its reaction time)
        self._arrived_at: float | None = None
        self._aimed = False  # the hand has been told to go to the plan's first waypoint
        self._holding = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="virtual-operator", daemon=True)

    def start(self) -> VirtualOperator:
        self.hand.pose(self.pose, speed_rad_s=None)
        self.log(f"virtual hand: holding the arm in its calibration pose ({self._angles(self.pose)} rad)")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    # ---- what the hand sees -------------------------------------------------------------------
    def _see(self, now: float) -> str | int | None:
        """The cue the LEDs show now."""
        pattern = self._lit()
        every = frozenset(range(self.spec.num_joints))
        if pattern != self._pattern and {pattern, self._pattern} == {every, frozenset()}:
            self._flips.append(now)
        self._pattern = pattern
        while self._flips and self._flips[0] < now - self.blink_window_s:
            self._flips.popleft()
        if len(self._flips) >= 2 and pattern in (every, frozenset()):
            return SWEEP
        if pattern == every:
            return POSE
        return next(iter(pattern)) if len(pattern) == 1 else None

    def _lit(self) -> frozenset[int]:
        if self.cue_file is None:
            return frozenset(int(k) for k in np.flatnonzero(self.bus.observe("led")))
        lit = read_cue_file(self.cue_file)
        return self._pattern if lit is None else lit  # no file yet, or unreadable: what it showed before

    def _react(self, cue: str | int | None, now: float) -> None:
        if cue is None:
            return  # LEDs off: keep holding what the hand holds
        names = self.spec.joint_names
        if cue == POSE:
            self.log("virtual hand: the calibration pose (all LEDs lit)")
            plan = [Waypoint(self.pose)]
        elif cue == SWEEP:
            self.log("virtual hand: sweeping every joint end stop to end stop (LEDs blinking)")
            plan = [Waypoint(self.swept[1], 0.25), Waypoint(self.swept[0], 0.25), Waypoint(self.pose)]
        else:
            target = self.pose.copy()
            target[cue] = min(target[cue] + self.move_rad, self.swept[1][cue])
            self.log(f"virtual hand: {names[cue]} to {target[cue]:+.2f} rad, its positive direction ({self._cue_name})")
            plan = [Waypoint(target)]
        self._plan, self._plan_from, self._arrived_at, self._aimed = plan, now + self.reaction_s, None, False
        self._holding = True

    # ---- what the hand does -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self._tick(time.monotonic())
            except BaseException as exc:  # kept for the caller, never lost in a thread
                self.errors.append(exc)
                self.log(f"virtual hand: stopped ({type(exc).__name__}: {exc})")
                return

    def _tick(self, now: float) -> None:
        cue = self._see(now)
        if cue != self._cue:
            self._cue = cue
            self._react(cue, now)
        torque = self.bus.observe("torque_enable").astype(bool)
        for joint in sorted(self.hand.holding):
            if torque[joint]:
                self.hand.release(joint)
                self.log(f"virtual hand: let go of {self.spec.joint_names[joint]} (torque on: the servo holds it)")
        if torque.all():
            self._holding = False
        if not self._holding or now < self._plan_from:
            return
        if self._aimed and self._arrived_at is None and self.hand.plant.hand_settled():
            self._arrived_at = now
            if len(self._plan) == 1:
                self.log("virtual hand: there, holding")
        if len(self._plan) > 1 and self._arrived_at is not None and now - self._arrived_at >= self._plan[0].dwell_s:
            self._plan, self._arrived_at, self._aimed = self._plan[1:], None, False
        target = self._plan[0].position + self._jitter()
        for joint in np.flatnonzero(~torque):
            self.hand.hold(int(joint), float(target[joint]), self.speed)
        self._aimed = True

    def _jitter(self) -> np.ndarray:
        """The tremor: Gaussian noise smoothed over ``tremor_time_s`` (RMS ``tremor_rad``)."""
        keep = math.exp(-self.poll_s / self.tremor_time_s)
        fresh = self._rng.normal(0.0, self.tremor_rad, len(self._tremor))
        self._tremor = keep * self._tremor + math.sqrt(1 - keep**2) * fresh
        return self._tremor

    def _angles(self, positions: np.ndarray) -> str:
        return ", ".join(f"{n}={p:+.2f}" for n, p in zip(self.spec.joint_names, positions))
