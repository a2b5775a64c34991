"""Adaptation on held-out arms against honest baselines: PEARL by posterior sampling and at z from the
prior, domain-randomised SAC, an RL oracle that observes the arm's parameters, the best single scripted
controller, a scripted controller tuned per task and random actions; return per episode over seeds.

Per seed s (``cfg.seed = s``: its own train/test split and its own runs, in ``OUT/seed-S/<method>``):

- ``pearl`` (the config), ``dr_sac`` (the config without context: multi-task SAC over the training
  arms, i.e. domain randomisation) and ``rl_oracle`` (without context, observing the true task parameters,
  ``family_params.observe_dynamics``) are trained, or reused when finished, or resumed when interrupted;
  ``--side-by-side`` adds ``pearl_joint_actions`` (PEARL on plain joint actions on the same family);
- ``scripted_best_single``: the scripted reacher's (gain, blend) grid point best over all the seed's
  training arms; ``scripted_per_task``: the best grid point per held-out arm, tuned on that arm (the
  classical oracle). Both tuned on tuning episodes of their own, never on the evaluation sequences
  (``pearl_robot.bench.adapt_baselines``); ``random``: uniform joint actions, the floor;
- every method then runs the same goal sequences on every held-out arm (``--repeats`` per arm, reset seed
  ``1000 * (r + 1)``, every episode from the same start), through ``AdaptationSession``.

The figures (definitions also in the JSON): ``gap_closed_per_episode`` (PEARL's share of the gap from
DR-SAC to the best oracle, per arm the better of the RL and the classical oracle), the margin of PEARL
over the best single scripted controller, paired on goal sequences, and ``adaptation_value`` (what tuning
per arm is worth, over what tuning at all is worth). Writes ``OUT/bench_adapt.json`` and
``OUT/bench_adapt.png``."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pearl_robot.adapt.policy import PAIR_MANIFEST, check_matches, family_for, load_run
from pearl_robot.adapt.session import AdaptationSession, SessionConfig
from pearl_robot.adapt.store import SessionStore
from pearl_robot.bench.adapt_baselines import (
    BLENDS,
    GAINS,
    Grid,
    RandomPolicy,
    ScriptedPolicy,
    scripted_config,
    tune_best_single,
    tune_per_task,
)
from pearl_robot.bench.common import machine
from pearl_robot.control.loop import RateLoop
from pearl_robot.errors import PearlRobotError
from pearl_robot.io import manifest_mismatches
from pearl_robot.pearl.config import PEARLConfig, apply_overrides, load_config
from pearl_robot.robot.registry import open_robot

__all__ = ["RandomPolicy", "ScriptedPolicy"]  # re-exported: the baselines' policies

PEARL = "pearl_posterior_sampling"
PRIOR = "pearl_prior_z"
DR = "dr_sac"
RL_ORACLE = "rl_oracle"
BEST_SINGLE = "scripted_best_single"
PER_TASK = "scripted_per_task"
RANDOM = "random"
JOINT = "pearl_joint_actions"
ADAPTIVE = (PEARL, JOINT)  # the methods whose return may change from episode to episode by design
# how it ran may differ from how it was configured without changing what was computed
_HOW_IT_RAN = ("device", "torch_threads", "tensorboard", "eval_every", "checkpoint_every")

DEFINITIONS = {
    "return_per_episode": "per method and episode (episode 1 first): the mean over seeds of the per-seed mean "
    "return over held-out tasks and goal sequences; return_stderr_per_episode: its standard error over seeds",
    "return_level": "non-adaptive methods: the mean over episodes of return_per_episode (one level), with "
    "return_level_stderr over seeds",
    "best_oracle": "per held-out task the better of rl_oracle and scripted_per_task (each its mean over goal "
    "sequences and episodes), then the mean over held-out tasks",
    "gap_closed_per_episode": "per seed and episode (R_pearl_posterior_sampling - R_dr_sac) / (best_oracle - "
    "R_dr_sac), R_dr_sac its mean over episodes; mean over seeds (null for a seed where DR-SAC is not below "
    "the best oracle); gap_closed_stderr_per_episode: standard error over seeds",
    "gap_closed_pooled_per_episode": "per episode the sum over seeds of (R_pearl_posterior_sampling - R_dr_sac) "
    "over the sum over seeds of (best_oracle - R_dr_sac): the ratio of the mean gains, which a seed with a "
    "small gap cannot inflate as it can the mean of per-seed ratios; "
    "gap_closed_pooled_leave_one_seed_out_min_per_episode: its smallest value with any one seed left out",
    "pearl_minus_best_oracle_per_episode": "per episode the mean over held-out arms (seeds x tasks) of "
    "R_pearl_posterior_sampling minus that arm's better oracle (rl_oracle or scripted_per_task), with its "
    "standard error over arms; _by_kind: the same mean per kind of arm, where the family names kinds",
    "margin_over_scripted_per_episode": "per episode the mean over all goal sequences (seeds x held-out tasks x "
    "repeats) of R_pearl_posterior_sampling - R_scripted_best_single on the same sequence (the scripted "
    "return: its mean over that sequence's episodes); margin_over_scripted_stderr_per_episode: the standard "
    "error of those paired differences; clearly_above: mean > 2 standard errors",
    "adaptation_value": "(R_scripted_per_task - R_scripted_best_single) / (R_scripted_best_single - R_random) "
    "on the held-out evaluation returns pooled over seeds (per seed in per_seed): what tuning a scripted "
    "controller per arm is worth over one tuning for all arms, in units of what that one tuning is worth "
    "over random actions",
    "margins_after_prior_episodes": "mean over goal sequences of (PEARL - other), each averaged over the "
    "episodes after the prior ones, with its standard error; clearly_above: mean > 2 standard errors",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="arm-fleet-medium", help="PEARL config to train (default %(default)s)")
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds 0..N-1, each its own split and runs (default %(default)s)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/bench-adapt"),
        help="run folders OUT/seed-S/<method> (finished ones reused, interrupted ones resumed) and the JSON and "
        "PNG (default %(default)s)",
    )
    parser.add_argument(
        "--tasks", type=int, nargs="+", default=None, metavar="I", help="held-out test-task indices (default: all)"
    )
    parser.add_argument("--episodes", type=int, default=5, help="adaptation episodes (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=4, help="goal sequences per held-out task (default %(default)s)")
    parser.add_argument("--prior-episodes", type=int, default=1, help="episodes with z from the prior (default 1)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="training processes in parallel, one torch thread each (default %(default)s); if one fails, the "
        "others in progress finish (a rerun resumes) and the benchmark stops with one error line",
    )
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="also train and evaluate PEARL on plain joint actions (family_params.action_mode=joint), reported as "
        "pearl_joint_actions: what the controller action design buys",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="reuse this trained PEARL run as seed 0's pearl (seed 0 only; it must have been trained on the "
        "benchmark's seed-0 configuration, --config/--set with seed 0); the other methods and seeds are trained",
    )
    parser.add_argument(
        "--scripted-only",
        action="store_true",
        help="no training: only the classical figures of the family (best single and per-task tuned scripted "
        "controllers, random, adaptation_value) on the held-out tasks of every seed; seconds to minutes",
    )
    # internal: a reduced scripted grid for quick checks (the default is adapt_baselines.GAINS x BLENDS)
    parser.add_argument("--scripted-gains", type=float, nargs="+", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scripted-blends", type=float, nargs="+", default=None, help=argparse.SUPPRESS)


# ---- training -------------------------------------------------------------------------------------------


def train(cfg: PEARLConfig, run_dir: Path) -> Path:
    """Train ``cfg`` into ``run_dir``; a run left there by an earlier, interrupted benchmark is resumed
    (a finished one is reused as it is), never evaluated half-trained."""
    if _finished(cfg, run_dir):
        return run_dir  # without loading the checkpoint (its replay buffers): reuse is quick
    from pearl_robot.pearl.trainer import CHECKPOINT, RESUMABLE_FIELDS, MetaTrainer, load_checkpoint

    if (run_dir / CHECKPOINT).exists():
        saved, _ = load_checkpoint(run_dir)
        longer = {name: getattr(cfg, name) for name in RESUMABLE_FIELDS}
        if replace(saved, device=cfg.device, **longer) != cfg:  # how it ran, and how long, may differ
            raise PearlRobotError(f"{run_dir} holds a run of another configuration; give another --out")
        if saved.num_iterations > cfg.num_iterations:
            raise PearlRobotError(
                f"{run_dir} holds a run of {saved.num_iterations} iterations, longer than --set "
                f"num_iterations={cfg.num_iterations}; give another --out"
            )
        # a longer budget continues the run where it stopped (as ``train --resume --set num_iterations=N``)
        changed = [f"{name}={getattr(cfg, name)}" for name in sorted(RESUMABLE_FIELDS)]
        trainer = MetaTrainer.from_checkpoint(run_dir, overrides=changed)
    else:
        trainer = MetaTrainer(cfg, run_dir=run_dir)
    try:
        trainer.train()  # nothing to do when the restored run is complete
    finally:
        trainer.close()
    return run_dir


def _finished(cfg: PEARLConfig, run_dir: Path) -> bool:
    """A complete run of ``cfg``: its config, a policy/checkpoint pair that matches its manifest, at the
    last iteration."""
    manifest = run_dir / PAIR_MANIFEST
    if not (run_dir / "config.yaml").exists() or manifest_mismatches(manifest) != []:
        return False
    try:
        saved = load_config(run_dir / "config.yaml")
        iteration = int(json.loads(manifest.read_text())["iteration"])
    except (PearlRobotError, ValueError, KeyError, TypeError):
        return False
    same = replace(saved, device=cfg.device, torch_threads=cfg.torch_threads) == cfg
    return same and iteration >= cfg.num_iterations


def _train_worker(cfg: PEARLConfig, run_dir: str) -> str | None:
    """In a worker process: None, or the failure in one line (exceptions need not survive pickling)."""
    try:
        train(cfg, Path(run_dir))
    except Exception as exc:  # noqa: BLE001 - reported as one line by the parent
        return f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return None


@dataclass(frozen=True)
class TrainJob:
    label: str  # "seed 0 pearl"
    cfg: PEARLConfig
    run_dir: Path


def train_all(jobs: Sequence[TrainJob], n_jobs: int, log: Callable[[str], None]) -> None:
    """Every job trained (or reused, or resumed), ``n_jobs`` at a time in spawned processes (in this one
    for ``n_jobs`` 1). A failure stops the benchmark with one error line, after the jobs in progress."""
    started = time.perf_counter()
    if n_jobs <= 1 or len(jobs) <= 1:
        for job in jobs:
            error = _train_worker(job.cfg, str(job.run_dir))
            if error is not None:
                raise PearlRobotError(f"bench adapt: training {job.label} into {job.run_dir} failed: {error}")
            log(f"{job.label}: trained ({time.perf_counter() - started:.0f} s)")
        return
    failures: list[str] = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(n_jobs, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(_train_worker, job.cfg, str(job.run_dir)): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            if future.cancelled():
                continue
            try:
                error = future.result()
            except BrokenProcessPool:
                error = "its training process died (out of memory or killed)"
            if error is None:
                log(f"{job.label}: trained ({time.perf_counter() - started:.0f} s)")
                continue
            failures.append(f"training {job.label} into {job.run_dir} failed: {error}")
            if len(failures) == 1:
                log(f"{failures[0]}; the runs in progress finish first (a rerun resumes them)")
                for other in futures:
                    other.cancel()
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise PearlRobotError(f"bench adapt: {failures[0]}{more}")


def method_configs(cfg: PEARLConfig, side_by_side: bool) -> dict[str, PEARLConfig]:
    """The learned methods' configs (one torch thread each): run folder name -> config."""
    cfg = replace(cfg, torch_threads=1)
    configs = {
        "pearl": cfg,
        DR: replace(cfg, use_context=False),
        RL_ORACLE: replace(cfg, use_context=False, family_params={**cfg.family_params, "observe_dynamics": True}),
    }
    if side_by_side:
        configs[JOINT] = replace(cfg, family_params={**cfg.family_params, "action_mode": "joint"})
    return configs


