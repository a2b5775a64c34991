"""Fault injection on adaptation sessions, through the commands a user runs; prints one JSON object.

    .venv/bin/python benchmarks/fault_injection.py [--trials 20] [--seed 0] [--only kill_adapt,full_disk]

Scenarios (``SCENARIOS``; each returns its figures and per-trial details, and may add ``records_lost`` and
``fake_or_mixed_episodes`` to the totals):

- ``kill_adapt``: ``kill -9`` of ``pearl-robot adapt`` (sim at 20 Hz, a tiny trained run, 4 episodes) at a
  random point of its run (during start-up, after a random number of records, during the final export),
  then ``--resume`` to the end;
- ``kill_resume``: a session killed part-way (half of them given a torn last line, so the resume rewrites
  the log), then ``--resume`` killed at a random point of its run, then ``--resume`` to the end;
- ``full_disk``: a session on a small tmpfs until the disk is full, and its HDF5 export on a full disk
  (skipped with the reason where no tmpfs can be mounted).

Per trial: records lost (the records on disk at the kill that are not the start of the final log), fake
episodes (recorded with no step), mixed ones (steps not one contiguous run, an end that disagrees with its
steps, a partial episode unmarked or marked full in the export), and whether the session completed.
Goals: 0 records lost in every trial, 0 fake or mixed episodes. Exits 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from pearl_robot.adapt.store import SessionStore, SessionStoreError, is_partial

CLI = [sys.executable, "-m", "pearl_robot.cli.main"]
EPISODES = 4
HORIZON = 10  # max_path_length of the tiny run
RECORDS = EPISODES * (HORIZON + 2)  # a start, the steps and an end per episode
TINY = [  # as tests/adapt/adapt_helpers.py: enough for the adaptation machinery, not for learning
    "num_iterations=1", "num_train_steps_per_itr=4", "num_initial_steps=60", "num_tasks_sample=1",
    "num_steps_prior=20", "num_extra_rl_steps_posterior=20", "meta_batch=2", "batch_size=16",
    "embedding_batch_size=8", "net_size=16", "encoder_net_size=16", "num_steps_per_eval=50", "eval_every=100",
    "family_params.num_train_tasks=2", "family_params.num_test_tasks=2", f"max_path_length={HORIZON}",
]  # fmt: skip


@dataclass
class Bench:
    run: Path
    work: Path
    rng: random.Random
    trials: int
    workers: int

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path


SCENARIOS: dict[str, Callable[[Bench], dict[str, Any]]] = {}


def scenario(function: Callable[[Bench], dict[str, Any]]) -> Callable[[Bench], dict[str, Any]]:
    SCENARIOS[function.__name__] = function
    return function


# ---- running and killing the CLI ------------------------------------------------------------------
def adapt_new(bench: Bench, session: Path, *extra: str) -> list[str]:
    return [*CLI, "adapt", "--checkpoint", str(bench.run), "--robot", "sim", "--episodes", str(EPISODES),
            "--out", str(session), *extra]  # fmt: skip


def adapt_resume(session: Path, *extra: str) -> list[str]:
    return [*CLI, "adapt", "--resume", str(session), *extra]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)


def kill_when(cmd: list[str], log: Path, records: int, jitter_s: float) -> bool:
    """Start ``cmd``; ``kill -9`` it ``jitter_s`` after ``log`` holds ``records`` lines (at 0: after
    ``jitter_s`` from the start, while it imports, opens the robot, creates the session). False if it
    finished first. Counting records, not seconds, puts the kills where intended however loaded the machine."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while records and proc.poll() is None:
            if log.exists() and log.read_bytes().count(b"\n") >= records:
                break
            time.sleep(0.002)
        proc.wait(timeout=jitter_s)
        return False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def snapshot(session: Path) -> list[dict[str, Any]]:
    """The complete records on disk now (a torn last line is not a record)."""
    try:
        return SessionStore(session).load().records
    except SessionStoreError:
        return []


def finish(bench: Bench, session: Path) -> subprocess.CompletedProcess:
    """What a user does after a crash: --resume (or start again if the session was never created)."""
    if (session / "meta.json").exists():
        return run(adapt_resume(session, "--fast"))
    return run(adapt_new(bench, session, "--fast"))


