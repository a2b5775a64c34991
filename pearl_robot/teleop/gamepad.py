"""Teleoperation from a gamepad through the Linux joystick API (``/dev/input/js*``, read directly: no
SDL, no evdev). Each read returns whole ``struct js_event`` records (linux/joystick.h):

    __u32 time;    event timestamp in milliseconds
    __s16 value;   axis position (-32767..32767) or button state (0, 1)
    __u8  type;    JS_EVENT_BUTTON 0x01, JS_EVENT_AXIS 0x02, or'ed with JS_EVENT_INIT 0x80 for the
                   device's initial state, sent once after open
    __u8  number;  axis or button number

The source keeps the sticks' and buttons' state and turns it into a jog proportional to the time since the
last poll (rates and the layout in ``pearl_robot.teleop.bindings``). A gamepad unplugged mid-session
(ENODEV) is a stop: the operator has lost their controls."""

from __future__ import annotations

import errno
import glob
import os
import struct
import time
from collections.abc import Callable

import numpy as np

from pearl_robot.robot.spec import RobotSpec
from pearl_robot.teleop.bindings import (
    AXIS_FULL_SCALE,
    GAMEPAD_AXES,
    GAMEPAD_BUTTONS,
    GAMEPAD_DEADZONE,
    GAMEPAD_NUDGE_AXES,
    GAMEPAD_NUDGE_M_S,
    GAMEPAD_RATE_RAD_S,
)
from pearl_robot.teleop.source import TeleopCommand, TeleopEvent, TeleopUnavailable

JS_EVENT = struct.Struct("=IhBB")  # native byte order, standard sizes: 8 bytes
JS_EVENT_BUTTON = 0x01
JS_EVENT_AXIS = 0x02
JS_EVENT_INIT = 0x80
DEVICE_GLOB = "/dev/input/js*"
MAX_POLL_GAP_S = 0.1  # a late poll jogs no further than this much held input


def find_gamepad() -> str:
    found = sorted(glob.glob(DEVICE_GLOB))
    if not found:
        raise TeleopUnavailable(
            f"--teleop gamepad: no gamepad found (nothing matches {DEVICE_GLOB}); plug one in, or name it with "
            "--teleop gamepad:/dev/input/jsN, or use --teleop keyboard"
        )
    return found[0]


def deadzone(value: float, zone: float = GAMEPAD_DEADZONE) -> float:
    """A stick's deflection in [-1, 1], zero inside the dead zone and rescaled beyond it (no step at its edge)."""
    magnitude = abs(value)
    if magnitude <= zone:
        return 0.0
    return float(np.sign(value) * min(1.0, (magnitude - zone) / (1.0 - zone)))


class GamepadSource:
    name = "gamepad"

    def __init__(
        self, spec: RobotSpec, path: str | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path or find_gamepad()
        self.clock = clock
        self.num_joints = spec.num_joints
        arm = [int(i) for i in spec.arm_joint_indices]
        groups = {"arm": arm, "gripper": [i for i in range(spec.num_joints) if i not in arm]}
        self._axes = {n: (groups[g][k], s) for n, (g, k, s) in GAMEPAD_AXES.items() if k < len(groups[g])}
        self._held = {
            n: (groups[b[1]][b[2]], b[3])
            for n, b in GAMEPAD_BUTTONS.items()
            if b[0] == "jog" and b[2] < len(groups[b[1]])
        }
        self._events = {n: b[1] for n, b in GAMEPAD_BUTTONS.items() if b[0] == "event"}
        self.axes: dict[int, float] = {}
        self.buttons: dict[int, bool] = {}
        self._partial = b""
        self._last_poll = clock()
        self.stop_detail = ""  # why the source itself asked for a stop (the device went away)
        try:
            self.fd: int | None = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise TeleopUnavailable(f"--teleop gamepad: {self.path} does not exist (is it plugged in?)") from None
        except PermissionError:
            raise TeleopUnavailable(
                f"--teleop gamepad: no permission to read {self.path} (add yourself to the 'input' group)"
            ) from None
        except OSError as exc:
            raise TeleopUnavailable(f"--teleop gamepad: cannot open {self.path}: {exc.strerror or exc}") from None

    def poll(self) -> TeleopCommand | None:
        events = self._read()
        now = self.clock()
        dt = min(max(now - self._last_poll, 0.0), MAX_POLL_GAP_S)
        self._last_poll = now
        joint = np.zeros(self.num_joints)
        for number, (index, sign) in self._axes.items():
            joint[index] += sign * deadzone(self.axes.get(number, 0.0)) * GAMEPAD_RATE_RAD_S * dt
        for number, (index, sign) in self._held.items():
            joint[index] += sign * self.buttons.get(number, False) * GAMEPAD_RATE_RAD_S * dt
        cartesian = np.zeros(3)
        for number, (axis, sign) in GAMEPAD_NUDGE_AXES.items():
            cartesian[axis] += sign * deadzone(self.axes.get(number, 0.0)) * GAMEPAD_NUDGE_M_S * dt
        command = TeleopCommand(joint if joint.any() else None, cartesian if cartesian.any() else None, tuple(events))
        return command if command.moves or command.events else None

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def __enter__(self) -> GamepadSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> list[TeleopEvent]:
        """Drain the device; update the state; the events of buttons pressed since the last poll."""
        if self.fd is None:
            return []
        data = self._partial
        while True:
            try:
                chunk = os.read(self.fd, JS_EVENT.size * 64)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in (errno.ENODEV, errno.EIO):
                    self.close()
                    self.stop_detail = f"{self.path} disconnected"
                    return [TeleopEvent.STOP]
                raise
            if not chunk:
                break
            data += chunk
        whole = len(data) - len(data) % JS_EVENT.size
        self._partial = data[whole:]
        pressed: list[TeleopEvent] = []
        for _, value, kind, number in JS_EVENT.iter_unpack(data[:whole]):
            initial = bool(kind & JS_EVENT_INIT)
            kind &= ~JS_EVENT_INIT
            if kind == JS_EVENT_AXIS:
                self.axes[number] = value / AXIS_FULL_SCALE
            elif kind == JS_EVENT_BUTTON:
                down = bool(value)
                if down and not initial and not self.buttons.get(number, False) and number in self._events:
                    pressed.append(self._events[number])
                self.buttons[number] = down
        return pressed
