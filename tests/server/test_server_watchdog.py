"""The server keeps the arm safe by itself: it holds when commands stop, and disables the arm when
the client's heartbeats stop (a killed client process)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest
from server_helpers import HEARTBEAT_TIMEOUT_S, mock_of, python_command, subprocess_cleanup, targets_near, wait_for

from pearl_robot.errors import RobotFault
from pearl_robot.robot.base import Lifecycle

# a client process that enables the arm and commands a slow sweep at 20 Hz until it is killed
SWEEPING_CLIENT = """
import sys, time
import numpy as np
from pearl_robot.robot.registry import open_robot
robot = open_robot(sys.argv[1])
robot.connect()
robot.enable()
home = robot.read().position.copy()
print("enabled", flush=True)
k = 0
next_t = time.monotonic()
while True:
    k += 1
    robot.write(home + 0.002 * k)
    next_t += robot.spec.period_s
    time.sleep(max(0.0, next_t - time.monotonic()))
"""


def test_watchdog_holds_two_periods_after_the_last_command(start_server, connect, spec) -> None:
    server = start_server()
    period = spec.period_s
    robot = connect(server.endpoints[0])  # a bare RemoteRobot: no client-side watchdog writes
    robot.enable()
    for k in range(5):
        robot.write(targets_near(spec, 0.01 * k))
        time.sleep(period / 2)
    holds_before = len(server.holds)
    last_command = time.monotonic()
    wait_for(lambda: len(server.holds) > holds_before, timeout_s=1.0)
    noticed = time.monotonic() - last_command
    hold = server.holds[-1]
    assert hold.reason.startswith("watchdog")
    # the server measures from its own receipt of the command: 2 periods, plus its wake-up latency
    assert server.watchdog_periods * period <= hold.after_s <= server.watchdog_periods * period + 0.015
    assert noticed < server.watchdog_periods * period + 0.05
    mock = mock_of(server)
    np.testing.assert_allclose(mock.goal, mock.position)  # holding: the goal is where the arm is
    # heartbeats keep the session alive while nothing is commanded: held, not disabled
    time.sleep(HEARTBEAT_TIMEOUT_S * 1.5)
    assert server.robot.lifecycle is Lifecycle.ACTIVE and server.owner is not None
    assert server.events["watchdog_hold"] == 1  # held once, not re-held every period
    robot.write(targets_near(spec, 0.05))  # commands resume normally
    assert server.robot.lifecycle is Lifecycle.ACTIVE


def test_killed_client_gets_held_then_disabled(start_server, connect, transport, spec) -> None:
    server = start_server(transport)
    mock = mock_of(server)
    proc = subprocess.Popen(
        python_command(SWEEPING_CLIENT, server.endpoints[0]),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with subprocess_cleanup(proc):
        assert proc.stdout.readline().strip() == "enabled", proc.stderr.read()
        writes_before = server.events["writes"]
        wait_for(lambda: server.events["writes"] >= writes_before + 5, timeout_s=5.0)  # it is sweeping
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait(timeout=5)

    wait_for(lambda: server.events["watchdog_hold"] >= 1, timeout_s=2.0)
    hold = server.holds[-1]
    assert hold.after_s <= server.watchdog_periods * spec.period_s + 0.015
    held_position = mock.position.copy()

    wait_for(lambda: server.robot.lifecycle is Lifecycle.INACTIVE, timeout_s=3.0)
    disabled_after = time.monotonic() - killed_at
    assert HEARTBEAT_TIMEOUT_S * 0.8 <= disabled_after <= HEARTBEAT_TIMEOUT_S + 0.5
    assert server.events["client_lost"] == 1 and server.owner is None
    assert not mock.torque_enabled
    np.testing.assert_allclose(mock.position, held_position, atol=1e-12)  # the arm stopped where it held

    # the robot is free again for the next client
    robot = connect(server.endpoints[0])
    robot.enable()
    robot.write(mock.position)
    assert server.robot.lifecycle is Lifecycle.ACTIVE


def test_a_silent_session_ends_and_the_client_is_told(start_server, connect, spec) -> None:
    """Client alive but its heartbeats blocked (a frozen process): the server disables; when the client
    comes back it learns its session is gone with a clear error, and can start again."""
    server = start_server()
    robot = connect(server.endpoints[0])
    remote = robot.unwrapped()
    robot.enable()
    remote._heartbeat_stop.set()  # freeze the heartbeat thread
    remote._heartbeat_thread.join(timeout=2)
    wait_for(lambda: server.robot.lifecycle is Lifecycle.INACTIVE, timeout_s=2.0)
    remote._start_heartbeat()  # the client wakes up
    with pytest.raises(RobotFault, match="no heartbeat"):
        robot.write(spec.home_rad)
    assert robot.lifecycle is Lifecycle.ERROR
    robot.disable()
    robot.enable()
    robot.write(spec.home_rad)
    assert server.robot.lifecycle is Lifecycle.ACTIVE
