"""The 20 Hz control loop: SimRobot + SafeRobot + a policy-sized numpy MLP, with and without a CPU hog."""

from __future__ import annotations

import argparse

import numpy as np

from pearl_robot.bench.common import cpu_hog, machine
from pearl_robot.control.loop import RateLoop
from pearl_robot.control.realtime import realtime_priority
from pearl_robot.robot.registry import open_robot


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cycles", type=int, default=10_000, help="control cycles per phase (default %(default)s)")
    parser.add_argument("--hardware", default=None, help="hardware YAML (default: the shipped arm)")
    parser.add_argument("--no-hog", action="store_true", help="skip the phase with a CPU hog on the other core")
    parser.add_argument("--no-rt", action="store_true", help="do not ask for SCHED_FIFO real-time priority")


def _policy_mlp(in_dim: int, out_dim: int, hidden: int = 300, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    sizes = [in_dim, hidden, hidden, hidden, out_dim]
    return [(rng.normal(0, 1 / np.sqrt(a), (a, b)), np.zeros(b)) for a, b in zip(sizes[:-1], sizes[1:])]


def _forward(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            np.maximum(x, 0.0, out=x)
    return np.tanh(x)


def run_phase(cycles: int, hardware: str | None, rt: bool) -> dict[str, float]:
    robot = open_robot("sim", hardware)
    with robot, realtime_priority(rt) as granted:
        robot.enable()
        spec = robot.spec
        arm = spec.arm_joint_indices
        layers = _policy_mlp(2 * len(arm) + 6 + 5, len(arm))
        loop = RateLoop(spec.period_s)
        target = robot.read().position.copy()
        z = np.zeros(5)
        goal = np.zeros(6)
        loop.start()
        for _ in range(cycles):
            state = robot.read()
            obs = np.concatenate([state.position[arm], state.velocity[arm], goal, z])
            action = _forward(layers, obs)
            target[arm] = np.clip(target[arm] + 0.01 * action, spec.position_min[arm], spec.position_max[arm])
            target[arm] = spec.home_rad[arm] + 0.2 * np.tanh(target[arm] - spec.home_rad[arm])
            robot.write(target)
            loop.wait()
    return {**loop.stats.summary(), "realtime_priority": granted}


def run(args: argparse.Namespace) -> dict[str, object]:
    result: dict[str, object] = {"benchmark": "loop", "rate_hz": 20, "machine": machine()}
    result["quiet"] = run_phase(args.cycles, args.hardware, not args.no_rt)
    if not args.no_hog:
        with cpu_hog():
            result["hog"] = run_phase(args.cycles, args.hardware, not args.no_rt)
    phases = [result["quiet"]] + ([result["hog"]] if "hog" in result else [])
    result["targets"] = {
        "period_error_p99_ms<=0.5": all(p["period_error_p99_ms"] <= 0.5 for p in phases),
        "period_error_max_ms<=5": all(p["period_error_max_ms"] <= 5 for p in phases),
        "missed_deadlines==0": all(p["missed_deadlines"] == 0 for p in phases),
    }
    return result
