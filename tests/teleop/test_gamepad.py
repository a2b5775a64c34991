"""The gamepad source reads Linux joystick events (struct js_event, 8 bytes) from a file descriptor: here a
real FIFO the test writes those records into, as the joydev driver would. Sticks and held buttons jog at
their rate for the time between polls; presses are events; the initial-state burst is not a press; an
absent device is one clear line."""

import os
import struct

import numpy as np
import pytest
from conftest import Clock

from pearl_robot.robot.spec import load_spec
from pearl_robot.teleop import open_source
from pearl_robot.teleop.bindings import GAMEPAD_DEADZONE, GAMEPAD_NUDGE_M_S, GAMEPAD_RATE_RAD_S
from pearl_robot.teleop.gamepad import JS_EVENT_AXIS, JS_EVENT_BUTTON, JS_EVENT_INIT, GamepadSource, deadzone
from pearl_robot.teleop.source import TeleopEvent, TeleopUnavailable

SPEC = load_spec()  # 4 arm joints + gripper


def js_event(kind: int, number: int, value: int, time_ms: int = 0) -> bytes:
    """linux/joystick.h: __u32 time; __s16 value; __u8 type; __u8 number (native byte order)."""
    return struct.pack("=IhBB", time_ms, value, kind, number)


@pytest.fixture
def gamepad(tmp_path):
    """(source reading a FIFO, write(bytes), clock); both ends closed at teardown."""
    path = tmp_path / "js0"
    os.mkfifo(path)
    clock = Clock()
    source = GamepadSource(SPEC, str(path), clock=clock)
    writer = os.open(path, os.O_WRONLY)
    yield source, lambda data: os.write(writer, data), clock
    source.close()
    os.close(writer)


def test_the_record_is_eight_bytes():
    assert len(js_event(JS_EVENT_AXIS, 0, -32767)) == 8


def test_sticks_jog_at_their_rate(gamepad):
    source, write, clock = gamepad
    write(js_event(JS_EVENT_AXIS, 1, 32767) + js_event(JS_EVENT_AXIS, 0, -32767))  # left stick: down, left
    clock.now += 0.05
    command = source.poll()
    step = GAMEPAD_RATE_RAD_S * 0.05
    np.testing.assert_allclose(command.joint_delta_rad, [step, step, 0, 0, 0])  # x is mirrored: left turns +
    clock.now += 0.05
    np.testing.assert_allclose(source.poll().joint_delta_rad, [step, step, 0, 0, 0])  # held: still jogging
    write(js_event(JS_EVENT_AXIS, 1, 0) + js_event(JS_EVENT_AXIS, 0, 0))
    clock.now += 0.05
    assert source.poll() is None


def test_a_resting_stick_inside_the_dead_zone_is_no_command(gamepad):
    source, write, clock = gamepad
    write(js_event(JS_EVENT_AXIS, 4, int(0.9 * GAMEPAD_DEADZONE * 32767)))
    clock.now += 0.05
    assert source.poll() is None
    assert deadzone(1.0) == 1.0 and deadzone(-GAMEPAD_DEADZONE) == 0.0 and 0 < deadzone(0.5) < 0.5


def test_held_bumpers_jog_the_gripper_and_the_dpad_nudges(gamepad):
    source, write, clock = gamepad
    write(js_event(JS_EVENT_BUTTON, 5, 1) + js_event(JS_EVENT_AXIS, 7, -32767))  # RB held, d-pad up
    clock.now += 0.04
    command = source.poll()
    np.testing.assert_allclose(command.joint_delta_rad, [0, 0, 0, 0, GAMEPAD_RATE_RAD_S * 0.04])
    np.testing.assert_allclose(command.cartesian_delta_m, [0, 0, GAMEPAD_NUDGE_M_S * 0.04])
    assert command.events == ()


def test_presses_are_events_once_and_the_initial_state_is_not_a_press(gamepad):
    source, write, clock = gamepad
    write(js_event(JS_EVENT_BUTTON | JS_EVENT_INIT, 0, 1))  # A held when the device opened
    assert source.poll() is None
    write(js_event(JS_EVENT_BUTTON, 0, 0) + js_event(JS_EVENT_BUTTON, 0, 1) + js_event(JS_EVENT_BUTTON, 1, 1))
    assert source.poll().events == (TeleopEvent.TOGGLE, TeleopEvent.STOP)
    assert source.poll() is None  # still held: no new press


def test_a_record_split_across_reads(gamepad):
    source, write, clock = gamepad
    record = js_event(JS_EVENT_BUTTON, 0, 1)
    write(record[:5])
    assert source.poll() is None
    write(record[5:])
    assert source.poll().events == (TeleopEvent.TOGGLE,)


def test_a_long_pause_between_polls_jogs_no_further_than_a_short_one(gamepad):
    source, write, clock = gamepad
    write(js_event(JS_EVENT_AXIS, 3, 32767))
    clock.now += 5.0
    assert np.max(np.abs(source.poll().joint_delta_rad)) <= GAMEPAD_RATE_RAD_S * 0.1 + 1e-12


def test_no_gamepad_is_one_clear_line(tmp_path):
    with pytest.raises(TeleopUnavailable, match="does not exist"):
        GamepadSource(SPEC, str(tmp_path / "js9"))
    with pytest.raises(TeleopUnavailable, match="unknown source"):
        open_source("spacemouse", SPEC)