def _check_checkpoint(run: Path, cfg: PEARLConfig) -> None:
    saved, _ = load_run(run)
    ignore = {name: getattr(cfg, name) for name in _HOW_IT_RAN}
    if replace(saved, **ignore) != replace(cfg, **ignore):
        raise PearlRobotError(
            f"--checkpoint {run} was trained on another configuration than the benchmark's seed 0 (give the same "
            "--config and --set, with seed 0), or leave --checkpoint out"
        )


# ---- evaluation -----------------------------------------------------------------------------------------


def evaluate(
    family: Any,
    tasks: Sequence[Any],
    make_policy: Callable[[Any, int, int], Any],
    episodes: int,
    repeats: int,
    prior_episodes: int,
) -> np.ndarray:
    """``[tasks, repeats, episodes]``: the adaptation protocol on each held-out task, one goal sequence per
    repeat (reset seed ``1000 * (r + 1)``, the same for every method), ``make_policy(env, task position,
    repeat)`` the policy of one session."""
    out = np.zeros((len(tasks), repeats, episodes))
    for t, task in enumerate(tasks):
        for r in range(repeats):
            robot = open_robot("sim", family.spec, safe=False)  # as the family trains (no SafeRobot on sim)
            env = family.make_env(robot=robot, loop=RateLoop(robot.spec.period_s, realtime=False))
            family.apply(env, task)
            policy = make_policy(env, t, r)
            with tempfile.TemporaryDirectory() as tmp, robot:
                store = SessionStore(Path(tmp) / "session")
                store.create({"benchmark": "adapt"})
                session = AdaptationSession(
                    env, policy, store, SessionConfig(episodes, prior_episodes, seed=1000 * (r + 1), same_start=True)
                )
                out[t, r] = [s.episode_return for s in session.run()]
    return out


