"""Loopback by default; anything else only with CurveZMQ, and then only for the listed client keys."""

from __future__ import annotations

import stat
import time

import pytest
import zmq
from server_helpers import request, targets_near

from pearl_robot.cli.main import main
from pearl_robot.errors import ConfigError, PearlRobotError, RobotFault
from pearl_robot.robot.base import Lifecycle
from pearl_robot.robot.registry import open_robot
from pearl_robot.server import wire
from pearl_robot.server.security import (
    CurveConfig,
    apply_client_curve,
    create_key_pair,
    endpoint_is_local,
    load_key,
)
from pearl_robot.server.server import RobotServer


@pytest.mark.parametrize(
    "endpoint, local",
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.3.4.5:*", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/robot.sock", True),
        ("inproc://robot", True),
        ("tcp://*:5555", False),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://192.168.1.20:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://robot-pi.local:5555", False),
        ("tcp://[::]:5555", False),
        ("udp://127.0.0.1:5555", False),
    ],
)
def test_which_endpoints_count_as_local(endpoint: str, local: bool) -> None:
    assert endpoint_is_local(endpoint) is local


@pytest.mark.parametrize("bind", ["tcp://0.0.0.0:*", "tcp://*:*", "tcp://192.0.2.1:5555", "tcp://eth0:5555"])
def test_off_host_binds_are_refused_without_keys(bind: str) -> None:
    robot = open_robot("mock")
    with pytest.raises(ConfigError, match="CurveZMQ"):
        RobotServer(robot, bind)
    assert robot.lifecycle is Lifecycle.UNCONFIGURED  # refused before touching the robot


def test_serve_refuses_an_off_host_bind_without_keys(capsys) -> None:
    assert main(["serve", "--robot", "mock", "--bind", "tcp://0.0.0.0:0"]) == 1
    err = capsys.readouterr().err
    assert "CurveZMQ" in err and "pearl-robot keys" in err


@pytest.fixture
def keys(tmp_path):
    folder = tmp_path / "keys"
    assert main(["keys", "--out", str(folder), "server", "alice", "mallory"]) == 0
    return folder


def test_keys_are_written_with_private_secrets(keys, capsys) -> None:
    for name in ("server", "alice", "mallory"):
        secret = keys / f"{name}.key_secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert load_key(secret, secret=True).secret is not None
        assert load_key(keys / f"{name}.key", secret=False).secret is None
    with pytest.raises(PearlRobotError, match="exists"):
        create_key_pair(keys, "server")
    with pytest.raises(ConfigError, match="public key"):
        CurveConfig.from_files(keys / "server.key", [keys / "alice.key"])  # the public half is not enough


def curve_server(start_server, keys, bind: str = "tcp://127.0.0.1:*", allowed=("alice",)):
    curve = CurveConfig.from_files(keys / "server.key_secret", [keys / f"{name}.key" for name in allowed])
    return start_server(bind=bind, curve=curve)


def test_a_listed_client_drives_the_arm_over_curve(start_server, connect, keys, spec) -> None:
    server = curve_server(start_server, keys, bind="tcp://0.0.0.0:*")  # off-host bind: allowed with keys
    port = server.endpoints[0].rsplit(":", 1)[1]
    robot = connect(
        f"tcp://127.0.0.1:{port}", safe=True, server_key=keys / "server.key", client_key=keys / "alice.key_secret"
    )
    robot.enable()
    robot.write(targets_near(spec, 0.02))
    assert server.owner.user == load_key(keys / "alice.key", secret=False).public.decode()


def test_an_unlisted_client_is_refused(start_server, connect, keys, spec) -> None:
    server = curve_server(start_server, keys)
    endpoint = server.endpoints[0]
    started = time.monotonic()
    with pytest.raises(RobotFault, match="allow"):
        connect(endpoint, server_key=keys / "server.key", client_key=keys / "mallory.key_secret", connect_timeout_s=5)
    assert time.monotonic() - started < 3.0  # told at once, not after the timeout
    assert server.events["refused_unknown_key"] >= 1
    # a client without keys never gets a session either
    with pytest.raises(RobotFault):
        connect(endpoint, connect_timeout_s=0.5)
    assert server.owner is None and server.events["sessions"] == 0
    # and the server still serves the listed client
    robot = connect(endpoint, server_key=keys / "server.key", client_key=keys / "alice.key_secret")
    robot.enable()
    assert server.robot.lifecycle is Lifecycle.ACTIVE


def test_a_client_with_the_wrong_server_key_never_connects(start_server, connect, keys) -> None:
    server = curve_server(start_server, keys)
    with pytest.raises(RobotFault):
        connect(
            server.endpoints[0],
            server_key=keys / "mallory.key",
            client_key=keys / "alice.key_secret",
            connect_timeout_s=0.5,
        )
    assert server.owner is None


def test_a_session_cannot_be_used_from_another_key(start_server, connect, keys, raw_socket) -> None:
    server = curve_server(start_server, keys, allowed=("alice", "mallory"))
    alice = connect(server.endpoints[0], server_key=keys / "server.key", client_key=keys / "alice.key_secret")
    alice.enable()
    mallory = load_key(keys / "mallory.key_secret", secret=True)
    server_public = load_key(keys / "server.key", secret=False).public
    sock = raw_socket(server.endpoints[0], setup=lambda s: apply_client_curve(s, server_public, mallory))
    reply = request(sock, "disable", 1, alice.unwrapped()._sid)
    assert reply.err == wire.UNAUTHORIZED
    assert server.robot.lifecycle is Lifecycle.ACTIVE


def test_curve_applies_to_every_socket_type(start_server, keys, raw_socket) -> None:
    """A plain (NULL-security) REQ socket gets no answer from a CURVE server; the server survives."""
    server = curve_server(start_server, keys)
    sock = raw_socket(server.endpoints[0], zmq.REQ)
    sock.setsockopt(zmq.RCVTIMEO, 300)
    sock.send(wire.encode_request("hello", 1, time.monotonic()))
    with pytest.raises(zmq.Again):
        sock.recv()
    assert server.running and server.events["sessions"] == 0
