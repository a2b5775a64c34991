"""The 20 Hz control loop: SimRobot + SafeRobot + a policy-sized numpy MLP, with and without a CPU hog.

Each phase alternates blocks of the loop and of an idle loop (the same RateLoop at the same period with
no work: the host's own scheduling noise, measured in the same run), so the loop's worst period error
can be told apart from the host's: ``period_error_max_vs_host_noise`` near 1 or below, the host; well
above, the loop (both floored at 0.05 ms, below which neither matters at 20 Hz). Both run as an
adaptation episode does: SCHED_FIFO where permitted, the garbage collector frozen and memory locked
where permitted (``realtime_episode``). The default run takes about a minute (``--seconds``);
``--long`` is 10,000 control cycles per phase.

``--viz MODE`` (e.g. ``save:loop.rrd``) adds a third block to each turn: the same loop with live telemetry
(``Telemetry.on_step`` after each write, inside the period, as in an adaptation session), so
``period_error_p99_ms_telemetry`` stands beside ``period_error_p99_ms`` from the same run, with the cost of
the telemetry call itself (``telemetry_call_p99_ms``).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable

import numpy as np

from pearl_robot.bench.common import cpu_hog, machine
from pearl_robot.bench.progress import Progress
from pearl_robot.control.loop import RateLoop
from pearl_robot.control.realtime import (
    add_cpu_argument,
    cpu_affinity,
    pin_cpus,
    realtime_episode,
    realtime_priority,
)
from pearl_robot.robot.registry import open_robot
from pearl_robot.robot.spec import load_spec
from pearl_robot.viz.sink import Telemetry, add_viz_arguments, open_telemetry, parse_viz, require_viz

LONG_CYCLES = 10_000
BLOCK_S = 2.0  # the loop and the idle loop take turns in blocks this long
# errors under this count as this much in the ratio: below it neither matters to a 20 Hz loop, and a ratio
# of two microsecond figures would compare clock jitter
RATIO_FLOOR_MS = 0.05


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="about how long the whole run takes (default %(default)s s)"
    )
    parser.add_argument(
        "--long", action="store_true", help=f"the long run: {LONG_CYCLES:,} control cycles per phase (~35 min)"
    )
    parser.add_argument(
        "--cycles", type=int, default=None, help="control cycles per phase (default: from --seconds or --long)"
    )
    parser.add_argument("--hardware", default=None, help="hardware YAML (default: the shipped arm)")
    parser.add_argument("--no-hog", action="store_true", help="skip the phase with a CPU hog on the other core")
    parser.add_argument("--no-rt", action="store_true", help="do not ask for SCHED_FIFO real-time priority")
    add_cpu_argument(parser)
    add_viz_arguments(parser)


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


def run_phase(
    cycles: int,
    hardware: str | None,
    rt: bool,
    on_block: Callable[[float, str], None] | None = None,
    telemetry: Telemetry | None = None,
) -> dict[str, object]:
    """``cycles`` control cycles and as many idle ones, in alternating blocks; ``on_block(seconds, what)``
    after each block (between measurements: a progress line costs neither of them). With ``telemetry``,
    as many cycles again of the loop with telemetry, in a third block of each turn."""
    on_block = on_block or (lambda seconds, what: None)
    robot = open_robot("sim", hardware)
    with robot, realtime_priority(rt) as granted:
        robot.enable()
        spec = robot.spec
        arm = spec.arm_joint_indices
        layers = _policy_mlp(2 * len(arm) + 6 + 5, len(arm))
        loop, idle, viz_loop = RateLoop(spec.period_s), RateLoop(spec.period_s), RateLoop(spec.period_s)
        target = robot.read().position.copy()
        z = np.zeros(5)
        goal = np.zeros(6)
        block = max(1, round(BLOCK_S / spec.period_s))
        calls_s: list[float] = []

        def run_block(n: int, rate: RateLoop, sink: Telemetry | None) -> None:
            rate.start()
            for i in range(n):
                state = robot.read()
                obs = np.concatenate([state.position[arm], state.velocity[arm], goal, z])
                action = _forward(layers, obs)
                target[arm] = np.clip(target[arm] + 0.01 * action, spec.position_min[arm], spec.position_max[arm])
                target[arm] = spec.home_rad[arm] + 0.2 * np.tanh(target[arm] - spec.home_rad[arm])
                sent = robot.write(target)
                if sink is not None:
                    started = time.perf_counter()
                    sink.on_step(0, i, state.position, sent, -float(np.linalg.norm(action)), period_error_ms=0.0)
                    calls_s.append(time.perf_counter() - started)
                rate.wait()

        with realtime_episode() as episode:
            for done in range(0, cycles, block):
                n = min(block, cycles - done)
                run_block(n, loop, None)
                on_block(n * spec.period_s, "loop")
                if telemetry is not None:
                    run_block(n, viz_loop, telemetry)
                    on_block(n * spec.period_s, "loop with telemetry")
                idle.start()
                for _ in range(n):
                    idle.wait()
                on_block(n * spec.period_s, "host noise")
    noise = idle.stats.summary()
    figures = loop.stats.summary()
    worst = max(figures["period_error_max_ms"], RATIO_FLOOR_MS) / max(noise["period_error_max_ms"], RATIO_FLOOR_MS)
    figures.update(
        host_noise_cycles=noise["cycles"],
        host_noise_p99_ms=noise["period_error_p99_ms"],
        host_noise_max_ms=noise["period_error_max_ms"],
        period_error_max_vs_host_noise=worst,
        realtime_priority=granted,
        gc_frozen=episode.gc_frozen,
        memory_locked=episode.memory_locked,
    )
    if episode.memory_lock_note:
        figures["memory_lock_note"] = episode.memory_lock_note
    if telemetry is not None:
        with_viz = viz_loop.stats.summary()
        calls_ms = np.asarray(calls_s) * 1e3
        figures.update(
            telemetry_cycles=with_viz["cycles"],
            period_error_p99_ms_telemetry=with_viz["period_error_p99_ms"],
            period_error_max_ms_telemetry=with_viz["period_error_max_ms"],
            missed_deadlines_telemetry=with_viz["missed_deadlines"],
            telemetry_call_p50_ms=float(np.percentile(calls_ms, 50)),
            telemetry_call_p99_ms=float(np.percentile(calls_ms, 99)),
        )
    return figures


def cycles_per_phase(args: argparse.Namespace, period_s: float, phases: int) -> int:
    """--cycles if given, else --long's, else what fits --seconds (each phase: the loop, then as long idle)."""
    if args.cycles is not None:
        return max(1, args.cycles)
    if args.long:
        return LONG_CYCLES
    return max(1, round(args.seconds / phases / 2 / period_s))