def _learned(run: Path, family: Any) -> Callable[[Any, int, int], Any]:
    _, policy = load_run(run)
    env = family.make_env(seed=0)
    check_matches(policy, env.observation_space.shape[0], env.action_space.shape[0], f"{family.name} ({run})")
    env.close()
    return lambda env, t, r: policy  # noqa: ARG005


# ---- figures ----------------------------------------------------------------------------------------------


def _stderr(values: np.ndarray) -> float | None:
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return None
    return float(values.std(ddof=1) / np.sqrt(len(values)))


def mean_stderr(per_seed: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """Mean and standard error over seeds (axis 0) of ``[seeds, ...]``, NaN (undefined) entries left out;
    None where no seed (mean) or fewer than two (standard error) define it."""
    per_seed = np.asarray(per_seed, dtype=float)
    means, errors = [], []
    for column in per_seed.reshape(len(per_seed), -1).T:
        defined = column[np.isfinite(column)]
        means.append(float(defined.mean()) if len(defined) else None)
        errors.append(_stderr(defined))
    return means, errors


def best_oracle(rl_oracle: np.ndarray, scripted_per_task: np.ndarray) -> float:
    """Per held-out task the better of the two oracles (``[tasks, repeats, episodes]`` each), averaged."""
    return float(oracle_per_task(rl_oracle, scripted_per_task).mean())


def gap_closed(pearl: np.ndarray, dr: np.ndarray, oracle: float) -> np.ndarray:
    """Per episode, ``(R_pearl - R_dr) / (oracle - R_dr)`` over task means; NaN where DR-SAC is not below
    the oracle (no gap to close)."""
    dr_level = float(dr.mean())
    if not oracle > dr_level:
        return np.full(pearl.shape[-1], np.nan)
    return (pearl.mean(axis=(0, 1)) - dr_level) / (oracle - dr_level)


def pooled_gap_closed(pearl: np.ndarray, dr_levels: np.ndarray, oracles: np.ndarray) -> list[float | None]:
    """Per episode ``sum(R_pearl - R_dr) / sum(oracle - R_dr)`` over seeds (``pearl`` ``[seeds, episodes]``,
    the others ``[seeds]``); None where the summed gap is not positive."""
    gap = float(np.sum(oracles - dr_levels))
    if not gap > 0:
        return [None] * pearl.shape[-1]
    return [float(v) for v in (pearl - dr_levels[:, None]).sum(axis=0) / gap]


def leave_one_out_min_gap(pearl: np.ndarray, dr_levels: np.ndarray, oracles: np.ndarray) -> list[float | None]:
    """Per episode the smallest ``pooled_gap_closed`` over the subsets with one seed left out (None with
    fewer than 3 seeds, or where a subset has no gap)."""
    n = len(dr_levels)
    if n < 3:
        return [None] * pearl.shape[-1]
    subsets = [pooled_gap_closed(*(np.delete(a, i, axis=0) for a in (pearl, dr_levels, oracles))) for i in range(n)]
    return [None if None in column else min(column) for column in zip(*subsets)]


def oracle_per_task(rl_oracle: np.ndarray, scripted_per_task: np.ndarray) -> np.ndarray:
    """Per held-out task the better oracle's mean return (``[tasks, repeats, episodes]`` each)."""
    return np.maximum(rl_oracle.mean(axis=(1, 2)), scripted_per_task.mean(axis=(1, 2)))


def margin_over_oracle(
    pearl: Sequence[np.ndarray], oracles: Sequence[np.ndarray], kinds: Sequence[Sequence[str | None]]
) -> dict[str, Any]:
    """PEARL minus each held-out arm's better oracle per episode, pooled over seeds' arms (``pearl`` each
    ``[tasks, repeats, episodes]``, ``oracles`` each ``[tasks]``), with the standard error over arms and the
    mean per kind of arm."""
    diffs = np.concatenate([p.mean(axis=1) - o[:, None] for p, o in zip(pearl, oracles)])  # [arms, episodes]
    labels = [k for row in kinds for k in row]
    by_kind = {
        kind: [float(v) for v in diffs[[label == kind for label in labels]].mean(axis=0)]
        for kind in sorted({k for k in labels if k is not None})
    }
    return {
        "mean": [float(v) for v in diffs.mean(axis=0)],
        "stderr": [_stderr(column) for column in diffs.T],
        "by_kind": by_kind,
    }


def margin_per_episode(pearl: Sequence[np.ndarray], scripted: Sequence[np.ndarray]) -> dict[str, list]:
    """PEARL minus the scripted controller per episode, paired on goal sequences pooled over seeds (each
    ``[tasks, repeats, episodes]``; the scripted return of a sequence is its mean over episodes)."""
    diffs = np.concatenate(
        [(p - s.mean(axis=2, keepdims=True)).reshape(-1, p.shape[-1]) for p, s in zip(pearl, scripted)]
    )
    means = diffs.mean(axis=0)
    errors = [_stderr(column) for column in diffs.T]
    above = [e is not None and bool(m > 2 * e) for m, e in zip(means, errors)]
    return {"mean": [float(m) for m in means], "stderr": errors, "clearly_above": above}


def adaptation_value(per_task: np.ndarray, best_single: np.ndarray, random: np.ndarray) -> float | None:
    """``(R_per_task - R_best_single) / (R_best_single - R_random)`` over all the returns given; None where
    the best single controller is not above random."""
    single = float(np.mean(best_single))
    floor = single - float(np.mean(random))
    if not floor > 0:
        return None
    return (float(np.mean(per_task)) - single) / floor


def paired_margin(pearl: np.ndarray, other: np.ndarray, prior_episodes: int) -> dict[str, object]:
    """Mean over goal sequences of (PEARL - other), each averaged over the episodes after the prior ones,
    with its standard error; ``clearly_above`` when the mean exceeds two standard errors. One goal
    sequence has no standard error (``None``, strict JSON has no infinity) and is never clearly above."""
    later = slice(min(prior_episodes, pearl.shape[1] - 1), pearl.shape[1])
    diff = pearl[:, later].mean(axis=1) - other[:, later].mean(axis=1)
    mean = float(diff.mean())
    if len(diff) < 2:
        return {"mean": round(mean, 4), "stderr": None, "clearly_above": False}
    stderr = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    return {"mean": round(mean, 4), "stderr": round(stderr, 4), "clearly_above": bool(mean > 2 * stderr)}


def _round(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return round(float(value), 4) if np.isfinite(value) else None
    return value


# ---- the benchmark ------------------------------------------------------------------------------------------


def _scripted(choice: Callable[[int], dict[str, float]]) -> Callable[[Any, int, int], Any]:
    return lambda env, t, r: ScriptedPolicy(env, choice(t)["gain"], choice(t)["blend"])  # noqa: ARG005


def evaluate_seed(
    s: int, configs: dict[str, PEARLConfig], runs: dict[str, Path], args: argparse.Namespace, grid: Grid
) -> dict[str, Any]:
    """Seed ``s``'s row of ``per_seed``, with its raw ``returns`` (method -> ``[tasks, repeats, episodes]``)
    and its ``family`` name: the scripted baselines tuned, then every method on the same goal sequences."""
    ep, rep, k = args.episodes, args.repeats, args.prior_episodes
    scripted_family = family_for(scripted_config(configs["pearl"]))
    train_tasks, test_tasks = scripted_family.split(s)
    indices = list(range(len(test_tasks))) if args.tasks is None else list(args.tasks)
    if not indices or any(not 0 <= i < len(test_tasks) for i in indices):
        raise PearlRobotError(f"bench adapt: --tasks must be indices of the {len(test_tasks)} held-out tasks")
    held_out = [test_tasks[i] for i in indices]
    best = tune_best_single(scripted_family, train_tasks, grid)
    per_task = tune_per_task(scripted_family, held_out, grid)
    _log(f"seed {s}: scripted best single gain {best['gain']} blend {best['blend']}")

    families = {name: family_for(c) for name, c in configs.items()}
    for name, fam in families.items():  # every method on the same held-out arms
        if [t.params for t in fam.split(s)[1]] != [t.params for t in test_tasks]:
            raise PearlRobotError(f"bench adapt: {name}'s family splits its tasks differently")

    def learned(name: str, prior_episodes: int) -> np.ndarray:
        return evaluate(families[name], held_out, _learned(runs[name], families[name]), ep, rep, prior_episodes)

    n_joint = len(scripted_family.spec.arm_joint_indices)
    pearl = _learned(runs["pearl"], families["pearl"])
    result = {
        PEARL: evaluate(families["pearl"], held_out, pearl, ep, rep, k),
        PRIOR: evaluate(families["pearl"], held_out, pearl, ep, rep, ep),
        DR: learned(DR, ep),
        RL_ORACLE: learned(RL_ORACLE, ep),
        BEST_SINGLE: evaluate(scripted_family, held_out, _scripted(lambda t: best), ep, rep, ep),  # noqa: ARG005
        PER_TASK: evaluate(scripted_family, held_out, _scripted(lambda t: per_task[t]), ep, rep, ep),
        RANDOM: evaluate(
            scripted_family, held_out, lambda env, t, r: RandomPolicy(n_joint, 1000 * (r + 1) + t), ep, rep, ep
        ),
    }
    if JOINT in families:
        result[JOINT] = learned(JOINT, k)
    oracle = best_oracle(result[RL_ORACLE], result[PER_TASK])
    return {
        "seed": s,
        "held_out_tasks": [
            {"index": i, "task": t.index, "kind": t.params.get("extra", {}).get("kind"), "dynamics": t.params}
            for i, t in zip(indices, held_out)
        ],
        "return_per_episode": {m: v.mean(axis=(0, 1)).tolist() for m, v in result.items()},
        "best_oracle": oracle,
        "dr_sac_level": float(result[DR].mean()),
        "gap_closed_per_episode": gap_closed(result[PEARL], result[DR], oracle).tolist(),
        "adaptation_value": adaptation_value(result[PER_TASK], result[BEST_SINGLE], result[RANDOM]),
        "scripted": {"best_single": best, "per_task": [{"index": i, **c} for i, c in zip(indices, per_task)]},
        "runs": {name: str(path) for name, path in runs.items()},
        "returns": result,
        "family": scripted_family.name,
    }


def _log(message: str) -> None:
    print(f"bench adapt: {message}", file=sys.stderr, flush=True)


def run_scripted_only(args: argparse.Namespace, base: PEARLConfig, grid: Grid) -> dict[str, object]:
    """What tuning a classical controller per task is worth on ``base``'s family, per seed and pooled: the
    question of whether adaptation can pay there at all, answered without training anything."""
    started = time.perf_counter()
    ep, rep = args.episodes, args.repeats
    family = family_for(scripted_config(base))
    n_joint = len(family.spec.arm_joint_indices)
    per_seed, pooled = [], {BEST_SINGLE: [], PER_TASK: [], RANDOM: []}
    for s in range(args.seeds):
        train_tasks, test_tasks = family.split(s)
        held_out = test_tasks if args.tasks is None else [test_tasks[i] for i in args.tasks]
        best = tune_best_single(family, train_tasks, grid)
        per_task = tune_per_task(family, held_out, grid)
        returns = {
            BEST_SINGLE: evaluate(family, held_out, _scripted(lambda t, b=best: b), ep, rep, ep),  # noqa: ARG005
            PER_TASK: evaluate(family, held_out, _scripted(lambda t, c=per_task: c[t]), ep, rep, ep),
            RANDOM: evaluate(
                family, held_out, lambda env, t, r: RandomPolicy(n_joint, 1000 * (r + 1) + t), ep, rep, ep
            ),
        }
        for m, v in returns.items():
            pooled[m].append(v.ravel())
        per_seed.append(
            {
                "seed": s,
                "return_level": {m: float(v.mean()) for m, v in returns.items()},
                "adaptation_value": adaptation_value(returns[PER_TASK], returns[BEST_SINGLE], returns[RANDOM]),
                "scripted": {"best_single": best, "per_task": per_task},
            }
        )
        _log(f"seed {s}: scripted baselines ({time.perf_counter() - started:.0f} s)")
    pooled_returns = {m: np.concatenate(v) for m, v in pooled.items()}
    value = adaptation_value(pooled_returns[PER_TASK], pooled_returns[BEST_SINGLE], pooled_returns[RANDOM])
    result = {
        "benchmark": "adapt",
        "mode": "scripted-only",
        "family": family.name,
        "config": args.config,
        "overrides": list(args.set),
        "seeds": args.seeds,
        "episodes": ep,
        "repeats": rep,
        "return_level": {m: float(v.mean()) for m, v in pooled_returns.items()},
        "adaptation_value": value,
        "adaptation_value_per_seed": [row["adaptation_value"] for row in per_seed],
        "targets": {"adaptation_value>=0.25": bool(value is not None and value >= 0.25)},
        "definitions": {k: DEFINITIONS[k] for k in ("adaptation_value",) if k in DEFINITIONS},
        "scripted_grid": grid.to_dict(),
        "per_seed": per_seed,
        "command": list(sys.argv),
        "machine": machine(),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    result = _round(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_adapt_scripted.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    return result


def run(args: argparse.Namespace) -> dict[str, object]:
    started = time.perf_counter()
    command = list(sys.argv)
    base = apply_overrides(load_config(args.config), args.set)
    if args.seeds < 1 or args.episodes < 1 or args.repeats < 1 or args.prior_episodes < 0:
        raise PearlRobotError("bench adapt: --seeds, --episodes and --repeats must be >= 1, --prior-episodes >= 0")
    grid = Grid(
        tuple(args.scripted_gains) if args.scripted_gains else GAINS,
        tuple(args.scripted_blends) if args.scripted_blends else BLENDS,
    )
    if args.scripted_only:
        return run_scripted_only(args, base, grid)
    ep, rep, k = args.episodes, args.repeats, args.prior_episodes
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. the learned methods of every seed, trained (or reused, or resumed) n_jobs at a time
    seeds = list(range(args.seeds))
    configs = {s: method_configs(replace(base, seed=s), args.side_by_side) for s in seeds}
    runs = {s: {name: args.out / f"seed-{s}" / name for name in configs[s]} for s in seeds}
    if args.checkpoint is not None:
        _check_checkpoint(args.checkpoint, configs[0]["pearl"])
        runs[0]["pearl"] = args.checkpoint
    jobs = [
        TrainJob(f"seed {s} {name}", configs[s][name], runs[s][name])
        for s in seeds
        for name in configs[s]
        if not (s == 0 and name == "pearl" and args.checkpoint is not None)
    ]
    for job in jobs:
        job.run_dir.parent.mkdir(parents=True, exist_ok=True)
    train_all(jobs, args.jobs, _log)

    # 2. per seed: tune the scripted baselines, evaluate everything on the same goal sequences
    per_seed = []
    returns: dict[int, dict[str, np.ndarray]] = {}
    for s in seeds:
        per_seed.append(evaluate_seed(s, configs[s], runs[s], args, grid))
        returns[s] = per_seed[-1].pop("returns")
        _log(f"seed {s}: evaluated ({time.perf_counter() - started:.0f} s)")
    family_name = per_seed[0].pop("family")
    for row in per_seed[1:]:
        row.pop("family")

    # 3. the figures over seeds
    methods = list(returns[seeds[0]])
    per_episode = {m: np.stack([returns[s][m].mean(axis=(0, 1)) for s in seeds]) for m in methods}  # [seeds, ep]
    return_mean, return_err, level, level_err = {}, {}, {}, {}
    for m in methods:
        return_mean[m], return_err[m] = mean_stderr(per_episode[m])
        if m not in ADAPTIVE:
            (level[m],), (level_err[m],) = mean_stderr(per_episode[m].mean(axis=1, keepdims=True))
    gap_mean, gap_err = mean_stderr(np.array([row["gap_closed_per_episode"] for row in per_seed], dtype=float))
    margin = margin_per_episode([returns[s][PEARL] for s in seeds], [returns[s][BEST_SINGLE] for s in seeds])
    levels = np.array([row["dr_sac_level"] for row in per_seed])
    oracles = np.array([row["best_oracle"] for row in per_seed])
    gap_pooled = pooled_gap_closed(per_episode[PEARL], levels, oracles)
    over_oracle = margin_over_oracle(
        [returns[s][PEARL] for s in seeds],
        [oracle_per_task(returns[s][RL_ORACLE], returns[s][PER_TASK]) for s in seeds],
        [[task["kind"] for task in row["held_out_tasks"]] for row in per_seed],
    )
    pooled = {m: np.concatenate([returns[s][m].ravel() for s in seeds]) for m in (PER_TASK, BEST_SINGLE, RANDOM)}
    value = adaptation_value(pooled[PER_TASK], pooled[BEST_SINGLE], pooled[RANDOM])
    sequences = {m: np.concatenate([returns[s][m].reshape(-1, ep) for s in seeds]) for m in methods}
    margins = {f"pearl_minus_{m}": paired_margin(sequences[PEARL], sequences[m], k) for m in (PRIOR, DR, BEST_SINGLE)}
    third = min(2, ep - 1)
    gap_third = gap_mean[third]
    result: dict[str, object] = {
        "benchmark": "adapt",
        "family": family_name,
        "config": args.config,
        "overrides": list(args.set),
        "seeds": len(seeds),
        "episodes": ep,
        "repeats": rep,
        "prior_episodes": k,
        "held_out_tasks": [row["index"] for row in per_seed[0]["held_out_tasks"]],
        "methods": methods,
        "return_per_episode": return_mean,
        "return_stderr_per_episode": return_err,
        "return_level": level,
        "return_level_stderr": level_err,
        "gap_closed_per_episode": gap_mean,
        "gap_closed_stderr_per_episode": gap_err,
        "gap_closed_pooled_per_episode": gap_pooled,
        "gap_closed_pooled_leave_one_seed_out_min_per_episode": leave_one_out_min_gap(
            per_episode[PEARL], levels, oracles
        ),
        "pearl_minus_best_oracle_per_episode": over_oracle["mean"],
        "pearl_minus_best_oracle_stderr_per_episode": over_oracle["stderr"],
        "pearl_minus_best_oracle_by_kind_per_episode": over_oracle["by_kind"],
        "margin_over_scripted_per_episode": margin["mean"],
        "margin_over_scripted_stderr_per_episode": margin["stderr"],
        "clearly_above": margin["clearly_above"],
        "adaptation_value": value,
        "adaptation_value_per_seed": [row["adaptation_value"] for row in per_seed],
        "margins_after_prior_episodes": margins,
        "scripted_grid": grid.to_dict(),
        "scripted_parameters": [{"seed": row["seed"], **row["scripted"]} for row in per_seed],
        "targets": {
            "pearl_above_best_single_scripted_by_episode_3": margin["clearly_above"][third],
            "gap_closed_by_episode_3>=0.9": bool(gap_third is not None and gap_third >= 0.9),
            "gap_closed_pooled_by_episode_3>=0.9": bool(gap_pooled[third] is not None and gap_pooled[third] >= 0.9),
            "adaptation_value>=0.25": bool(value is not None and value >= 0.25),
        },
        "definitions": DEFINITIONS,
        "per_seed": per_seed,
        "runs": {f"seed-{s}": {name: str(path) for name, path in runs[s].items()} for s in seeds},
        "command": command,
        "machine": machine(),
    }
    result = _round(result)
    for row in result["per_seed"]:  # the raw returns, [held-out task][repeat][episode], unrounded: every
        row["returns"] = {m: v.tolist() for m, v in returns[row["seed"]].items()}  # figure recomputes from them
    result["wall_s"] = round(time.perf_counter() - started, 1)
    from pearl_robot.bench.adapt_plot import plot

    plot(result, args.out / "bench_adapt.png")
    result["figure"] = str(args.out / "bench_adapt.png")
    (args.out / "bench_adapt.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    return result
