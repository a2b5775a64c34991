"""`pearl-robot bench zmq --json`: RemoteRobot round trip vs raw pyzmq REQ/REP, and the watchdog hold.

Prints the JSON object; its ``targets`` block says which of the issue's targets this run met:
link p50 <= 1.5x and p99 <= 2x the raw round trip, RemoteRobot p99 <= 1 ms, watchdog hold within 2 periods
(plus 2 ms of server wake-up). Extra arguments pass through (see `pearl-robot bench zmq --help`), e.g. --transport ipc.
Exits 1 when a target is missed.
"""

import sys

from _run import run_benchmark

if __name__ == "__main__":
    result = run_benchmark("zmq")
    sys.exit(0 if all(result["targets"].values()) else 1)
