"""`pearl-robot serve` as a real subprocess, driven through `open_robot('tcp://...')`; and `pearl-robot keys`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
from server_helpers import read_serving_line, subprocess_cleanup, targets_near

from pearl_robot.cli.main import main
from pearl_robot.robot.base import Lifecycle
from pearl_robot.robot.registry import open_robot


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pearl_robot.cli.main", "serve", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_serve_subprocess_end_to_end(spec) -> None:
    proc = serve("--robot", "mock", "--bind", "tcp://127.0.0.1:0", "--heartbeat-timeout", "0.5")
    with subprocess_cleanup(proc):
        endpoint = read_serving_line(proc)
        assert endpoint.startswith("tcp://127.0.0.1:") and not endpoint.endswith(":0")
        with open_robot(endpoint, spec) as robot:
            robot.enable()
            target = targets_near(spec, 0.05)
            for _ in range(5):
                sent = robot.write(target)
            np.testing.assert_allclose(sent, target)
            np.testing.assert_allclose(robot.read().position, target, atol=1e-9)
            stats = robot.unwrapped().server_stats()
            assert stats["events"]["writes"] >= 5 and stats["life"] == "active"
        assert robot.lifecycle is Lifecycle.CLOSED
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        out = proc.stdout.read()
        assert "stopped: the arm was disabled" in out and "sessions=1" in out


def test_serve_with_curve_keys_through_the_environment(tmp_path, spec) -> None:
    keys = tmp_path / "keys"
    assert main(["keys", "--out", str(keys)]) == 0  # server + client
    proc = serve(
        "--robot",
        "mock",
        "--bind",
        "tcp://127.0.0.1:*",
        "--server-key",
        str(keys / "server.key_secret"),
        "--allow",
        str(keys),  # a folder: every *.key in it (server.key too, harmlessly)
    )
    with subprocess_cleanup(proc):
        endpoint = read_serving_line(proc)
        env = {
            "PEARL_ROBOT_SERVER_KEY": str(keys / "server.key"),
            "PEARL_ROBOT_CLIENT_KEY": str(keys / "client.key_secret"),
        }
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            with open_robot(endpoint, spec) as robot:
                robot.enable()
                robot.write(targets_near(spec, 0.02))
        finally:
            for key, value in old.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_serve_needs_both_curve_options(tmp_path, capsys) -> None:
    assert main(["keys", "--out", str(tmp_path)]) == 0
    code = main(["serve", "--robot", "mock", "--server-key", str(tmp_path / "server.key_secret")])
    assert code == 2 and "--allow" in capsys.readouterr().err
