"""RemoteRobot against a real RobotServer over tcp and ipc: the same lifecycle, states and command
semantics as the robot served."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
from server_helpers import mock_of, remote_of, request, targets_near, wait_for

from pearl_robot.errors import ConfigError, LifecycleError, PearlRobotError, RobotFault
from pearl_robot.robot.base import Lifecycle
from pearl_robot.robot.registry import open_robot
from pearl_robot.robot.remote import RemoteRobot
from pearl_robot.robot.safety import SafeRobot
from pearl_robot.server import wire


def test_lifecycle_and_io_mirror_the_served_robot(start_server, connect, transport, spec) -> None:
    server = start_server(transport)
    mock = mock_of(server)
    robot = connect(server.endpoints[0])
    assert robot.lifecycle is Lifecycle.INACTIVE and server.robot.lifecycle is Lifecycle.INACTIVE
    state = robot.read()
    np.testing.assert_array_equal(state.position, mock.position)
    assert state.ok and abs(state.timestamp - time.monotonic()) < 0.5
    with pytest.raises(LifecycleError):
        robot.write(spec.home_rad)

    robot.enable()
    assert robot.lifecycle is Lifecycle.ACTIVE and server.robot.lifecycle is Lifecycle.ACTIVE
    target = targets_near(spec, 0.05)
    sent = robot.write(target)
    np.testing.assert_allclose(sent, target)
    np.testing.assert_allclose(mock.goal, target)
    # the write's reply carries the state measured right after it: no extra round trip
    np.testing.assert_array_equal(remote_of(robot).last_state.position, mock.position)
    np.testing.assert_array_equal(robot.read().position, mock.position)

    robot.disable()
    assert server.robot.lifecycle is Lifecycle.INACTIVE and not mock.torque_enabled
    robot.close()
    assert robot.lifecycle is Lifecycle.CLOSED
    wait_for(lambda: server.owner is None)


def test_server_side_safety_clamps_and_reports_what_was_sent(start_server, connect, spec) -> None:
    server = start_server()
    robot = connect(server.endpoints[0])
    robot.enable()
    far = spec.position_max + 1.0  # beyond the limits and far beyond one step
    sent = robot.write(far)
    start = spec.home_rad
    step_cap = server.robot.step_cap
    np.testing.assert_allclose(sent, np.minimum(start + step_cap, spec.position_max))
    assert server.robot.events["step_capped"] >= 1


def test_open_robot_gives_a_safe_realtime_remote(start_server, connect, spec) -> None:
    server = start_server()
    robot = connect(server.endpoints[0], safe=True)
    assert isinstance(robot, SafeRobot) and isinstance(robot.inner, RemoteRobot)
    assert robot.realtime and robot.watchdog_enabled
    robot.enable()
    robot.write(targets_near(spec, 0.02))
    # the client-side SafeRobot refuses NaN before anything reaches the wire
    robot.write(np.full(spec.num_joints, np.nan))
    assert robot.events["command_refused_nonfinite"] == 1
    robot.close()
    wait_for(lambda: server.robot.lifecycle is Lifecycle.INACTIVE)


def test_commands_from_an_inactive_client_are_refused(start_server, connect, spec) -> None:
    server = start_server()
    robot = remote_of(connect(server.endpoints[0]))
    robot.enable()
    server.robot.disable()  # the arm was disabled under the client (an operator at the robot, say)
    with pytest.raises(LifecycleError):
        robot.write(spec.home_rad)


def test_faults_travel_over_the_wire_and_stop_the_client(start_server, connect, spec) -> None:
    server = start_server()
    robot = connect(server.endpoints[0], safe=True)
    robot.enable()
    mock_of(server).faults.joint_error = "joint2"
    state = robot.read()
    assert [(f.kind, f.joint) for f in state.faults] == [("joint_error", "joint2")]
    assert robot.estopped  # the client's SafeRobot latched its e-stop on the remote fault
    with pytest.raises(RobotFault):
        robot.enable()


def test_teleport_passes_through_to_a_simulated_robot(start_server, connect, spec) -> None:
    server = start_server()
    robot = connect(server.endpoints[0])
    assert robot.can_teleport
    pose = targets_near(spec, 0.1)
    robot.teleport(pose)
    np.testing.assert_array_equal(mock_of(server).position, pose)
    with pytest.raises(ValueError):
        robot.teleport(np.full(spec.num_joints, np.inf))


def test_one_controlling_client_at_a_time(start_server, connect) -> None:
    server = start_server()
    first = connect(server.endpoints[0])
    with pytest.raises(RobotFault, match="in use"):
        connect(server.endpoints[0])
    assert server.events["refused_busy"] == 1
    first.close()
    second = connect(server.endpoints[0])
    assert second.lifecycle is Lifecycle.INACTIVE


def test_a_client_with_another_arm_description_is_refused(start_server, connect, spec) -> None:
    server = start_server()
    other = dataclasses.replace(spec, joints=spec.joints[:-1], home_rad=spec.home_rad[:-1])
    with pytest.raises(ConfigError, match="joints"):
        connect(server.endpoints[0], hardware=other)


def test_nobody_listening_fails_fast_and_clearly(spec, tmp_path) -> None:
    robot = RemoteRobot(spec, f"ipc://{tmp_path}/nobody.sock", connect_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(RobotFault, match="no robot server answered"):
        robot.connect()
    assert time.monotonic() - started < 2.0
    robot.close()


def test_off_host_endpoints_need_keys(spec) -> None:
    with pytest.raises(ConfigError, match="CurveZMQ"):
        open_robot("tcp://192.0.2.10:5555", spec)
    with pytest.raises(PearlRobotError):
        RemoteRobot(spec, "tcp://192.0.2.10:5555", server_key=b"x" * 40)


def test_a_late_write_is_dropped_not_executed(start_server, connect, raw_socket, spec) -> None:
    """Deadlines: a write older than its ttl is refused, and RemoteRobot reports the held targets."""
    server = start_server()
    robot = remote_of(connect(server.endpoints[0]))
    robot.enable()
    mock = mock_of(server)
    goal_before = mock.goal.copy()
    sock = raw_socket(server.endpoints[0])
    stale = wire.encode_request(
        "write", 10**6, time.monotonic() - 0.5, robot._sid, q=wire.encode_array(targets_near(spec, 0.1)), ttl=0.05
    )
    sock.send(stale)
    reply = wire.decode_reply(sock.recv())
    assert reply.err == wire.EXPIRED and "deadline" in reply.msg
    np.testing.assert_array_equal(wire.decode_array(reply.held, spec.num_joints), mock.position)
    np.testing.assert_array_equal(mock.goal, goal_before)
    # a refused write does not move the sequence bar: the client's own next write runs
    robot.write(targets_near(spec, 0.01))
    np.testing.assert_allclose(mock.goal, targets_near(spec, 0.01))
    # a replay of an older command (fresh send time, old seq) is refused as out of order
    again = request(sock, "write", 1, robot._sid, q=wire.encode_array(spec.home_rad), ttl=0.05)
    assert again.err == wire.OUT_OF_ORDER
    np.testing.assert_allclose(mock.goal, targets_near(spec, 0.01))
    assert server.events["refused_expired"] == 1 and server.events["refused_out_of_order"] == 1


def test_only_the_newest_queued_write_runs(start_server, connect, raw_socket, spec) -> None:
    """Latest-only: writes that queued up while the server was busy are superseded by the newest one,
    and the newest runs only if still inside its deadline."""
    server = start_server()
    robot = remote_of(connect(server.endpoints[0]))
    robot.enable()
    mock = mock_of(server)
    sock = raw_socket(server.endpoints[0])
    sid = robot._sid

    def burst(first_seq: int, pause_s: float) -> list[dict]:
        def send(i: int) -> None:
            q = wire.encode_array(targets_near(spec, 0.01 * (i + 1)))
            sock.send(wire.encode_request("write", first_seq + i, time.monotonic(), sid, q=q, ttl=0.05))

        server.robot._io_lock.acquire()  # the server will block inside the robot on the first write
        try:
            send(0)
            time.sleep(0.02)
            for i in (1, 2, 3):  # these queue up behind it
                send(i)
            time.sleep(pause_s)
        finally:
            server.robot._io_lock.release()
        return sorted((wire.decode_reply(sock.recv()) for _ in range(4)), key=lambda r: r.seq)

    replies = burst(100, 0.02)
    assert [r.ok for r in replies] == [True, False, False, True]
    assert [r.err for r in replies[1:3]] == [wire.SUPERSEDED, wire.SUPERSEDED]
    np.testing.assert_allclose(mock.goal, targets_near(spec, 0.04))

    replies = burst(200, 0.12)  # the newest is now older than its 50 ms deadline too
    assert [r.err for r in replies[1:]] == [wire.SUPERSEDED, wire.SUPERSEDED, wire.EXPIRED]
    np.testing.assert_allclose(mock.goal, targets_near(spec, 0.01))


def test_send_times_from_the_future_are_refused(start_server, connect, raw_socket, spec) -> None:
    server = start_server()
    robot = remote_of(connect(server.endpoints[0]))
    robot.enable()
    sock = raw_socket(server.endpoints[0])
    sock.send(wire.encode_request("ping", 5, time.monotonic() + 100.0, robot._sid))
    assert wire.decode_reply(sock.recv()).err == wire.INVALID
    robot.write(spec.home_rad)  # the session's deadline estimate was not disturbed
    assert robot.events["command_expired"] == 0


def test_many_threads_share_one_client(start_server, connect, spec) -> None:
    server = start_server()
    robot = connect(server.endpoints[0], safe=True)
    robot.enable()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                robot.read()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(50):
        robot.write(spec.home_rad)
    for thread in threads:
        thread.join(timeout=10)
    assert not errors
    assert remote_of(robot).events["stale_reply"] == 0


def test_a_reply_the_client_cannot_accept_is_a_fault_naming_the_key(spec) -> None:
    robot = RemoteRobot(spec, "tcp://127.0.0.1:1")  # never connected: only the reply checks run
    with pytest.raises(RobotFault, match=r"bad reply: 'sent' must hold \d+ float64 values, got 8 bytes"):
        robot._array(b"\x00" * 8, "sent")
    with pytest.raises(RobotFault, match="bad reply: a reply without 'state'"):
        robot._state(None, 0.0)
