"""`pearl-robot bench ray --json`: rollout collection on Ray (env steps/s with 1 and 2 local workers, the
overhead per iteration vs in-process collection, in one run); extra arguments pass through (see
`pearl-robot bench ray --help`)."""

from __future__ import annotations

import sys

from _run import run_benchmark

if __name__ == "__main__":
    run_benchmark("ray", sys.argv[1:])
