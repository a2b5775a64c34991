"""Rollout collection on Ray: env steps/s with 1 and 2 local workers vs in process, and the overhead per iteration.

One iteration's collection jobs (``MetaTrainer.collection_jobs``: ``num_tasks_sample`` task visits with their
prior / posterior / extra blocks, from the config's shipped settings) are run, with the same weights, by the
in-process collector and by RayCollectors of 1 and 2 workers on a local Ray instance, in turn for
``--rounds`` rounds; each figure is the median over rounds. Every Ray round sends the weights anew, as a
training iteration does. ``overhead_s_per_iteration`` is the 1-worker time minus the in-process time (the
same work, one process away: weights out, jobs out, trajectories back); ``speedup_ratio`` is the 2-worker
throughput over the 1-worker one. The data of every collector are checked to be identical
(``identical_data``). Start-up costs (Ray itself, the workers) are reported apart, once.

The local Ray instance gets 3 logical CPUs (the 1- and the 2-worker collector both stay up, so their rounds
interleave; only the collector being timed is busy). On a machine with 2 cores, as here, 2 workers and the
driver share them: 2 workers cannot reach twice the throughput of one.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="cheetah-vel-small", help="a shipped config or YAML (default: %(default)s)")
    parser.add_argument(
        "--tasks", type=int, default=8, help="task visits per iteration (num_tasks_sample; default: %(default)s)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed iterations per collector (default: %(default)s)")
    parser.add_argument(
        "--workers", default="1,2", help="worker counts to time, comma-separated (default: %(default)s)"
    )
    parser.add_argument("--ray-address", help="an existing Ray cluster instead of a local instance")


def _same(a: list, b: list) -> bool:
    for ra, rb in zip(a, b, strict=True):
        if ra.job != rb.job:
            return False
        for ba, bb in zip(ra.blocks, rb.blocks, strict=True):
            if ba.context_sizes != bb.context_sizes or len(ba.paths) != len(bb.paths):
                return False
            if not all(np.array_equal(pa.rows, pb.rows) for pa, pb in zip(ba.paths, bb.paths)):
                return False
    return True


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pearl_robot.bench.common import machine
    from pearl_robot.distributed import connect, require_ray
    from pearl_robot.distributed.collector import RayCollector
    from pearl_robot.pearl.collector import InProcessCollector
    from pearl_robot.pearl.config import load_config
    from pearl_robot.pearl.trainer import MetaTrainer

    ray = require_ray()
    counts = [int(w) for w in str(args.workers).split(",") if w.strip()]
    cfg = load_config(
        args.config, ["tensorboard=false", "torch_threads=1", f"num_tasks_sample={args.tasks}", "device=cpu"]
    )
    trainer = MetaTrainer(cfg)
    trainer.iteration = 1  # the per-iteration jobs (iteration 0 adds the initial data of every train task)
    jobs = trainer.collection_jobs()
    agent = trainer.numpy_agent()
    in_process = InProcessCollector(trainer.runner)
    reference = in_process.collect(jobs, agent)  # also warms up the environments
    env_steps = sum(r.env_steps for r in reference)

    t0 = time.perf_counter()
    owns = connect(args.ray_address, num_cpus=1 + max(counts))
    ray_init_s = time.perf_counter() - t0
    collectors: dict[int, Any] = {}
    start_s: dict[str, float] = {}
    identical = True
    times: dict[str, list[float]] = {"in_process": []}
    try:
        for n in counts:
            t0 = time.perf_counter()
            collectors[n] = RayCollector(cfg, trainer.family, n)
            start_s[f"workers_{n}"] = time.perf_counter() - t0
            identical &= _same(reference, collectors[n].collect(jobs, agent))  # warm-up round
            times[f"workers_{n}"] = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            in_process.collect(jobs, agent)
            times["in_process"].append(time.perf_counter() - t0)
            for n, collector in collectors.items():
                t0 = time.perf_counter()
                results = collector.collect(jobs, agent)
                times[f"workers_{n}"].append(time.perf_counter() - t0)
                identical &= _same(reference, results)
    finally:
        for collector in collectors.values():
            collector.close()
        if owns:
            ray.shutdown()

    def figures(samples: list[float]) -> dict[str, float]:
        s = statistics.median(samples)
        return {"s_per_iteration": s, "steps_per_s": env_steps / s, "s_per_iteration_min": min(samples)}

    base = figures(times["in_process"])
    result: dict[str, Any] = {
        "benchmark": "ray",
        "config": args.config,
        "family": cfg.family,
        "machine": machine(),
        "ray_version": ray.__version__,
        "jobs_per_iteration": len(jobs),
        "env_steps_per_iteration": env_steps,
        "rounds": args.rounds,
        "in_process": base,
    }
    for n in counts:
        f = figures(times[f"workers_{n}"])
        f["overhead_s_per_iteration"] = f["s_per_iteration"] - base["s_per_iteration"]
        f["ratio_vs_in_process"] = f["steps_per_s"] / base["steps_per_s"]
        f["start_s"] = start_s[f"workers_{n}"]
        result[f"workers_{n}"] = f
    if 1 in counts:
        result["overhead_s_per_iteration"] = result["workers_1"]["overhead_s_per_iteration"]
        if 2 in counts:
            result["speedup_ratio"] = result["workers_2"]["steps_per_s"] / result["workers_1"]["steps_per_s"]
    best = max(counts)
    result["ratio"] = result[f"workers_{best}"]["ratio_vs_in_process"]  # the most workers vs in process
    result["ray_init_s"] = ray_init_s
    result["identical_data"] = bool(identical)
    return result
