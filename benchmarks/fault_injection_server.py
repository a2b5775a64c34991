"""Fault injection on the robot server (`pearl-robot serve`); prints one JSON object.

    .venv/bin/python benchmarks/fault_injection_server.py [--flood-s 4] [--trials 3]

Scenarios (``pearl_robot.bench.server_faults``, every process pinned to the same two cores):

- ``flood``: the owner drives the arm at 20 Hz through RemoteRobot while one local process floods the
  loopback port with garbage from four sockets (random bytes, made-up sessions, hellos, frames over the
  wire's and the transport's limits), ``--trials`` times ``--flood-s`` seconds: owner writes expired,
  owner round trips, server memory growth;
- ``flood_heavy``: the same with two flooding processes of eight sockets each (reported, no goal);
- ``skewed_clock``: one ping with ``t`` 0.95 s ahead, one write of the client's own 0.95 s ahead and one ping
  0.95 s behind, each followed by 40 honest writes: how many of those are expired.

Goals: owner writes expired under the flood <= 1%, owner round trip p99 <= 10 ms, 0 writes expired after a
skewed message. Exits 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import sys

from pearl_robot.bench.server_faults import run_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flood-s", type=float, default=4.0, help="seconds per flood (default %(default)s)")
    parser.add_argument("--trials", type=int, default=3, help="floods in a row (default %(default)s)")
    args = parser.parse_args()
    result = run_all(flood_s=args.flood_s, trials=args.trials)
    print(json.dumps(result))
    return 0 if all(result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