def run(args: argparse.Namespace) -> dict[str, object]:
    affinity = pin_cpus(args.cpu) if args.cpu is not None else cpu_affinity()
    phases = ["quiet"] + ([] if args.no_hog else ["hog"])
    period_s = load_spec(args.hardware).period_s
    cycles = cycles_per_phase(args, period_s, len(phases))
    viz = parse_viz(args.viz, args.viz_memory)
    require_viz(viz)
    blocks = 2 if viz is None else 3
    progress = Progress("bench loop", total_s=blocks * cycles * period_s * len(phases))
    result: dict[str, object] = {"benchmark": "loop", "rate_hz": 20, "machine": machine()}
    result.update(cycles_per_phase=cycles, cpu_affinity=affinity)
    if viz is not None:
        result["telemetry"] = args.viz
    with open_telemetry(viz, load_spec(args.hardware), name="bench loop") as telemetry:
        sink = telemetry if viz is not None else None
        for phase in phases:

            def on_block(seconds: float, what: str, phase: str = phase) -> None:
                progress.advance(seconds, f"{phase}, {what}")

            with cpu_hog() if phase == "hog" else contextlib.nullcontext():
                result[phase] = run_phase(cycles, args.hardware, not args.no_rt, on_block, sink)
    progress.close()
    measured = [result[p] for p in phases]
    result["ratio"] = max(p["period_error_max_vs_host_noise"] for p in measured)
    result["targets"] = {
        "period_error_p99_ms<=0.5": all(p["period_error_p99_ms"] <= 0.5 for p in measured),
        "period_error_max_ms<=5": all(p["period_error_max_ms"] <= 5 for p in measured),
        "missed_deadlines==0": all(p["missed_deadlines"] == 0 for p in measured),
    }
    return result
