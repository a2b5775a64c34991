"""The README's "From simulation to your arm", run command by command as the README prints it.

The commands are read from the README itself, so the walkthrough cannot drift from what is tested.
Only these substitutions are made, each because CI cannot do otherwise:
- `pearl-robot train` gets a toy budget (`--set` items appended): minutes of training, not an hour;
- `/tmp/arm` becomes a path in the test's folder and the ZeroMQ port 5555 a free port;
- everything runs in a fresh folder with PEARL_ROBOT_HOME pointing at a copy of hardware/ and sim/, so
  that the calibration the walkthrough writes lands there and not in the repository.
Commands that end in `&` run in the background (the virtual arm, the robot server) and are stopped at
the end, as a user would with Ctrl-C.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from toy_training import TINY

REPO = Path(__file__).resolve().parents[2]
SECTION = "## From simulation to your arm"

pytestmark = pytest.mark.timeout(900)


def walkthrough_commands(readme: str) -> list[str]:
    """The `pearl-robot ...` lines of the section's code blocks, comments stripped, in order."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    commands = []
    for line in readme[start : end if end > 0 else None].splitlines():
        if not line.startswith("    pearl-robot "):
            continue
        commands.append(re.sub(r"\s+#\s.*$", "", line).strip())
    return commands


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def for_ci(command: str, folder: Path, port: int) -> list[str]:
    command = command.replace("/tmp/arm", str(folder / "arm")).replace("5555", str(port))
    argv = shlex.split(command.removesuffix("&").strip())
    if argv[1] == "train":
        argv += [arg for item in TINY for arg in ("--set", item)]
    return [str(Path(sys.executable).parent / "pearl-robot"), *argv[1:]]


def wait_for_link(path: Path, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, f"nothing listens on port {port}"
        time.sleep(0.1)


def test_the_readme_walkthrough_runs_as_printed(tmp_path):
    commands = walkthrough_commands((REPO / "README.md").read_text())
    verbs = [shlex.split(c)[1] for c in commands]
    for needed in ("train", "virtual-bus", "doctor", "calibrate", "adapt", "serve", "replay"):
        assert needed in verbs, f"the walkthrough has no `pearl-robot {needed}`"
    home = tmp_path / "home"
    for folder in ("hardware", "sim"):
        shutil.copytree(REPO / folder, home / folder)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "CI": "true", "PEARL_ROBOT_HOME": str(home), "MPLBACKEND": "Agg"}
    port = free_port()
    background: list[subprocess.Popen] = []
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        for k, command in enumerate(commands):
            argv = for_ci(command, tmp_path, port)
            log = (logs / f"{k:02d}-{argv[1]}.log").open("w")
            if command.endswith("&"):
                proc = subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
                background.append(proc)
                if argv[1] == "virtual-bus":
                    wait_for_link(tmp_path / "arm", proc)
                elif argv[1] == "serve":
                    wait_for_port(port, proc)
                continue
            started = time.monotonic()
            result = subprocess.run(argv, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600)
            log.close()
            output = (logs / f"{k:02d}-{argv[1]}.log").read_text()
            print(f"[{time.monotonic() - started:5.1f} s] {command}")
            assert result.returncode == 0, f"`{command}` exited with {result.returncode}:\n{output[-3000:]}"
    finally:
        for proc in reversed(background):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
    assert (home / "calibration" / "openmanipulator_x.yaml").exists()
    for session in ("s1", "s2"):
        assert (work / "sessions" / session / "session.hdf5").exists()
