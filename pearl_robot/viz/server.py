"""A Rerun server in a child process: the ``serve`` mode's gRPC proxy and web viewer, bound to loopback.

Why a child and not ``RecordingStream.serve_grpc``: the SDK's in-process server binds every interface
(0.0.0.0, no option to narrow it) and keeps its buffer for late viewers in the control process. The
``rerun`` binary takes ``--bind 127.0.0.1`` and ``--server-memory-limit``, and its memory is its own.
Reach it from another machine through an SSH tunnel (``ssh -L PORT:127.0.0.1:PORT robot-host``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from pearl_robot.errors import PearlRobotError

HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0


def rerun_binary() -> str:
    """The ``rerun`` executable shipped with rerun-sdk (the one in bin/ is a Python wrapper around it)."""
    try:
        import rerun_cli
    except ImportError:
        rerun_cli = None
    if rerun_cli is not None:
        exe = Path(rerun_cli.__file__).parent / ("rerun.exe" if sys.platform.startswith("win") else "rerun")
        if exe.exists():
            return str(exe)
    found = shutil.which("rerun")
    if found is None:
        raise PearlRobotError("the rerun viewer binary was not found (reinstall rerun-sdk)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def grpc_url(port: int) -> str:
    return f"rerun+http://{HOST}:{port}/proxy"


class RerunServer:
    """``rerun --serve-web`` (or ``--serve-grpc`` without a web port) on loopback; ``stop()`` ends it."""

    def __init__(self, memory_limit: str, web_port: int | None = 9090, grpc_port: int | None = None) -> None:
        self.memory_limit = memory_limit
        self.grpc_port = grpc_port or free_port()
        self.web_port = web_port
        self._process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - the child's output, kept as long as it runs

    @property
    def grpc_url(self) -> str:
        return grpc_url(self.grpc_port)

    @property
    def web_url(self) -> str | None:
        if self.web_port is None:
            return None
        return f"http://{HOST}:{self.web_port}/?url={quote(self.grpc_url, safe='')}"

    def start(self) -> RerunServer:
        ports = [self.grpc_port] + ([] if self.web_port is None else [self.web_port])
        for port in ports:
            if _listening(port):
                raise PearlRobotError(f"--viz serve: port {port} on {HOST} is taken; choose another (serve:PORT)")
        args = [rerun_binary(), "--bind", HOST, "--port", str(self.grpc_port)]
        args += ["--server-memory-limit", self.memory_limit]
        if self.web_port is None:
            args.append("--serve-grpc")
        else:
            args += ["--serve-web", "--web-viewer-port", str(self.web_port)]
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=_quiet_env(),
            preexec_fn=_detach_but_die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(_listening(port) for port in ports):
            if self._process.poll() is not None:
                raise PearlRobotError(f"--viz serve: the rerun server exited: {self._last_line()}")
            if time.monotonic() > deadline:
                self.stop()
                raise PearlRobotError(f"--viz serve: the rerun server did not listen within {START_TIMEOUT_S:g} s")
            time.sleep(0.05)
        return self

    def _last_line(self) -> str:
        self._log.seek(0)
        lines = [line for line in self._log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else "no output"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        with contextlib.suppress(OSError):
            self._log.close()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((HOST, port)) == 0


def _detach_but_die_with_parent() -> None:
    """In the child: its own session, so the operator's Ctrl-C stops the arm, not the view of it; and on
    Linux, SIGTERM when this process dies, so a crashed session leaves no server holding the ports."""
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _quiet_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    return env
