"""Fixtures that start real RobotServers (tcp on 127.0.0.1 with an OS-chosen port, or ipc in tmp_path)
and real RemoteRobot clients, and stop every one of them in teardown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import zmq
from server_helpers import HEARTBEAT_TIMEOUT_S

from pearl_robot.robot.base import Robot
from pearl_robot.robot.registry import open_robot
from pearl_robot.robot.spec import RobotSpec, load_spec
from pearl_robot.server.server import RobotServer


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Every server loop, heartbeat and watchdog thread a test starts is stopped by its teardown."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        left = [t for t in set(threading.enumerate()) - before if t.is_alive() and t.name.startswith("pearl-robot")]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not left, f"threads left running: {[t.name for t in left]}"


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
