"""The devices ``bench serial`` talks to besides the virtual bus: processes that serve a pty.

``echo_device(request, replies)``: a pty whose far end answers every occurrence of the ``request``
bytes with the next of ``replies`` (in turn) and ignores everything else, with no protocol work: the
raw baseline (replies of the right size) and the instant device (valid status packets). It matches
the request's bytes rather than counting them, so a retry or a dropped byte cannot shift it.
"""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from collections.abc import Sequence

from pearl_robot.errors import PearlRobotError

# Prints its pty's path, then answers until SIGTERM. argv: request hex, replies (comma-separated hex).
ECHO_SCRIPT = """
import os, select, signal, sys, tty
request = bytes.fromhex(sys.argv[1])
replies = [bytes.fromhex(r) for r in sys.argv[2].split(",")]
master, slave = os.openpty()
tty.setraw(slave)
print(os.ttyname(slave), flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
pending = bytearray()
answered = 0
while True:
    select.select([master], [], [])
    pending += os.read(master, 65536)
    while (at := pending.find(request)) >= 0:
        os.write(master, replies[answered % len(replies)])
        answered += 1
        del pending[: at + len(request)]
    del pending[: max(0, len(pending) - len(request) + 1)]
"""


class Device:
    """A child process that serves a pty and prints its path on the first line."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30.0)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line:
            self.close()
            raise PearlRobotError(f"device process {argv[:4]} did not print its path")
        self.path = line

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def echo_device(request: bytes, replies: Sequence[bytes]) -> Device:
    return Device([sys.executable, "-c", ECHO_SCRIPT, request.hex(), ",".join(r.hex() for r in replies)])


def virtual_bus_device(hardware: str | None, *options: str) -> Device:
    """``pearl-robot virtual-bus`` as its own process, as hardware would be."""
    argv = [sys.executable, "-m", "pearl_robot.cli.main", "virtual-bus", *options]
    if hardware:
        argv += ["--hardware", str(hardware)]
    return Device(argv)