# ---- checking a session ---------------------------------------------------------------------------
def lost(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> int:
    """Records of ``before`` that are not the start of ``after`` (the log only ever grows)."""
    same = 0
    for a, b in zip(before, after):
        if a != b:
            break
        same += 1
    return len(before) - same


def audit(session: Path) -> dict[str, Any]:
    data = SessionStore(session).load()
    starts, ends, steps = {}, {}, {}
    mixed = 0
    for record in data.records:
        episode = record.get("episode")
        if record["kind"] == "episode_start":
            mixed += episode in starts
            starts[episode] = record
        elif record["kind"] == "episode_end":
            mixed += episode in ends
            ends[episode] = record
        elif record["kind"] == "step":
            mixed += episode not in starts or episode in ends  # a step outside its episode
            steps.setdefault(episode, []).append(record["t"])
    fake = sum(1 for e in starts if not steps.get(e)) + sum(1 for e in ends.values() if e.get("steps") == 0)
    for episode, ts in steps.items():
        end = ends.get(episode)
        mixed += ts != list(range(len(ts)))
        mixed += end is not None and end.get("steps") != len(ts)
        mixed += end is not None and not is_partial(end) and len(ts) != HORIZON
    mixed += _export_disagrees(session, ends, steps)
    complete = sorted(ends) == list(range(EPISODES))
    temporaries = sorted(p.name for p in session.glob(".*.tmp"))
    return {"fake": fake, "mixed": mixed, "complete": complete, "temporaries_left": temporaries}


def _export_disagrees(session: Path, ends: dict, steps: dict) -> int:
    """Episodes whose session.hdf5 group is missing or marks a partial episode as full (or the reverse)."""
    path = session / "session.hdf5"
    if not path.exists():
        return len(steps)
    with h5py.File(path) as h5:
        wrong = 0
        for episode in steps:
            group = h5.get(f"episode_{episode}")
            partial = episode not in ends or is_partial(ends[episode])
            wrong += group is None or bool(group.attrs.get("partial")) != partial
            wrong += group is not None and bool(group["truncations"][-1]) == partial
        return wrong


def trial_result(index: int, at_kill: list, final: list, result: subprocess.CompletedProcess, session: Path,
                 **details: Any) -> dict[str, Any]:  # fmt: skip
    checked = audit(session)
    return {
        "trial": index,
        **details,
        "records_at_kill": len(at_kill),
        "records_lost": lost(at_kill, final),
        "resume_rc": result.returncode,
        **checked,
        "error": result.stderr.strip().splitlines()[-1:] if result.returncode else [],
    }


def summarise(trials: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "trials": len(trials),
        "records_lost": sum(t["records_lost"] for t in trials),
        "trials_losing_records": sum(t["records_lost"] > 0 for t in trials),
        "fake_or_mixed_episodes": sum(t["fake"] + t["mixed"] for t in trials),
        "incomplete_sessions": sum(not t["complete"] for t in trials),
        "temporaries_left": sum(len(t["temporaries_left"]) for t in trials),
        "details": trials,
    }


# ---- scenarios ------------------------------------------------------------------------------------
def kill_point(bench: Bench, first: int = 0) -> tuple[int, float]:
    """A random point to kill at: after ``first``..RECORDS records (0: during the start-up), plus a jitter."""
    records = bench.rng.randint(first, RECORDS)
    return records, bench.rng.uniform(0.0, 2.0 if records == 0 else 0.05)


@scenario
def kill_adapt(bench: Bench) -> dict[str, Any]:
    plans = [kill_point(bench) for _ in range(bench.trials)]

    def trial(index: int) -> dict[str, Any]:
        session = bench.folder("kill_adapt") / f"s{index}"
        records, jitter = plans[index]
        killed = kill_when(adapt_new(bench, session), session / "session.jsonl", records, jitter)
        at_kill = snapshot(session)
        result = finish(bench, session)
        return trial_result(index, at_kill, snapshot(session), result, session, kill_after_records=records,
                            jitter_s=round(jitter, 3), killed=killed)  # fmt: skip

    with ThreadPoolExecutor(bench.workers) as pool:
        return summarise(list(pool.map(trial, range(bench.trials))))


@scenario
def kill_resume(bench: Bench) -> dict[str, Any]:
    plans = [(bench.rng.randint(6, RECORDS - 6), index % 2 == 1, bench.rng.random()) for index in range(bench.trials)]

    def trial(index: int) -> dict[str, Any]:
        first, torn, where = plans[index]
        session = bench.folder("kill_resume") / f"s{index}"
        log = session / "session.jsonl"
        kill_when(adapt_new(bench, session), log, first, 0.0)
        if torn:  # the resume has to drop a torn last line: a kill may land in that rewrite
            with log.open("a") as handle:
                handle.write('{"kind":"step","episode":9,"t":0,"obs":[0.1,')
        before = snapshot(session)
        records = 0 if where < 0.3 else len(before) + round((RECORDS - len(before)) * (where - 0.3) / 0.7)
        jitter = bench.rng.uniform(0.0, 2.0 if records == 0 else 0.05)
        killed = kill_when(adapt_resume(session), log, records, jitter)
        at_kill = snapshot(session)
        result = finish(bench, session)
        final = snapshot(session)
        row = trial_result(index, at_kill, final, result, session, kill_after_records=records,
                           jitter_s=round(jitter, 3), torn_tail=torn, killed=killed)  # fmt: skip
        row["records_lost"] += lost(before, final)
        return row

    with ThreadPoolExecutor(bench.workers) as pool:
        return summarise(list(pool.map(trial, range(bench.trials))))


@contextlib.contextmanager
def tmpfs(point: Path, size_kib: int) -> Iterator[Path | str]:
    """A tmpfs mounted at ``point`` (unmounted after), or the reason it cannot be mounted here."""
    point.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(point)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        yield f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}"
        return
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def failure(result: subprocess.CompletedProcess, point: Path) -> dict[str, Any]:
    return {
        "rc": result.returncode,
        "stderr_lines": len(result.stderr.strip().splitlines()),
        "error": result.stderr.strip(),
        "temporaries_left": sorted(p.name for p in point.rglob(".*.tmp")),
    }


