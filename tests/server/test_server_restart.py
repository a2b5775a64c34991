"""A server that stops or restarts under a client: the client fails cleanly within a bounded time,
never hangs, and reconnects once a server is back."""

from __future__ import annotations

import time

import pytest
from server_helpers import targets_near, wait_for

from pearl_robot.errors import RobotFault
from pearl_robot.robot.base import Lifecycle
from pearl_robot.robot.registry import open_robot


def test_server_gone_then_back_on_the_same_endpoint(start_server, connect, transport, spec) -> None:
    first = start_server(transport)
    endpoint = first.endpoints[0]
    robot = connect(endpoint, safe=True, timeout_s=0.3, server_timeout_s=0.5)
    robot.enable()
    robot.write(targets_near(spec, 0.02))

    first.close()
    assert first.robot.lifecycle is Lifecycle.INACTIVE  # a stopping server leaves the arm disabled
    started = time.monotonic()
    with pytest.raises(RobotFault, match="robot server"):
        for _ in range(100):  # the first write after the loss raises; none hangs
            robot.write(targets_near(spec, 0.02))
    assert time.monotonic() - started < 2.0
    assert robot.lifecycle is Lifecycle.ERROR
    with pytest.raises(RobotFault):  # and later ones say why at once
        robot.write(targets_near(spec, 0.02))

    second = start_server(transport, bind=endpoint)
    assert second.endpoints[0] == endpoint
    # the heartbeat thread hears the new server; recovery is the usual disable -> enable
    wait_for(lambda: robot.unwrapped()._lost_reason is None, timeout_s=3.0)
    robot.disable()
    robot.enable()
    sent = robot.write(targets_near(spec, 0.03))
    assert sent.shape == (spec.num_joints,)
    assert second.robot.lifecycle is Lifecycle.ACTIVE and second.owner is not None


def test_a_quick_restart_between_two_writes_is_reported(start_server, connect, spec) -> None:
    """The server restarts faster than heartbeats notice: the next write meets an unknown session and
    raises (the new server has the arm disabled); the client is back in business after disable/enable."""
    first = start_server()
    endpoint = first.endpoints[0]
    robot = connect(endpoint)
    robot.enable()
    robot.write(targets_near(spec, 0.02))
    first.close()
    second = start_server(bind=endpoint)
    with pytest.raises(RobotFault, match="session|lost"):
        for _ in range(100):
            robot.write(targets_near(spec, 0.02))
    robot.disable()
    robot.enable()
    robot.write(targets_near(spec, 0.02))
    assert second.robot.lifecycle is Lifecycle.ACTIVE


def test_an_idle_client_learns_of_the_loss_within_its_server_timeout(start_server, connect) -> None:
    server = start_server()
    robot = connect(server.endpoints[0], server_timeout_s=0.3)
    robot.enable()
    server.close()
    took = wait_for(lambda: robot.lifecycle is Lifecycle.ERROR, timeout_s=3.0)
    assert took < 1.0
    assert "robot server lost" in robot.last_error
    with pytest.raises(RobotFault, match="robot server lost"):
        robot.read()


def test_closing_a_client_whose_server_is_gone_does_not_hang(start_server, spec) -> None:
    server = start_server()
    robot = open_robot(server.endpoints[0], spec, timeout_s=0.2)
    robot.connect()
    robot.enable()
    server.close()
    started = time.monotonic()
    robot.close()
    assert time.monotonic() - started < 1.5
    assert robot.lifecycle is Lifecycle.CLOSED
