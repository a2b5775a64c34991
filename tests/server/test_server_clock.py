"""The delay baseline cannot be moved by one message: a skewed send time never makes later commands look
late (or early), and a link that turns slow keeps its commands expired."""

from __future__ import annotations

import time

import numpy as np
from server_helpers import remote_of, targets_near

from pearl_robot.server import wire
from pearl_robot.server.clock import DRIFT_ALLOWANCE, WINDOW_S, WINDOWS, DelayBaseline

LINK_S = 0.0003  # an honest one-way delay plus clock offset


def honest(baseline: DelayBaseline, start: float, seconds: float, rate_hz: float = 20.0) -> float:
    """Feed honest messages for ``seconds`` from ``start``; returns the time after them."""
    now = start
    for _ in range(int(seconds * rate_hz)):
        baseline.observe(LINK_S, now)
        now += 1 / rate_hz
    return now


def test_one_message_ahead_or_behind_moves_nothing() -> None:
    baseline = DelayBaseline(LINK_S, 0.0)
    for skew in (-0.95, 0.95, -0.5, 5.0):
        now = honest(baseline, 1.0 + 10 * abs(skew), 2.0)
        baseline.observe(LINK_S - skew, now)  # t skew s ahead (or behind) of the client's clock
        assert baseline.value == LINK_S
        honest(baseline, now + 0.01, 2.0)
        assert baseline.value == LINK_S


def test_a_burst_inside_one_window_moves_nothing() -> None:
    baseline = DelayBaseline(LINK_S, 0.0)
    now = honest(baseline, 0.05, 1.0)
    for i in range(100):
        baseline.observe(LINK_S - 0.95, now + i * WINDOW_S / 200)
    assert baseline.value == LINK_S


def test_right_after_hello_a_skewed_message_cannot_outvote_it() -> None:
    baseline = DelayBaseline(LINK_S, 0.0)
    baseline.observe(LINK_S - 0.95, 0.01)
    assert baseline.value == LINK_S


def test_only_a_lasting_skew_moves_it() -> None:
    """A client whose clock really jumped: the baseline follows once more than half the windows agree."""
    baseline = DelayBaseline(LINK_S, 0.0)
    now = honest(baseline, 0.05, 3.0)
    shifted = LINK_S - 0.2
    windows_needed = WINDOWS // 2 + 1
    for k in range(windows_needed):
        assert baseline.value == LINK_S
        baseline.observe(shifted, now + k * WINDOW_S)
    assert baseline.value == shifted


def test_a_slow_link_is_not_learned_as_normal() -> None:
    """Every message 200 ms late for 10 s: the baseline rises by clock drift only, so they stay late."""
    baseline = DelayBaseline(LINK_S, 0.0)
    now = honest(baseline, 0.05, 1.0)
    for k in range(200):
        baseline.observe(LINK_S + 0.2, now + k * 0.05)
    assert baseline.value <= LINK_S + DRIFT_ALLOWANCE * 10.5


def test_a_shorter_link_is_followed() -> None:
    baseline = DelayBaseline(LINK_S + 0.03, 0.0)  # a slow first hello
    honest(baseline, 0.05, 1.0)
    assert baseline.value == LINK_S


def drive(robot, spec, writes: int) -> int:
    """``writes`` writes at 20 Hz; returns how many were expired."""
    expired = robot.events["command_expired"]
    for k in range(writes):
        robot.write(targets_near(spec, 0.001 * (k % 3)))
        time.sleep(spec.period_s)
    return robot.events["command_expired"] - expired


def test_one_skewed_message_never_expires_later_writes(start_server, connect, raw_socket, spec) -> None:
    """The issue's case: one ping with t 0.95 s ahead expired every later write (40/40, then 20/20)."""
    server = start_server()
    robot = remote_of(connect(server.endpoints[0]))
    robot.enable()
    sock = raw_socket(server.endpoints[0])
    drive(robot, spec, 5)
    for op, skew in (("ping", 0.95), ("write", 0.95), ("ping", -0.95)):
        fields = {"q": wire.encode_array(targets_near(spec, 0.01)), "ttl": 0.05} if op == "write" else {}
        sock.send(wire.encode_request(op, next(robot._seq), time.monotonic() + skew, robot._sid, **fields))
        assert wire.decode_reply(sock.recv()).ok
        assert drive(robot, spec, 10) == 0
    assert server.events["refused_expired"] == 0


def test_a_congested_link_keeps_its_commands_expired(start_server, connect, raw_socket, spec) -> None:
    server = start_server()
    robot = remote_of(connect(server.endpoints[0]))
    robot.enable()
    drive(robot, spec, 3)
    goal = server.robot.unwrapped().goal.copy()
    sock = raw_socket(server.endpoints[0])
    for _ in range(30):  # 1.5 s of writes that each spent 200 ms on the way
        q = wire.encode_array(targets_near(spec, 0.05))
        sock.send(wire.encode_request("write", next(robot._seq), time.monotonic() - 0.2, robot._sid, q=q, ttl=0.05))
        assert wire.decode_reply(sock.recv()).err == wire.EXPIRED
        time.sleep(spec.period_s)
    np.testing.assert_array_equal(server.robot.unwrapped().goal, goal)
    assert drive(robot, spec, 3) == 0  # the honest client is unaffected
