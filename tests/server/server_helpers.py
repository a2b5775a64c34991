"""Helpers shared by the server tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import zmq

from pearl_robot.robot.base import Robot
from pearl_robot.robot.mock import MockRobot
from pearl_robot.robot.remote import RemoteRobot
from pearl_robot.robot.spec import RobotSpec
from pearl_robot.server import wire
from pearl_robot.server.server import RobotServer

HEARTBEAT_TIMEOUT_S = 0.4  # short, so that client-loss tests take well under a second


def mock_of(server: RobotServer) -> MockRobot:
    mock = server.robot.unwrapped()
    assert isinstance(mock, MockRobot)
    return mock


def remote_of(robot: Robot) -> RemoteRobot:
    remote = robot.unwrapped()
    assert isinstance(remote, RemoteRobot)
    return remote


def request(sock: zmq.Socket, op: str, seq: int, sid: bytes | None = None, **fields) -> wire.Reply:
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
