"""Every refusal reaches the client as the refusal, in one line naming the server's reason, and the server
logs it; teleport stays inside the joint limits; a busy server names no owner."""

from __future__ import annotations

import logging
import signal
import threading
import time

import numpy as np
import pytest
import zmq
from server_helpers import mock_of, read_serving_line, remote_of, request, subprocess_cleanup
from test_serve_cli import serve

from pearl_robot.errors import LifecycleError, RobotFault
from pearl_robot.robot.base import Lifecycle
from pearl_robot.robot.mock import REST_MARGIN_RAD, MockRobot
from pearl_robot.robot.registry import open_robot
from pearl_robot.robot.remote import RemoteRobot
from pearl_robot.robot.sim import TELEPORT_SLACK_RAD, SimRobot
from pearl_robot.server import wire
from pearl_robot.server.ratelog import RateLimitedLog

SERVER_LOG = "pearl_robot.server.server"


def test_an_uncalibrated_arm_behind_serve_says_why(tmp_path, spec) -> None:
    """The issue's case: adapting through `serve` on an arm without calibration. The client hears the
    server's reason at once (not 'robot server lost' after 500 ms), and the server's log says it too."""
    proc = serve("--robot", "mock", "--calibration", str(tmp_path / "missing.yaml"), "--bind", "tcp://127.0.0.1:0")
    with subprocess_cleanup(proc):
        endpoint = read_serving_line(proc)
        with open_robot(endpoint, spec) as robot:
            started = time.monotonic()
            with pytest.raises(RobotFault) as info:
                robot.enable()
            assert time.monotonic() - started < 0.4
            message = str(info.value)
            assert "refused enable" in message and "not calibrated" in message and "calibrate joints" in message
            assert "\n" not in message and "lost" not in message
            assert robot.lifecycle is Lifecycle.INACTIVE and remote_of(robot).events["server_lost"] == 0
            # teleport over the wire is bounded by the served arm's joint limits
            with pytest.raises(ValueError, match="joint1 = 50.000 rad is outside its limits"):
                robot.teleport(np.full(spec.num_joints, 50.0))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        log = proc.stderr.read()
    assert "robot server: refused enable from client" in log and "(fault)" in log and "not calibrated" in log
    assert "refused teleport from client" in log and "(invalid)" in log


def test_a_refusal_from_the_robot_carries_the_request_seq(start_server, connect, raw_socket, spec, caplog) -> None:
    server = start_server()
    robot = remote_of(connect(server.endpoints[0]))
    sock = raw_socket(server.endpoints[0])
    with caplog.at_level(logging.WARNING, logger=SERVER_LOG):
        reply = request(sock, "write", 77, robot._sid, q=wire.encode_array(spec.home_rad), ttl=0.05)
    assert (reply.seq, reply.err) == (77, wire.LIFECYCLE)
    assert any("refused write from client" in m and "(lifecycle)" in m for m in caplog.messages)
    with pytest.raises(LifecycleError, match="refused unless ACTIVE"):  # RemoteRobot: the robot's own error type
        robot._call("write", {"q": wire.encode_array(spec.home_rad), "ttl": 0.05})


class SeqlessServer:
    """A hand-made ROUTER that opens a session, answers pings, and refuses any other op with seq nil (as a
    server does when it cannot read a request's seq)."""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self) -> None:
        spec = self.spec
        served = {"robot_id": spec.robot_id, "joints": list(spec.joint_names), "rate_hz": spec.control_rate_hz}
        while not self.stop.is_set():
            if not self.router.poll(20):
                continue
            peer, frame = self.router.recv_multipart()
            message = wire.decode_request(frame, spec.num_joints)
            if message.op == "hello":
                reply = wire.encode_reply(message.seq, sid=b"s" * 16, spec=served, life="inactive")
            elif message.op in ("ping", "bye"):
                reply = wire.encode_reply(message.seq, life="inactive")
            else:
                reply = wire.encode_error(None, wire.OVERSIZED, "message of 9000 bytes exceeds\nthe limit")
            self.router.send_multipart([peer, reply])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.router.close(linger=0)
        self.context.term()


