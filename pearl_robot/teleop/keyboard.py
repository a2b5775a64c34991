"""Teleoperation from a terminal: keys read in cbreak mode (no echo, no line buffering, Ctrl-C still a
signal), without blocking. The key map is ``pearl_robot.teleop.bindings.KEYBOARD``.

A lone Esc and the start of an arrow key's escape sequence (``ESC [ A``) begin alike: an Esc with nothing
after it is taken as the key itself only once ``ESC_TIMEOUT_S`` has passed, and any other escape sequence
(function keys, Alt+key) is read whole and ignored, so that no stray sequence stops the session."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
from collections.abc import Callable

import numpy as np

from pearl_robot.teleop.bindings import (
    ESC,
    ESCAPE_SEQUENCES,
    KEY_ACTIONS,
    KEYBOARD_JOG_STEP_RAD,
    KEYBOARD_NUDGE_M,
    key_name,
)
from pearl_robot.teleop.source import TeleopCommand, TeleopEvent, TeleopUnavailable

ESC_TIMEOUT_S = 0.1
_READ_SIZE = 1024


def _terminal_fd() -> int:
    """stdin, when it is the terminal of a foreground process (a background one would be stopped by the
    kernel on its first terminal read or mode change: a hang, not an error)."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        fd = -1
    if fd < 0 or not os.isatty(fd):
        raise TeleopUnavailable("--teleop keyboard needs a terminal, and stdin is not one (use --teleop gamepad)")
    try:
        foreground = os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:  # not this process's controlling terminal: reading it stops nobody
        foreground = True
    if not foreground:
        raise TeleopUnavailable("--teleop keyboard needs the terminal in the foreground (not a background job)")
    return fd


class KeyboardSource:
    name = "keyboard"

    def __init__(
        self,
        num_joints: int,
        fd: int | None = None,
        *,
        jog_step_rad: float = KEYBOARD_JOG_STEP_RAD,
        nudge_m: float = KEYBOARD_NUDGE_M,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``fd``: the terminal to read (default: stdin, which must be a terminal in the foreground)."""
        if fd is None:
            fd = _terminal_fd()
        elif not os.isatty(fd):
            raise TeleopUnavailable(f"--teleop keyboard: file descriptor {fd} is not a terminal")
        self.fd = fd
        self.num_joints = num_joints
        self.jog_step_rad = float(jog_step_rad)
        self.nudge_m = float(nudge_m)
        self.clock = clock
        self.selected = 0
        self._pending = b""
        self._pending_since = 0.0
        self._saved: list | None = None  # the terminal's own mode, while it is in cbreak mode

    def start(self) -> None:
        """Put the terminal in cbreak mode (done by the first poll, so that a command failing before its loop
        starts leaves the terminal as it was)."""
        if self._saved is not None:
            return
        self._saved = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        mode[3] &= ~(termios.ECHO | termios.ICANON)  # lflag: no echo, key by key; ISIG stays (Ctrl-C)
        mode[6][termios.VMIN] = 0  # a read never waits
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)

    # ---- TeleopSource -----------------------------------------------------------------------
    def poll(self) -> TeleopCommand | None:
        self.start()
        keys = self._keys(self._read())
        if not keys:
            return None
        joint = np.zeros(self.num_joints)
        cartesian = np.zeros(3)
        events: list[TeleopEvent] = []
        for key in keys:
            action = KEY_ACTIONS.get(key)
            if action is None:
                continue
            kind = action[0]
            if kind == "select" and action[1] < self.num_joints:
                self.selected = action[1]
            elif kind == "select_step":
                self.selected = (self.selected + action[1]) % self.num_joints
            elif kind == "jog":
                joint[self.selected] += action[1] * self.jog_step_rad
            elif kind == "nudge":
                cartesian[action[1]] += action[2] * self.nudge_m
            elif kind == "event":
                events.append(action[1])
        command = TeleopCommand(joint if joint.any() else None, cartesian if cartesian.any() else None, tuple(events))
        return command if command.moves or command.events else None

    def close(self) -> None:
        if self._saved is not None:
            saved, self._saved = self._saved, None
            with contextlib.suppress(termios.error):  # the terminal is gone (a closed pty): nothing to restore
                termios.tcsetattr(self.fd, termios.TCSANOW, saved)

    def __enter__(self) -> KeyboardSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- bytes -> key names -----------------------------------------------------------------
    def _read(self) -> bytes:
        chunks = []
        while select.select([self.fd], [], [], 0)[0]:
            try:
                chunk = os.read(self.fd, _READ_SIZE)
            except OSError:  # the terminal hung up (EIO on a pty whose other side closed)
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def _keys(self, new: bytes) -> list[str]:
        data, held = self._pending + new, bool(self._pending)
        self._pending = b""
        now = self.clock()
        keys, i = [], 0
        while i < len(data):
            if data[i : i + 1] != ESC:
                keys.append(key_name(chr(data[i])))
                i += 1
                continue
            consumed = _escape_length(data, i)
            if consumed == 0:  # an escape sequence still arriving, or a lone Esc
                since = self._pending_since if held and i == 0 else now
                if now - since < ESC_TIMEOUT_S:
                    self._pending, self._pending_since = data[i:], since
                    break
                consumed = 1
            sequence = data[i : i + consumed]
            if sequence == ESC:
                keys.append("esc")
            elif sequence in ESCAPE_SEQUENCES:
                keys.append(ESCAPE_SEQUENCES[sequence])
            i += consumed  # any other sequence (function keys, Alt+key) is ignored
        return keys


def _escape_length(data: bytes, i: int) -> int:
    """Bytes of the escape sequence at ``data[i]`` (ESC); 0 when it may still be incomplete."""
    rest = data[i + 1 :]
    if not rest:
        return 0
    if rest[:1] == b"O":  # SS3: ESC O <final>
        return 3 if len(rest) >= 2 else 0
    if rest[:1] == b"[":  # CSI: ESC [ parameters... final byte in 0x40-0x7E
        for j, byte in enumerate(rest[1:], start=2):
            if 0x40 <= byte <= 0x7E:
                return j + 1
        return 0
    return 2 if rest[:1] != ESC else 1  # Alt+key: ESC then the key; ESC ESC: a lone Esc, then the next
