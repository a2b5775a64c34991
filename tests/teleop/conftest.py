"""Fixtures of the teleoperation tests: a keyboard source reading the slave side of a real pseudo-terminal
(the test types on the master side), closed with both ends at teardown."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Iterator

import pytest

from pearl_robot.teleop.keyboard import KeyboardSource


class Clock:
    """A clock the test moves (the Esc timeout is read from it)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    """(master, slave) of a real pseudo-terminal, both closed at teardown."""
    master, slave = os.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


@pytest.fixture
def keyboard(terminal) -> Iterator[Callable[..., tuple[KeyboardSource, Callable[[bytes], None]]]]:
    """``keyboard(num_joints=5, start=True, **options)`` -> (source on the pty's slave, type(bytes) on its
    master)."""
    master, slave = terminal
    opened: list[KeyboardSource] = []

    def make(num_joints: int = 5, start: bool = True, **options) -> tuple[KeyboardSource, Callable[[bytes], None]]:
        source = KeyboardSource(num_joints, fd=slave, **options)
        opened.append(source)
        if start:  # cbreak mode now (a session's first poll does it), so that what is typed is readable at once
            source.start()

        def type_keys(data: bytes) -> None:
            os.write(master, data)
            assert select.select([slave], [], [], 2.0)[0], "the pty delivered nothing"
            time.sleep(0.02)  # the line discipline hands over the rest of the write

        return source, type_keys

    yield make
    for source in opened:
        source.close()


@pytest.fixture(scope="session")
def tiny_arm_run(tmp_path_factory):
    """A (barely) trained arm-dynamics run: enough for `pearl-robot adapt`, not for learning (seconds)."""
    import subprocess
    import sys

    from toy_training import TINY

    run = tmp_path_factory.mktemp("runs") / "arm"
    args = [sys.executable, "-m", "pearl_robot.cli.main", "train", "--config", "arm-dynamics-small", "--out", str(run)]
    for item in TINY:
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    return run
