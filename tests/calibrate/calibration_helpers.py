"""The virtual arm for calibration tests: servos mounted with hidden offsets and one reversed joint, a
scripted operator who moves the arm by hand, and the CLI in a subprocess (fixtures in conftest.py)."""

import contextlib
import queue
import subprocess
import sys
import threading
import time

import numpy as np

from pearl_robot.dynamixel.control_table import RAD_PER_TICK

TICK = RAD_PER_TICK  # 2*pi/4096 rad
HIDDEN_OFFSETS_TICKS = [37, -120, 15, 64, -9]  # how each horn happens to be mounted
HIDDEN_DIRECTIONS = [1, -1, 1, 1, 1]  # joint2's servo turns against the joint
INSTRUCTION_PREFIX = "  -> "  # how `pearl-robot calibrate joints` prints each instruction


class ScriptedOperator:
    """A person at the arm. Hears each instruction (``instruct`` for the library, ``hear`` for the CLI's
    printed lines) and reacts in its own thread, a moment later, by moving the virtual arm's joints
    with the bus's hand, in true joint angles."""

    def __init__(self, bus, spec, pose, move_rad=0.4, speed_rad_s=3.0, sweep_speed_rad_s=8.0, margin_rad=0.05):
        self.hand, self.spec = bus.hand, spec
        self.pose = np.asarray(pose, dtype=float)
        self.move_rad, self.speed, self.sweep_speed = move_rad, speed_rad_s, sweep_speed_rad_s
        self.swept = (spec.position_min + margin_rad, spec.position_max - margin_rad)  # what the hand covers
        self.heard: list[str] = []
        self.errors: list[BaseException] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scripted-operator", daemon=True)

    def start(self):
        self.hand.pose(self.pose, speed_rad_s=None)  # a scripted setup: the arm starts in its pose
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def instruct(self, message: str):  # the Operator protocol: nobody confirms, each step ends by itself
        self.hear(message)
        return None

    def hear(self, message: str) -> None:
        self.heard.append(message)
        self._queue.put(message)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                self._react(message)
            except BaseException as exc:  # reported by the test, never lost in a thread
                self.errors.append(exc)

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _arrive(self) -> None:
        deadline = time.monotonic() + 10
        while not self._stop.is_set() and not self.hand.wait(timeout_s=0.05):
            assert time.monotonic() < deadline, "the hand never got there"

    def _joint_named_in(self, message: str, verb: str) -> int:
        return next(i for i, n in enumerate(self.spec.joint_names) if f"{verb} {n} " in message)

    def _react(self, message: str) -> None:
        if message.startswith("Torque is off") and "calibration pose" in message:
            self.hand.pose(self.pose, speed_rad_s=self.speed)
        elif "POSITIVE direction" in message:
            joint = self._joint_named_in(message, "Move")
            self._pause(0.1)  # a person's reaction time
            self.hand.hold(joint, self.pose[joint] + self.move_rad, self.speed)
        elif "back in its calibration pose" in message:
            joint = self._joint_named_in(message, "Put")
            self._pause(0.1)
            self.hand.hold(joint, self.pose[joint], self.speed)
        elif "full range" in message:
            self._pause(0.1)
            for target in (self.swept[1], self.swept[0], self.pose):  # to one end stop, the other, back
                self.hand.pose(target, self.sweep_speed)
                self._arrive()
                self._pause(0.25)  # pressed against the end stop for a moment


class CliRun:
    """``pearl-robot ARGS`` in a subprocess (no stdin, as in CI); stdout lines collected by a thread,
    and passed to ``on_line`` as they come."""

    def __init__(self, args, on_line=None) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pearl_robot.cli.main", *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.on_line = on_line
        self._reader = threading.Thread(target=self._read, name="cli-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if self.on_line is not None:
                self.on_line(line.rstrip("\n"))

    def wait(self, timeout_s: float) -> tuple[int, str, str]:
        """(exit status, stdout, stderr)."""
        self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return self.proc.returncode, "\n".join(self.lines), self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
