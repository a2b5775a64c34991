"""`pearl-robot bench adapt --json`: adaptation on held-out arm dynamics, return per episode for PEARL
(posterior sampling), the same policy at z from the prior, multi-task SAC without context and an oracle
trained on that exact task; ``fraction_of_oracle`` per episode and the targets (>= 0.9 of the oracle by
episode 3; clearly above the prior z and the multi-task SAC). Long: it trains three runs at the
arm-dynamics-medium budget (about 2.5 hours on one core here; runs in ``--out`` are reused or resumed).
Not in run_all.py for that reason; extra arguments pass through (see `pearl-robot bench adapt --help`)."""

from __future__ import annotations

import sys

from _run import run_benchmark

if __name__ == "__main__":
    run_benchmark("adapt", sys.argv[1:])
