"""The keyboard source on a real pseudo-terminal: the source reads the slave side in cbreak mode, the test
types on the master side; keys (bindings.KEYBOARD) become jogs, nudges and events; escape sequences are
read whole; the terminal's mode comes back at close; no terminal is one clear error."""

import os
import subprocess
import sys
import termios

import numpy as np
import pytest
from conftest import Clock

from pearl_robot.teleop.bindings import KEYBOARD_JOG_STEP_RAD, KEYBOARD_NUDGE_M
from pearl_robot.teleop.keyboard import ESC_TIMEOUT_S, KeyboardSource
from pearl_robot.teleop.source import TeleopEvent, TeleopUnavailable


def test_cbreak_mode_while_open_and_the_terminal_restored_at_close(keyboard, terminal):
    _, slave = terminal
    before = termios.tcgetattr(slave)
    assert before[3] & termios.ICANON and before[3] & termios.ECHO
    source, _ = keyboard(start=False)
    assert termios.tcgetattr(slave) == before  # nothing changes until the loop polls
    assert source.poll() is None
    mode = termios.tcgetattr(slave)
    assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO
    assert mode[3] & termios.ISIG  # Ctrl-C is still the session's stop signal
    source.close()
    assert termios.tcgetattr(slave) == before
    source.close()  # twice is fine


def test_nothing_typed_polls_none_without_blocking(keyboard):
    source, _ = keyboard()
    assert source.poll() is None


def test_select_and_jog_a_joint(keyboard):
    source, type_keys = keyboard(num_joints=5)
    type_keys(b"3++")
    command = source.poll()
    assert source.selected == 2
    np.testing.assert_allclose(command.joint_delta_rad, [0, 0, 2 * KEYBOARD_JOG_STEP_RAD, 0, 0])
    assert command.cartesian_delta_m is None and command.events == ()
    type_keys(b"\x1b[B")  # down arrow
    np.testing.assert_allclose(source.poll().joint_delta_rad, [0, 0, -KEYBOARD_JOG_STEP_RAD, 0, 0])
    assert source.poll() is None  # every key was read once


def test_arrows_select_and_jog(keyboard):
    source, type_keys = keyboard(num_joints=5)
    type_keys(b"1\x1b[C\x1bOA-")  # joint 1, right arrow: joint 2, up arrow (application mode), minus
    assert source.poll() is None  # + then -: no net jog, nothing to report
    assert source.selected == 1
    type_keys(b"\x1b[D\x1b[D")  # left twice: wraps from joint 2 back past joint 1 to the last
    assert source.poll() is None and source.selected == 4


def test_cartesian_nudges(keyboard):
    source, type_keys = keyboard()
    type_keys(b"wwdR")  # upper case is the same key
    command = source.poll()
    np.testing.assert_allclose(command.cartesian_delta_m, [2 * KEYBOARD_NUDGE_M, -KEYBOARD_NUDGE_M, KEYBOARD_NUDGE_M])
    assert command.joint_delta_rad is None


def test_events_in_order(keyboard):
    source, type_keys = keyboard()
    type_keys(b" tgq")
    assert source.poll().events == (TeleopEvent.TOGGLE, TeleopEvent.TAKE_OVER, TeleopEvent.HAND_BACK, TeleopEvent.STOP)


def test_a_joint_key_past_the_arm_is_ignored(keyboard):
    source, type_keys = keyboard(num_joints=5)
    type_keys(b"9+")
    assert source.selected == 0
    np.testing.assert_allclose(source.poll().joint_delta_rad, [KEYBOARD_JOG_STEP_RAD, 0, 0, 0, 0])


def test_lone_escape_stops_only_after_the_escape_timeout(keyboard):
    clock = Clock()
    source, type_keys = keyboard(clock=clock)
    type_keys(b"\x1b")
    assert source.poll() is None  # may be the start of an arrow key
    clock.now += ESC_TIMEOUT_S + 0.01
    assert source.poll().events == (TeleopEvent.STOP,)


def test_an_escape_sequence_split_across_reads_is_one_key(keyboard):
    clock = Clock()
    source, type_keys = keyboard(clock=clock)
    type_keys(b"2\x1b[")
    assert source.poll() is None and source.selected == 1
    clock.now += ESC_TIMEOUT_S / 2
    type_keys(b"A")
    np.testing.assert_allclose(source.poll().joint_delta_rad, [0, KEYBOARD_JOG_STEP_RAD, 0, 0, 0])


def test_function_keys_and_alt_keys_do_not_stop(keyboard):
    source, type_keys = keyboard()
    type_keys(b"\x1bOP\x1b[15~\x1bq")  # F1, F5, Alt+q
    assert source.poll() is None


def test_not_a_terminal_is_one_clear_error():
    read, write = os.pipe()
    try:
        with pytest.raises(TeleopUnavailable, match="not a terminal"):
            KeyboardSource(5, fd=read)
    finally:
        os.close(read)
        os.close(write)


def test_stdin_not_a_terminal_is_one_clear_error():
    code = "from pearl_robot.teleop.keyboard import KeyboardSource; KeyboardSource(5)"
    result = subprocess.run(
        [sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0 and "needs a terminal, and stdin is not one" in result.stderr
