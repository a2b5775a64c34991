"""Adaptation on held-out arm dynamics: PEARL (posterior sampling) vs the same policy held at z from the
prior vs multi-task SAC without context vs an oracle trained on that exact task, return per episode.

Every method runs the same goal sequences (one per repeat), so comparisons are paired: "clearly above"
means the mean paired difference over the episodes after the prior ones exceeds twice its standard error."""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from pearl_robot.adapt.policy import family_for, load_run
from pearl_robot.adapt.session import AdaptationSession, SessionConfig
from pearl_robot.adapt.store import SessionStore
from pearl_robot.bench.common import machine
from pearl_robot.control.loop import RateLoop
from pearl_robot.errors import PearlRobotError
from pearl_robot.pearl.config import PEARLConfig, apply_overrides, load_config
from pearl_robot.robot.registry import open_robot


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="arm-dynamics-medium", help="PEARL config to train (default %(default)s)")
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--checkpoint", type=Path, default=None, help="reuse a trained PEARL run for (a) and (b)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-adapt"), help="where the runs are trained")
    parser.add_argument("--task", type=int, default=0, help="held-out test task index (default %(default)s)")
    parser.add_argument("--episodes", type=int, default=5, help="adaptation episodes (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=16, help="goal sequences averaged over (default %(default)s)")
    parser.add_argument("--prior-episodes", type=int, default=1, help="episodes with z from the prior")
    parser.add_argument(
        "--oracle-iterations", type=float, default=2.0, help="oracle's training iterations, as a multiple of PEARL's"
    )


class RandomPolicy:
    """Uniform random actions: the floor for normalised scores."""

    latent_size = 1

    def __init__(self, action_dim: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.action_dim = action_dim

    def act(self, obs, z, deterministic=True):  # noqa: ARG002
        return self.rng.uniform(-1, 1, self.action_dim)

    def context_reward(self, reward, info):  # noqa: ARG002
        return reward

    def context_row(self, obs, action, reward, next_obs):  # noqa: ARG002
        return np.zeros(1)

    def posterior(self, context):  # noqa: ARG002
        return np.zeros(1), np.ones(1)

    def prior(self):
        return np.zeros(1), np.ones(1)


def train(cfg: PEARLConfig, run_dir: Path) -> Path:
    """Train ``cfg`` into ``run_dir``; a run left there by an earlier, interrupted benchmark is resumed
    (a finished one is reused as it is), never evaluated half-trained."""
    from pearl_robot.pearl.trainer import CHECKPOINT, MetaTrainer

    if (run_dir / CHECKPOINT).exists():
        trainer = MetaTrainer.from_checkpoint(run_dir)
        if replace(trainer.cfg, device=cfg.device, torch_threads=cfg.torch_threads) != cfg:  # how it ran may differ
            trainer.close()
            raise PearlRobotError(f"{run_dir} holds a run of another configuration; give another --out")
    else:
        trainer = MetaTrainer(cfg, run_dir=run_dir)
    try:
        trainer.train()  # nothing to do when the restored run is complete
    finally:
        trainer.close()
    return run_dir


def oracle_config(cfg: PEARLConfig, task_params: dict, iterations_factor: float) -> PEARLConfig:
    """Copies of exactly the held-out task, without context, trained ``iterations_factor`` times as long: an
    upper reference, not a competitor on the same budget."""
    params = {
        **cfg.family_params,
        "center": task_params,
        "gain_range": [1.0, 1.0],
        "damping_range": [1.0, 1.0],
        "frictionloss_range": [1.0, 1.0],
        "payload_range_kg": [0.0, 0.0],
        "latency_range_s": [0.0, 0.0],
    }
    iterations = max(1, round(cfg.num_iterations * iterations_factor))
    return replace(cfg, family_params=params, use_context=False, num_iterations=iterations)


def evaluate(policy, cfg: PEARLConfig, task_index: int, episodes: int, repeats: int, prior_episodes: int) -> np.ndarray:
    """Returns ``[repeats, episodes]``: the adaptation protocol on the held-out task, one goal sequence per
    repeat (the same sequences for every method)."""
    family = family_for(cfg)
    _, test_tasks = family.split(cfg.seed)
    out = np.zeros((repeats, episodes))
    for r in range(repeats):
        robot = open_robot("sim", family.spec)
        env = family.make_env(robot=robot, loop=RateLoop(robot.spec.period_s, realtime=False))
        family.apply(env, test_tasks[task_index])
        with tempfile.TemporaryDirectory() as tmp, robot:
            store = SessionStore(Path(tmp) / "session")
            store.create({"benchmark": "adapt"})
            session = AdaptationSession(
                env, policy, store, SessionConfig(episodes, prior_episodes, seed=1000 * (r + 1), same_start=True)
            )
            out[r] = [s.episode_return for s in session.run()]
    return out


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


def run(args: argparse.Namespace) -> dict[str, object]:
    cfg = apply_overrides(load_config(args.config), args.set)
    family = family_for(cfg)
    _, test_tasks = family.split(cfg.seed)
    held_out = test_tasks[args.task]
    args.out.mkdir(parents=True, exist_ok=True)
    pearl_run = args.checkpoint or train(cfg, args.out / "pearl")
    pearl_cfg, pearl = load_run(pearl_run)
    sac_run = train(replace(pearl_cfg, use_context=False), args.out / "multitask_sac")
    oracle_run = train(oracle_config(pearl_cfg, held_out.params, args.oracle_iterations), args.out / "oracle")

    ep, rep, k = args.episodes, args.repeats, args.prior_episodes
    results = {
        "pearl_posterior_sampling": evaluate(pearl, pearl_cfg, args.task, ep, rep, k),
        "pearl_prior_z": evaluate(pearl, pearl_cfg, args.task, ep, rep, ep),
        "multitask_sac": evaluate(load_run(sac_run)[1], pearl_cfg, args.task, ep, rep, ep),
        "oracle": evaluate(load_run(oracle_run)[1], pearl_cfg, args.task, ep, rep, ep),
        "random": evaluate(RandomPolicy(family.make_env().action_space.shape[0], 0), pearl_cfg, args.task, ep, rep, ep),
    }
    means = {name: values.mean(axis=0) for name, values in results.items()}
    oracle_mean = float(means["oracle"].mean())  # the oracle does not adapt: one level over all episodes
    random_mean = float(means["random"].mean())
    fraction = (means["pearl_posterior_sampling"] - random_mean) / (oracle_mean - random_mean)
    third = min(2, ep - 1)
    margins = {
        f"pearl_minus_{name}": paired_margin(results["pearl_posterior_sampling"], results[name], k)
        for name in ("pearl_prior_z", "multitask_sac")
    }
    result: dict[str, object] = {
        "benchmark": "adapt",
        "machine": machine(),
        "config": args.config,
        "held_out_task": {"index": args.task, "dynamics": held_out.params},
        "episodes": ep,
        "repeats": rep,
        "prior_episodes": k,
        "return_per_episode": {name: np.round(m, 4).tolist() for name, m in means.items()},
        "return_std_per_episode": {name: np.round(v.std(axis=0), 4).tolist() for name, v in results.items()},
        "fraction_of_oracle": np.round(fraction, 4).tolist(),
        "fraction_of_oracle_definition": "(R_pearl - R_random) / (R_oracle - R_random); R_oracle: mean over episodes",
        "margins_after_prior_episodes": margins,
        "targets": {
            "fraction_of_oracle_by_episode_3>=0.9": bool(fraction[third] >= 0.9),
            "pearl_above_prior_z": margins["pearl_minus_pearl_prior_z"]["clearly_above"],
            "pearl_above_multitask_sac": margins["pearl_minus_multitask_sac"]["clearly_above"],
        },
        "runs": {"pearl": str(pearl_run), "multitask_sac": str(sac_run), "oracle": str(oracle_run)},
    }
    (args.out / "bench_adapt.json").write_text(json.dumps(result, indent=2))
    return result
