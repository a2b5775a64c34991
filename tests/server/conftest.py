"""Fixtures that start real RobotServers (tcp on 127.0.0.1 with an OS-chosen port, or ipc in tmp_path)
and real RemoteRobot clients, and stop every one of them in teardown."""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import zmq

from pearl_robot.robot.base import Robot
from pearl_robot.robot.mock import MockRobot
from pearl_robot.robot.registry import open_robot
from pearl_robot.robot.remote import RemoteRobot
from pearl_robot.robot.spec import RobotSpec, load_spec
from pearl_robot.server import wire
from pearl_robot.server.server import RobotServer

HEARTBEAT_TIMEOUT_S = 0.4  # short, so that client-loss tests take well under a second


@pytest.fixture(params=["tcp", "ipc"])
def transport(request) -> str:
    return request.param


@pytest.fixture
def spec() -> RobotSpec:
    return load_spec()


@pytest.fixture
def bind_address(tmp_path) -> Callable[[str], str]:
    counter = iter(range(1000))

    def make(transport: str) -> str:
        if transport == "tcp":
            return "tcp://127.0.0.1:*"
        return f"ipc://{tmp_path}/robot{next(counter)}.sock"

    return make


@pytest.fixture
def start_server(bind_address) -> Iterator[Callable[..., RobotServer]]:
    """start_server(transport='tcp', robot=None, bind=None, **RobotServer options) -> a running server
    (default robot: a SafeRobot-wrapped MockRobot, as `pearl-robot serve --robot mock` builds)."""
    started: list[tuple[RobotServer, Robot]] = []

    def start(transport: str = "tcp", robot: Robot | None = None, bind: str | None = None, **options) -> RobotServer:
        robot = robot if robot is not None else open_robot("mock")
        options.setdefault("heartbeat_timeout_s", HEARTBEAT_TIMEOUT_S)
        server = RobotServer(robot, bind or bind_address(transport), **options)
        started.append((server, robot))
        return server.start()

    yield start
    for server, robot in reversed(started):
        server.close()
        robot.close()
        assert not server.running


@pytest.fixture
def connect(spec) -> Iterator[Callable[..., Robot]]:
    """connect(endpoint, safe=False, **RemoteRobot options) -> a connected client robot, closed in teardown."""
    clients: list[Robot] = []

    def make(endpoint: str, *, safe: bool = False, hardware: RobotSpec | None = None, **options) -> Robot:
        options.setdefault("connect_timeout_s", 2.0)
        robot = open_robot(endpoint, hardware or spec, safe=safe, **options)
        clients.append(robot)
        robot.connect()
        return robot

    yield make
    for robot in reversed(clients):
        robot.close()


@pytest.fixture
def raw_socket() -> Iterator[Callable[[str], zmq.Socket]]:
    """raw_socket(endpoint, kind=zmq.DEALER) -> a bare pyzmq socket to send hand-made frames with."""
    context = zmq.Context()
    sockets: list[zmq.Socket] = []

    def make(endpoint: str, kind: int = zmq.DEALER, setup: Callable[[zmq.Socket], None] | None = None) -> zmq.Socket:
        sock = context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 2000)
        if setup is not None:
            setup(sock)
        sock.connect(endpoint)
        sockets.append(sock)
        return sock

    yield make
    for sock in sockets:
        sock.close(linger=0)
    context.term()


def mock_of(server: RobotServer) -> MockRobot:
    mock = server.robot.unwrapped()
    assert isinstance(mock, MockRobot)
    return mock


def remote_of(robot: Robot) -> RemoteRobot:
    remote = robot.unwrapped()
    assert isinstance(remote, RemoteRobot)
    return remote


def request(sock: zmq.Socket, op: str, seq: int, sid: bytes | None = None, **fields) -> dict:
    """One hand-made request on a raw socket; returns the decoded reply."""
    sock.send(wire.encode_request(op, seq, time.monotonic(), sid, **fields))
    return wire.decode_reply(sock.recv())


def wait_for(condition: Callable[[], bool], timeout_s: float = 3.0, interval_s: float = 0.002) -> float:
    """Poll until ``condition()``; returns the time it took. Fails the test on timeout."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)
    return time.monotonic() - start


def read_serving_line(proc: subprocess.Popen, timeout_s: float = 20.0) -> str:
    """The endpoint from `pearl-robot serve`'s 'serving ... on ENDPOINT [...]' line."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}: {proc.stderr.read()}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("serving"):
                return line.split(" on ", 1)[1].split()[0]
    raise AssertionError("serve printed no 'serving' line")


@contextlib.contextmanager
def subprocess_cleanup(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr, proc.stdin):
            if stream is not None:
                stream.close()


def python_command(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def targets_near(spec: RobotSpec, offset: float) -> np.ndarray:
    return np.clip(spec.home_rad + offset, spec.position_min, spec.position_max)
