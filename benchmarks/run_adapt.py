"""`pearl-robot bench adapt --json`: adaptation on held-out arms of the arm-fleet family against honest
baselines, per seed (3 by default, each its own split and runs): PEARL by posterior sampling and at z from
the prior, domain-randomised SAC (no context), an RL oracle observing the arm's parameters, the best single
scripted controller (tuned on the training arms only), a scripted controller tuned per held-out arm (the
classical oracle) and random actions. Reports per episode the return, the share of the DR-SAC -> best
oracle gap PEARL closes and PEARL minus the best single scripted controller (paired on goal sequences),
mean and standard error over seeds, the adaptation value and the targets; writes OUT/bench_adapt.json and
OUT/bench_adapt.png. Long: nine training runs at the arm-fleet-medium budget (72k gradient steps, about 30
minutes each on one core here, two at a time with the default --jobs 2: about 140 minutes on 2 cores; the
committed results and their commands: benchmarks/results/README.md); runs in OUT/seed-S/<method> are reused
when finished, resumed when interrupted and continued when num_iterations grows, so it can be spread over
several invocations. Not in run_all.py for that reason; extra arguments pass through (see `pearl-robot bench adapt
--help`)."""

from __future__ import annotations

import sys

from _run import run_benchmark

if __name__ == "__main__":
    run_benchmark("adapt", sys.argv[1:])