def test_a_refusal_without_a_seq_still_answers_the_request(spec) -> None:
    """The client raises that refusal, in one line, instead of waiting for a reply that never comes."""
    server = SeqlessServer(spec)
    robot = RemoteRobot(spec, f"tcp://127.0.0.1:{server.port}", connect_timeout_s=2.0)
    try:
        robot.connect()
        started = time.monotonic()
        with pytest.raises(RobotFault, match=r"refused read \(oversized\): message of 9000 bytes exceeds$"):
            robot.read()
        assert time.monotonic() - started < 0.4
        assert robot.events["server_lost"] == 0 and robot.lifecycle is Lifecycle.INACTIVE
    finally:
        robot.close()
        server.close()


def test_teleport_is_bounded_by_the_joint_limits(spec) -> None:
    far = spec.home_rad.copy()
    far[0] = 50.0
    sim = SimRobot(spec)
    with pytest.raises(ValueError, match="joint1 = 50.000 rad is outside its limits"):
        sim.teleport(far)
    sim.teleport(spec.position_max)  # the limits themselves are fine
    beyond = spec.position_max.copy()
    beyond[3] += TELEPORT_SLACK_RAD + 0.01
    with pytest.raises(ValueError, match="joint4"):
        sim.teleport(beyond)
    np.testing.assert_allclose(sim.data.qpos[sim._qpos], spec.position_max, atol=1e-9)  # refused: nothing moved

    mock = MockRobot(spec)
    with pytest.raises(ValueError, match="joint1"):
        mock.teleport(far)
    resting = spec.home_rad.copy()
    resting[3] = spec.position_max[3] + REST_MARGIN_RAD - 0.01  # an arm left resting just past a limit
    mock.teleport(resting)
    np.testing.assert_array_equal(mock.position, resting)
    for bad in (np.full(spec.num_joints, np.nan), np.zeros(spec.num_joints + 1)):
        with pytest.raises(ValueError, match="finite joint positions"):
            mock.teleport(bad)


def test_teleport_outside_the_limits_is_refused_over_the_wire(start_server, connect, raw_socket, spec) -> None:
    server = start_server()
    robot = remote_of(connect(server.endpoints[0]))
    mock = mock_of(server)
    before = mock.position.copy()
    sock = raw_socket(server.endpoints[0])
    reply = request(sock, "teleport", 9, robot._sid, q=wire.encode_array(np.full(spec.num_joints, 50.0)))
    assert (reply.seq, reply.err) == (9, wire.INVALID) and "outside its limits" in reply.msg
    np.testing.assert_array_equal(mock.position, before)
    assert server.events["refused_invalid"] == 1


def test_a_busy_server_names_no_owner(start_server, connect, raw_socket, caplog) -> None:
    server = start_server()
    connect(server.endpoints[0], client_name="alice-lab-pc")
    sock = raw_socket(server.endpoints[0])
    with caplog.at_level(logging.WARNING, logger=SERVER_LOG):
        reply = request(sock, "hello", 1, client="mallory")
    assert reply.err == wire.BUSY and "alice" not in reply.msg and "in use" in reply.msg
    # the operator's log may say who holds the arm
    assert any("'mallory'" in m and "alice-lab-pc" in m for m in caplog.messages)


def test_refusal_lines_are_rate_limited(caplog) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("test.ratelog"), interval_s=2.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.ratelog"):
        for _ in range(1000):
            limited.warning("malformed", "refused %s", "junk")
        limited.warning("busy", "refused hello")
        now[0] = 2.5
        limited.warning("malformed", "refused %s", "junk")
    assert caplog.messages == [
        "refused junk",
        "refused hello",
        "refused junk (999 more like it since the last such line)",
    ]


def test_remote_counters_reach_the_safety_layers_events():
    """The session table reads ``robot.events`` (SafeRobot's): RemoteRobot's own counters are in it."""
    from pearl_robot import open_robot
    from pearl_robot.robot.remote import RemoteRobot

    robot = open_robot("tcp://127.0.0.1:9")  # never connected: the counters are shared at construction
    backend = robot.unwrapped()
    assert isinstance(backend, RemoteRobot)
    backend.events["command_expired"] += 2
    assert robot.events["command_expired"] == 2
