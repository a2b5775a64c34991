"""Sweeps: whole experiments (seeds x a grid of config values) in parallel, one run folder each, one summary.

``expand`` turns a config, a list of seeds and a grid (``lr=0.001,0.0003``, ``family_params.goal_radius=0.2,0.3``,
or ``config=point-robot-small,sparse-point-robot-small`` for whole configs, e.g. task families) into
``RunSpec``s, each holding its fully resolved config, so a worker needs no config file. ``run_sweep`` runs them
as Ray tasks (``cpus_per_run`` CPUs each, retried on worker loss) or one after the other in this process
(``local``), and collects one ``RunResult`` per run; ``write_summary`` writes:

- ``SWEEP/<run>/``: an ordinary run folder (``pearl-robot train``'s: config.yaml, progress.csv, checkpoint.pt,
  policy.npz, ...) per run, written by the process that ran it (on a multi-node cluster, give ``--out`` on a
  filesystem every node shares; the summary itself comes from what the runs return, not from the files);
- ``SWEEP/runs.csv``: one row per run (final test return, env steps, wall time, or the error);
- ``SWEEP/summary.csv``: one row per grid point: mean, standard deviation, min and max across seeds of the
  final test return (last trajectory under the evaluation protocol);
- ``SWEEP/summary.png``: test return vs env steps per grid point, the mean across seeds with a band of one
  standard deviation.

A run folder that already holds a checkpoint of the same experiment is continued, not restarted: a retried
task (its worker died) or a re-run sweep with the same ``--out`` resumes each run where it stopped, and
resuming is exact, so the results are those of an uninterrupted sweep.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pearl_robot.errors import ConfigError, PearlRobotError

CONFIG_KEY = "config"  # a grid over whole configs (shipped names or YAML files)
RUN_COLUMNS = ["name", "group", "seed", "iterations", "env_steps", "final_test_return", "wall_s", "host", "error"]
SUMMARY_COLUMNS = [
    "group", "runs", "failed", "env_steps", "test_return_mean", "test_return_std", "test_return_min",
    "test_return_max", "wall_s_mean",
]  # fmt: skip


@dataclass(frozen=True)
class RunSpec:
    name: str  # the run folder's name under the sweep folder
    group: str  # the grid point; its seeds share it
    seed: int
    config: dict[str, Any]  # the resolved PEARLConfig fields


@dataclass
class RunResult:
    name: str
    group: str
    seed: int
    run_dir: str
    iterations: int = 0
    env_steps: int = 0
    final_test_return: float | None = None
    wall_s: float = 0.0
    host: str = ""
    error: str = ""
    # evaluated iterations: (iteration, env_steps, test return of the last trajectory)
    curve: list[tuple[int, int, float]] = field(default_factory=list)


# ---- the grid ----------------------------------------------------------------------------------------------
def split_values(text: str) -> list[str]:
    """``v1,v2,...`` split on commas outside brackets, braces and quotes (``[1, 2],[3, 4]`` is two values)."""
    values, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    values.append("".join(current).strip())
    if any(v == "" for v in values):
        raise ConfigError("--grid", text, "empty value in the list")
    return values


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """``["lr=0.001,0.0003", ...]`` -> ``[("lr", ["0.001", "0.0003"]), ...]`` (values are parsed as YAML later)."""
    grid: list[tuple[str, list[str]]] = []
    for item in items:
        if "=" not in item:
            raise ConfigError("--grid", item, "expected key=value1,value2,...")
        key, text = (s.strip() for s in item.split("=", 1))
        if not key:
            raise ConfigError("--grid", item, "missing key")
        if key in (k for k, _ in grid):
            raise ConfigError("--grid", key, "given twice")
        if key == "seed":
            raise ConfigError("--grid", key, "use --seeds for seeds")
        grid.append((key, split_values(text)))
    return grid


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "", text.replace("=", "-").replace(" ", ""))[:80] or "x"


def expand(
    config: str, seeds: list[int], grid: list[tuple[str, list[str]]] | None = None, overrides: list[str] | None = None
) -> list[RunSpec]:
    """One RunSpec per (grid point, seed), grid points in the order of the product of the lists. Every config
    is loaded and validated here, so a bad value fails before anything runs."""
    from pearl_robot.pearl.config import load_config

    if not seeds:
        raise ConfigError("--seeds", "seeds", "at least one seed")
    grid = grid or []
    keys = [k for k, _ in grid]
    specs, names = [], set()
    for combo in itertools.product(*(values for _, values in grid)):
        assignment = dict(zip(keys, combo))
        base = assignment.pop(CONFIG_KEY, config)
        point = [f"{k}={v}" for k, v in assignment.items()]
        group = "_".join([Path(base).stem, *(_slug(p) for p in point)])
        for seed in seeds:
            cfg = load_config(base, [*(overrides or []), *point, f"seed={seed}"])
            name = f"{group}-seed{seed}"
            if name in names:
                raise ConfigError("--grid", name, "two runs would share one folder (repeated values?)")
            names.add(name)
            specs.append(RunSpec(name, group, seed, cfg.to_dict()))
    return specs


# ---- one experiment ------------------------------------------------------------------------------------------
def run_experiment(spec: RunSpec, out_dir: str) -> RunResult:
    """Train ``spec`` into ``out_dir/spec.name`` (continuing it if it holds a checkpoint of this experiment);
    what a Ray task of the sweep runs, and what ``--local`` runs in process."""
    from pearl_robot.pearl.config import FIELDS, config_from_dict
    from pearl_robot.pearl.run_log import read_progress
    from pearl_robot.pearl.trainer import CHECKPOINT, RESUMABLE_FIELDS, MetaTrainer

    cfg = config_from_dict(spec.config, spec.name)
    run_dir = Path(out_dir) / spec.name
    t0 = time.perf_counter()
    if (run_dir / CHECKPOINT).exists():
        resumable = [f"{k}={json.dumps(getattr(cfg, k))}" for k in sorted(RESUMABLE_FIELDS)]
        trainer = MetaTrainer.from_checkpoint(run_dir, overrides=resumable)
        differing = [k for k in FIELDS if getattr(trainer.cfg, k) != getattr(cfg, k)]
        if differing:
            raise PearlRobotError(f"{run_dir} holds another experiment (differs in {differing}): use another --out")
    else:
        trainer = MetaTrainer(cfg, run_dir=run_dir)
    if trainer.iteration < cfg.num_iterations:
        trainer.train()
    rows = read_progress(run_dir / "progress.csv")
    curve = [
        (int(r["iteration"]), int(r["env_steps"]), float(r["test_return_last"]))
        for r in rows
        if r.get("test_return_last", "") != ""
    ]
    return RunResult(
        name=spec.name,
        group=spec.group,
        seed=spec.seed,
        run_dir=str(run_dir),
        iterations=len(rows),
        env_steps=int(rows[-1]["env_steps"]) if rows else 0,
        final_test_return=curve[-1][2] if curve else None,
        wall_s=time.perf_counter() - t0,
        host=socket.gethostname(),
        curve=curve,
    )


def conflicting_runs(specs: list[RunSpec], out_dir: str | Path) -> list[str]:
    """Run folders under ``out_dir`` that already hold a different experiment than their spec (fields other
    than those a resume may change)."""
    import yaml

    from pearl_robot.pearl.config import config_from_dict
    from pearl_robot.pearl.trainer import RESUMABLE_FIELDS

    conflicts = []
    for spec in specs:
        path = Path(out_dir) / spec.name / "config.yaml"
        if not path.exists():
            continue
        try:
            held = config_from_dict(yaml.safe_load(path.read_text()), path).to_dict()
        except (PearlRobotError, yaml.YAMLError):
            conflicts.append(f"{spec.name} (unreadable config.yaml)")
            continue
        differing = [k for k, v in spec.config.items() if k not in RESUMABLE_FIELDS and held.get(k) != v]
        if differing:
            conflicts.append(f"{spec.name} (differs in {', '.join(differing)})")
    return conflicts


def _failed(spec: RunSpec, out_dir: str, exc: BaseException) -> RunResult:
    cause = getattr(exc, "cause", None) or exc  # a RayTaskError carries the task's exception
    message = f"{type(cause).__name__}: {cause}".strip().splitlines()[0][:300]
    return RunResult(spec.name, spec.group, spec.seed, str(Path(out_dir) / spec.name), error=message)


def run_sweep(
    specs: list[RunSpec],
    out_dir: str | Path,
    *,
    local: bool = False,
    address: str | None = None,
    cpus_per_run: float = 1.0,
    max_retries: int = 2,
    echo: Callable[[str], None] | None = None,
) -> list[RunResult]:
    """Run every spec (as Ray tasks, or in process with ``local``); results in spec order. A run that fails
    is reported in its RunResult's ``error``; the others go on. Refuses (before running anything) a folder
    whose runs hold other experiments."""
    out = Path(out_dir).resolve()
    conflicts = conflicting_runs(specs, out)
    if conflicts:
        raise PearlRobotError(f"{out} holds other experiments under these run names: {'; '.join(conflicts)}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps([asdict(s) for s in specs], indent=1))
    echo = echo or (lambda _: None)
    results: dict[str, RunResult] = {}

    def done(result: RunResult) -> None:
        results[result.name] = result
        if result.error:
            what = f"FAILED: {result.error}"
        else:
            final = "n/a" if result.final_test_return is None else f"{result.final_test_return:.3f}"
            what = f"test return {final}, {result.env_steps} env steps, {result.wall_s:.0f} s on {result.host}"
        echo(f"[{len(results)}/{len(specs)}] {result.name}: {what}")

    if local:
        for spec in specs:
            try:
                done(run_experiment(spec, str(out)))
            except Exception as exc:  # report and go on with the other runs
                done(_failed(spec, str(out), exc))
    else:
        from pearl_robot.distributed import connect

        owns = connect(address)
        import ray

        try:
            task = ray.remote(run_experiment).options(num_cpus=cpus_per_run, max_retries=max_retries)
            pending = {task.remote(spec, str(out)): spec for spec in specs}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    spec = pending.pop(ref)
                    try:
                        done(ray.get(ref))
                    except Exception as exc:  # the run's own error, or its worker lost more than max_retries times
                        done(_failed(spec, str(out), exc))
        finally:
            if owns:
                ray.shutdown()
    return [results[s.name] for s in specs]


# ---- the summary -------------------------------------------------------------------------------------------
def summarize(results: list[RunResult]) -> list[dict[str, Any]]:
    """One row per group (in first-appearance order): statistics across its seeds (failed runs left out)."""
    groups: dict[str, list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.group, []).append(r)
    rows = []
    for group, runs in groups.items():
        ok = [r for r in runs if not r.error]
        finals = np.array([r.final_test_return for r in ok if r.final_test_return is not None], float)
        stats = (
            {
                "test_return_mean": float(finals.mean()),
                "test_return_std": float(finals.std(ddof=1)) if len(finals) > 1 else 0.0,
                "test_return_min": float(finals.min()),
                "test_return_max": float(finals.max()),
            }
            if finals.size
            else dict.fromkeys(("test_return_mean", "test_return_std", "test_return_min", "test_return_max"))
        )
        rows.append(
            {
                "group": group,
                "runs": len(ok),
                "failed": len(runs) - len(ok),
                "env_steps": int(np.mean([r.env_steps for r in ok])) if ok else 0,
                **stats,
                "wall_s_mean": float(np.mean([r.wall_s for r in ok])) if ok else None,
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    def num(v: Any, spec: str) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    table = [["group", "seeds", "env steps", "test return (mean +- std)", "min", "max", "wall s"]]
    for r in rows:
        seeds = f"{r['runs']}" + (f" ({r['failed']} failed)" if r["failed"] else "")
        mean = num(r["test_return_mean"], ".3f")
        spread = f"{mean} +- {num(r['test_return_std'], '.3f')}" if mean != "-" else "-"
        table.append(
            [r["group"], seeds, str(r["env_steps"]), spread, num(r["test_return_min"], ".3f"),
             num(r["test_return_max"], ".3f"), num(r["wall_s_mean"], ".0f")]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in table]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    tmp.replace(path)


def plot_summary(results: list[RunResult], path: Path) -> Path | None:
    """Test return vs env steps per group: the mean across seeds (at the iterations every seed evaluated)
    with a band of one standard deviation. None if no run was evaluated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[RunResult]] = {}
    for r in results:
        if not r.error and r.curve:
            groups.setdefault(r.group, []).append(r)
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for group, runs in groups.items():
        by_iteration = [{it: (steps, ret) for it, steps, ret in r.curve} for r in runs]
        common = sorted(set.intersection(*(set(c) for c in by_iteration)))
        if not common:
            continue
        steps = np.array([[c[it][0] for c in by_iteration] for it in common], float).mean(axis=1)
        returns = np.array([[c[it][1] for c in by_iteration] for it in common], float)
        mean, std = returns.mean(axis=1), returns.std(axis=1, ddof=1) if len(runs) > 1 else np.zeros(len(common))
        (line,) = ax.plot(steps, mean, marker="o" if len(common) < 30 else None, label=f"{group} ({len(runs)} seeds)")
        if len(runs) > 1:
            ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("environment steps (meta-training samples)")
    ax.set_ylabel("test return, last trajectory")
    ax.set_title("sweep: mean across seeds, band = one standard deviation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_summary(results: list[RunResult], out_dir: str | Path) -> tuple[list[dict[str, Any]], list[Path]]:
    """runs.csv, summary.csv and summary.png in ``out_dir``; returns the summary rows and the paths written."""
    out = Path(out_dir)
    rows = summarize(results)
    _write_csv(out / "runs.csv", RUN_COLUMNS, [asdict(r) for r in results])
    _write_csv(out / "summary.csv", SUMMARY_COLUMNS, rows)
    written = [out / "runs.csv", out / "summary.csv"]
    png = plot_summary(results, out / "summary.png")
    if png is not None:
        written.append(png)
    return rows, written