@scenario
def full_disk(bench: Bench) -> dict[str, Any]:
    with tmpfs(bench.folder("full_disk") / "mid", 48) as point:
        if isinstance(point, str):
            return {"skipped": point}
        result = run(adapt_new(bench, point / "s", "--fast", "--episodes", "500"))
        data = SessionStore(point / "s").load()
        mid = {**failure(result, point), "steps_kept": len(data.steps()), "torn_records": data.torn_records}
    made = bench.folder("full_disk") / "made"
    run(adapt_new(bench, made, "--fast", "--episodes", "3"))
    with tmpfs(bench.folder("full_disk") / "export", 1024) as point:
        session = point / "s"
        session.mkdir()
        for name in ("meta.json", "session.jsonl"):
            shutil.copy(made / name, session / name)
        with (point / "filler").open("wb") as handle:  # leave less room than the export needs
            handle.write(b"\0" * max(shutil.disk_usage(point).free - 8192, 0))
        export = failure(run(adapt_resume(session, "--fast")), point)
        export["log_intact"] = (session / "session.jsonl").read_bytes() == (made / "session.jsonl").read_bytes()
    clean = all(r["rc"] == 1 and r["stderr_lines"] == 1 and not r["temporaries_left"] for r in (mid, export))
    return {"mid_session": mid, "export": export, "one_clear_line_no_leftovers": clean}


# ---- main -----------------------------------------------------------------------------------------
def train_tiny_run(work: Path) -> Path:
    run_dir = work / "run"
    cmd = [*CLI, "train", "--config", "arm-dynamics-small", "--out", str(run_dir), "--quiet"]
    for item in TINY:
        cmd += ["--set", item]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return run_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {sorted(SCENARIOS)}")
    with tempfile.TemporaryDirectory(prefix="fault-injection-") as tmp:
        work = Path(tmp)
        bench = Bench(train_tiny_run(work), work, random.Random(args.seed), args.trials, args.workers)
        results = {}
        for name in names:
            t0 = time.monotonic()
            results[name] = SCENARIOS[name](bench)
            results[name]["wall_s"] = round(time.monotonic() - t0, 1)
    lost_total = sum(r.get("records_lost", 0) for r in results.values())
    fake_total = sum(r.get("fake_or_mixed_episodes", 0) for r in results.values())
    targets = {"records_lost_0_in_every_trial": lost_total == 0, "fake_or_mixed_episodes_0": fake_total == 0}
    for name, result in results.items():
        if "one_clear_line_no_leftovers" in result:
            targets[f"{name}_one_clear_line_no_leftovers"] = result["one_clear_line_no_leftovers"]
    summary = {"seed": args.seed, "records_lost": lost_total,
               "fake_or_mixed_episodes": fake_total, "targets": targets, "scenarios": results}  # fmt: skip
    print(json.dumps(summary))
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
