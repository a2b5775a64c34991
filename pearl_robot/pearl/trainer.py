"""MetaTrainer: PEARL's meta-training loop (collection schedule, gradient steps, evaluation, checkpoints).

Per iteration (PEARL.md "Data collection per iteration"):
- iteration 0 only: ``num_initial_steps`` per train task with z ~ prior (resampled per trajectory), into
  both buffers;
- ``num_tasks_sample`` train tasks (drawn with replacement); for each: clear its encoder buffer, then
  ``num_steps_prior`` steps with z ~ prior (both buffers), ``num_steps_posterior`` steps with z ~ the
  posterior of context drawn from the encoder buffer (both buffers), ``num_extra_rl_steps_posterior``
  steps with z ~ posterior (RL buffer only); the posterior is re-inferred every ``update_post_train``
  trajectories and z resampled every trajectory. Deliberate difference: a posterior block starts from the
  posterior of the encoder buffer when it holds data (the reference starts each block from a prior z;
  ``posterior_block_starts_from_prior: true`` restores that);
- ``num_train_steps_per_itr`` gradient steps, ``meta_batch`` train tasks drawn per step (with
  replacement), batched over the tasks (``SoftActorCritic``);
- evaluation (``Evaluator``) every ``eval_every`` iterations and at the last one.

Collection runs through a ``Collector`` (``collector.py``): the iteration's schedule becomes one seeded job per
task visit, run in process (the default) or on Ray workers (``pearl_robot.distributed.RayCollector``) with
identical results; the learner, the buffers and evaluation stay here.

Randomness: torch (network init, the policy and z noise of gradient steps) from ``seed``; numpy
generators for collection (the tasks visited and one seed per job, which seeds the job's actions, z,
context batches and environment reset seeds) and for batch sampling; task splits from
``family.split(seed)``; evaluation from a generator derived from (seed, iteration), so it never perturbs
training. All of it is in the checkpoint, so ``resume`` continues exactly.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pearl_robot.errors import ConfigError, PearlRobotError
from pearl_robot.io import atomic_path, manifest_mismatches, write_manifest
from pearl_robot.pearl.agent import AgentDims, PEARLAgent
from pearl_robot.pearl.buffers import Layout, MultiTaskReplayBuffer
from pearl_robot.pearl.collector import (
    SEED_BOUND,
    Block,
    CollectJob,
    Collector,
    InProcessCollector,
    JobResult,
    RolloutRunner,
)
from pearl_robot.pearl.config import FIELDS, PEARLConfig, apply_overrides, config_from_dict, save_config
from pearl_robot.pearl.evaluator import EvalResult, Evaluator
from pearl_robot.pearl.numpy_policy import NumpyAgent
from pearl_robot.pearl.perf import configure_torch, resolve_device
from pearl_robot.pearl.run_log import CsvLog, ProgressBar, TensorBoardLog
from pearl_robot.pearl.sac import STAT_NAMES, SoftActorCritic, TrainBatch
from pearl_robot.pearl.sampler import Path as Trajectory
from pearl_robot.tasks.base import TaskFamily

CHECKPOINT = "checkpoint.pt"
POLICY_EXPORT = "policy.npz"
# names checkpoint.pt and policy.npz with their sha256 and iteration; written last, it makes them one pair
PAIR_MANIFEST = "checkpoint.json"
CHECKPOINT_FORMAT = 1
EVAL_STREAM = 0xE7A1
# fields that may change when a run is resumed (they do not change what has been computed)
RESUMABLE_FIELDS = {"num_iterations", "eval_every", "checkpoint_every", "tensorboard", "torch_threads"}


@dataclass(frozen=True)
class CollectRecord:
    """One collected trajectory (kept for the current iteration; the schedule tests read it)."""

    iteration: int
    task: int
    block: str  # initial | prior | posterior | extra
    z_source: str  # prior | posterior
    context_size: int  # encoder-buffer transitions the posterior was inferred from (0: prior)
    steps: int
    to_encoder: bool


def make_task_family(cfg: PEARLConfig) -> TaskFamily:
    from pearl_robot.tasks.registry import make_family

    params = dict(cfg.family_params)
    if cfg.max_path_length is not None:
        params.setdefault("max_path_length", cfg.max_path_length)
    return make_family(cfg.family, **params)


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


class MetaTrainer:
    def __init__(
        self,
        cfg: PEARLConfig,
        run_dir: str | os.PathLike[str] | None = None,
        family: TaskFamily | None = None,
        progress: ProgressBar | None = None,
        collector: Collector | None = None,
    ) -> None:
        self.cfg = cfg.validate()
        self.threads = configure_torch(cfg.torch_threads)
        self.device = resolve_device(cfg.device)
        self.family = family if family is not None else make_task_family(cfg)
        self.train_tasks, self.test_tasks = self.family.split(cfg.seed)
        if not self.train_tasks:
            raise ConfigError("<config>", "family_params", f"family '{cfg.family}' has no train tasks")
        self.max_path_length = int(cfg.max_path_length or self.family.max_path_length)
        self.env = self.family.make_env(seed=cfg.seed)  # the first collection env
        self.eval_env = self.family.make_env(seed=cfg.seed + 1)
        obs_dim = int(np.prod(self.env.observation_space.shape))
        action_dim = int(np.prod(self.env.action_space.shape))
        self.layout = Layout(obs_dim, action_dim)
        self.context_columns = self.layout.context_columns(cfg.use_next_obs_in_context, cfg.sparse_rewards)
        self.runner = RolloutRunner(cfg, self.family, self.train_tasks, self.layout, self.max_path_length, self.env)
        # where collection jobs run; RayCollector (pearl_robot.distributed) for --workers N
        self.collector: Collector = collector if collector is not None else InProcessCollector(self.runner)

        torch.manual_seed(cfg.seed)
        self.agent = PEARLAgent(AgentDims.from_config(cfg, obs_dim, action_dim)).to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.sac = SoftActorCritic(
            self.agent,
            lr=cfg.lr,
            reward_scale=cfg.reward_scale,
            kl_lambda=cfg.kl_lambda,
            gamma=cfg.gamma,
            tau=cfg.tau,
            policy_mean_reg_weight=cfg.policy_mean_reg_weight,
            policy_std_reg_weight=cfg.policy_std_reg_weight,
            generator=self.generator,
            learned_temperature=cfg.learned_temperature,
            target_entropy=cfg.target_entropy,
        )
        n = len(self.train_tasks)
        self.rl_buffer = MultiTaskReplayBuffer(n, self.layout, cfg.replay_buffer_size)
        self.enc_buffer = MultiTaskReplayBuffer(n, self.layout, cfg.replay_buffer_size)
        self.collect_rng = np.random.default_rng([cfg.seed, 1])
        self.train_rng = np.random.default_rng([cfg.seed, 2])
        self.evaluator = Evaluator.from_config(cfg, self.family, self.eval_env, self.layout, self.max_path_length)

        self.iteration = 0  # the next iteration to run
        self.env_steps = 0  # training samples (evaluation not counted)
        self.collection_log: list[CollectRecord] = []
        self._np_agent: NumpyAgent | None = None
        self._iteration_paths: list[Trajectory] = []

        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self._csv: CsvLog | None = None
        self._timing: CsvLog | None = None
        self._tb: TensorBoardLog | None = None

    # ---- columns -----------------------------------------------------------------------------------
    @property
    def num_eval_trajectories(self) -> int:
        return self.evaluator.num_trajectories

    def progress_columns(self) -> list[str]:
        k = self.num_eval_trajectories
        return [
            "iteration",
            "env_steps",
            "train_steps",
            "collect_return",
            "train_return_last",
            "test_return_last",
            *(f"test_return_traj_{i}" for i in range(k)),
            *(f"train_return_traj_{i}" for i in range(k)),
            *STAT_NAMES,
        ]

    # ---- run folder ----------------------------------------------------------------------------------
    def _open_logs(self) -> None:
        if self.run_dir is None or self._csv is not None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.run_dir / "config.yaml")
        self._csv = CsvLog(self.run_dir / "progress.csv", self.progress_columns())
        self._timing = CsvLog(
            self.run_dir / "timing.csv", ["iteration", "collect_s", "train_s", "eval_s", "total_s", "threads"]
        )
        self._csv.truncate_to(self.iteration)
        self._timing.truncate_to(self.iteration)
        if self.cfg.tensorboard:
            # TensorBoard steps are env steps: on resume, drop events logged after the checkpoint
            purge = self.env_steps + 1 if self.iteration else None
            self._tb = TensorBoardLog(self.run_dir / "tensorboard", purge_step=purge)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    # ---- collection ----------------------------------------------------------------------------------
    def numpy_agent(self) -> NumpyAgent:
        """The current policy and encoder in numpy (re-exported after each training phase)."""
        if self._np_agent is None:
            self._np_agent = self.agent.export_numpy()
        return self._np_agent

    def sample_context(self, tasks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Context ``[len(tasks), embedding_batch_size, context_dim]`` from the encoder buffer."""
        if self.cfg.recurrent:
            rows = self.enc_buffer.sample_sequence(tasks, self.cfg.embedding_batch_size, rng)
        else:
            rows = self.enc_buffer.sample(tasks, self.cfg.embedding_batch_size, rng)
        return rows[..., self.context_columns]

    def _record(
        self, task: int, block: str, paths: list[Trajectory], sizes: list[int], to_encoder: bool, add_encoder: bool
    ) -> None:
        for path, size in zip(paths, sizes):
            self.rl_buffer.add(task, path.rows)
            if add_encoder:
                self.enc_buffer.add(task, path.rows)
            self.collection_log.append(
                CollectRecord(self.iteration, task, block, path.z_source, size, path.length, to_encoder)
            )
        self._iteration_paths.extend(paths)

    def collect(self, task: int, num_samples: int, block: str, add_to_encoder: bool = True) -> int:
        """Collect one block on train task ``task`` in process, straight into the buffers, with the posterior
        inferred from the task's encoder buffer as it is (no clearing) and draws from the collection
        generator. Training itself collects through ``collect_iteration_data``; this is for benchmarks and
        experiments. ``block``: ``initial``/``prior``/``posterior``/``extra`` (``collector.Block``)."""
        spec = Block(block, num_samples, add_to_encoder)
        out = self.runner.collect_block(
            self.train_tasks[task], spec, self.enc_buffer, task, self.numpy_agent(), self.collect_rng
        )
        # the runner already added the encoder-bound paths to the encoder buffer (later inferences read them)
        self._record(task, block, out.paths, out.context_sizes, add_to_encoder, add_encoder=False)
        collected = sum(p.length for p in out.paths)
        self.env_steps += collected
        return collected

    def collection_jobs(self) -> list[CollectJob]:
        """This iteration's collection schedule as jobs, in the order their data enter the buffers: iteration
        0, one ``initial`` job per train task; then ``num_tasks_sample`` train tasks drawn with replacement,
        one prior / posterior / extra job each. Draws the tasks and one seed per job from the collection
        generator (so the data do not depend on where or in which order the jobs run)."""
        cfg = self.cfg

        def seed() -> int:
            return int(self.collect_rng.integers(SEED_BOUND))

        jobs = []
        if self.iteration == 0 and cfg.num_initial_steps > 0:
            initial = (Block("initial", cfg.num_initial_steps, True),)
            jobs = [CollectJob(task, initial, seed(), clear_encoder=False) for task in range(len(self.train_tasks))]
        blocks = tuple(
            b
            for b in (
                Block("prior", cfg.num_steps_prior, True),
                Block("posterior", cfg.num_steps_posterior, True),
                Block("extra", cfg.num_extra_rl_steps_posterior, False),
            )
            if b.num_samples > 0
        )
        for _ in range(cfg.num_tasks_sample):
            task = int(self.collect_rng.integers(len(self.train_tasks)))
            jobs.append(CollectJob(task, blocks, seed(), clear_encoder=True))
        return jobs

    def add_results(self, jobs: list[CollectJob], results: list[JobResult]) -> None:
        """Add whole job results to the buffers in job order; checks every result first, so a wrong or
        missing one changes nothing."""
        if len(results) != len(jobs):
            raise PearlRobotError(f"collection returned {len(results)} results for {len(jobs)} jobs")
        for job, result in zip(jobs, results):
            try:
                result.check(job, self.layout.width)
            except ValueError as exc:
                raise PearlRobotError(f"collection returned an incomplete result: {exc}") from None
        for result in results:
            job = result.job
            if job.clear_encoder:
                self.enc_buffer.clear(job.task)
            for out in result.blocks:
                b = out.block
                self._record(job.task, b.name, out.paths, out.context_sizes, b.to_encoder, add_encoder=b.to_encoder)
            self.env_steps += result.env_steps

    def collect_iteration_data(self) -> None:
        jobs = self.collection_jobs()
        results = self.collector.collect(jobs, self.numpy_agent())
        self.add_results(jobs, results)

    # ---- gradient steps ------------------------------------------------------------------------------
    def sample_batch(self, tasks: np.ndarray, rng: np.random.Generator | None = None) -> TrainBatch:
        rng = rng or self.train_rng
        lay = self.layout
        rl = torch.from_numpy(self.rl_buffer.sample(tasks, self.cfg.batch_size, rng))
        context = torch.from_numpy(np.ascontiguousarray(self.sample_context(tasks, rng)))
        batch = TrainBatch(
            obs=rl[..., lay.obs],
            actions=rl[..., lay.action],
            rewards=rl[..., lay.reward : lay.reward + 1],
            next_obs=rl[..., lay.next_obs],
            terminals=rl[..., lay.terminal : lay.terminal + 1],
            context=context,
        )
        return batch if self.device.type == "cpu" else batch.to(self.device)

    def train_steps(self, num_steps: int) -> dict[str, float]:
        """``num_steps`` gradient steps; returns the mean of each statistic in STAT_NAMES."""
        ready = (self.rl_buffer.size > 0) & (self.enc_buffer.size > 0)
        if ready.all():
            candidates = None  # every train task (the usual case: iteration 0 collected for all)
        elif ready.any():
            candidates = np.flatnonzero(ready)  # e.g. num_initial_steps: 0; only tasks with data
        else:
            raise PearlRobotError("no train task has data in both buffers yet: raise num_initial_steps")
        n = len(self.train_tasks)
        total = torch.zeros(len(STAT_NAMES), device=self.device)
        for _ in range(num_steps):
            if candidates is None:
                tasks = self.train_rng.integers(n, size=self.cfg.meta_batch)
            else:
                tasks = candidates[self.train_rng.integers(len(candidates), size=self.cfg.meta_batch)]
            total += self.sac.train_step(self.sample_batch(tasks))
        self._np_agent = None  # weights changed: re-export for acting
        means = (total / max(num_steps, 1)).tolist()
        return dict(zip(STAT_NAMES, means))

    # ---- evaluation ----------------------------------------------------------------------------------
    def evaluation_rng(self, iteration: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, EVAL_STREAM, iteration])

    def evaluate(self, iteration: int | None = None) -> tuple[EvalResult, EvalResult]:
        """The protocol on the test tasks and on a subset of train tasks (as many as test tasks unless
        ``num_eval_train_tasks`` says otherwise); reproducible from (seed, iteration)."""
        iteration = self.iteration if iteration is None else iteration
        rng = self.evaluation_rng(iteration)
        n_train = self.cfg.num_eval_train_tasks
        if n_train is None:
            n_train = len(self.test_tasks)
        n_train = min(n_train, len(self.train_tasks))
        chosen = rng.choice(len(self.train_tasks), size=n_train, replace=False) if n_train else []
        agent = self.numpy_agent()
        train = self.evaluator.evaluate(agent, [self.train_tasks[i] for i in chosen], rng, self.cfg.num_evals)
        test = self.evaluator.evaluate(agent, self.test_tasks, rng, self.cfg.num_evals)
        return train, test

    # ---- the loop ------------------------------------------------------------------------------------
    def run_iteration(self) -> dict[str, Any]:
        cfg = self.cfg
        it = self.iteration
        self.collection_log = []
        self._iteration_paths = []
        t0 = time.perf_counter()
        self.collect_iteration_data()
        t1 = time.perf_counter()
        stats = self.train_steps(cfg.num_train_steps_per_itr)
        t2 = time.perf_counter()
        returns = [p.reported_return(cfg.sparse_rewards) for p in self._iteration_paths]
        row: dict[str, Any] = {
            "iteration": it,
            "env_steps": self.env_steps,
            "train_steps": self.sac.num_steps,
            "collect_return": float(np.mean(returns)) if returns else None,
            **stats,
        }
        if (it + 1) % cfg.eval_every == 0 or it + 1 >= cfg.num_iterations:
            train, test = self.evaluate(it)
            row["test_return_last"] = test.final_return if test.returns.size else None
            row["train_return_last"] = train.final_return if train.returns.size else None
            for i in range(self.num_eval_trajectories):
                if test.returns.size:
                    row[f"test_return_traj_{i}"] = float(test.online_returns[i])
                if train.returns.size:
                    row[f"train_return_traj_{i}"] = float(train.online_returns[i])
        t3 = time.perf_counter()
        self.iteration += 1
        self.last_timing = {
            "iteration": it,
            "collect_s": t1 - t0,
            "train_s": t2 - t1,
            "eval_s": t3 - t2,
            "total_s": t3 - t0,
            "threads": self.threads,
        }
        return row

    def train(self, callback: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Run iterations until ``num_iterations``; logs, checkpoints and shows progress if there is a run
        folder. Returns the rows of the iterations run."""
        cfg = self.cfg
        self._open_logs()
        rows = []
        try:
            while self.iteration < cfg.num_iterations:
                row = self.run_iteration()
                rows.append(row)
                self._log(row)
                last = self.iteration >= cfg.num_iterations
                if self.run_dir is not None and (self.iteration % cfg.checkpoint_every == 0 or last):
                    self.save_checkpoint()
                if callback is not None:
                    callback(row)
        finally:
            self.close()
        return rows

    def _log(self, row: dict[str, Any]) -> None:
        timing = self.last_timing
        if self._csv is not None:
            self._csv.append(row)
            self._timing.append(timing)
        if self._tb is not None:
            step = row["env_steps"]
            self._tb.scalars({k: v for k, v in row.items() if k != "iteration"}, step, "pearl/")
            self._tb.scalars(timing, step, "timing/")
        if self.progress is not None:
            extra = ""
            if row.get("test_return_last") is not None:
                extra = f"test {row['test_return_last']:.2f}"
            steps_per_s = self.cfg.num_train_steps_per_itr / max(timing["train_s"], 1e-9)
            self.progress.update(
                row["iteration"], row["env_steps"], row["collect_return"], timing["total_s"], steps_per_s, extra
            )

    # ---- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        def buffer_state(buf: MultiTaskReplayBuffer) -> dict[str, torch.Tensor]:
            return {k: torch.from_numpy(v) for k, v in buf.state_dict().items()}

        return {
            "format_version": CHECKPOINT_FORMAT,
            "config": self.cfg.to_dict(),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "agent": self.agent.state_dict(),
            "sac": self.sac.state_dict(),
            "torch_generator": self.generator.get_state(),
            "collect_rng": _rng_state(self.collect_rng),
            "train_rng": _rng_state(self.train_rng),
            "rl_buffer": buffer_state(self.rl_buffer),
            "enc_buffer": buffer_state(self.enc_buffer),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format_version") != CHECKPOINT_FORMAT:
            raise PearlRobotError(f"unsupported checkpoint format {state.get('format_version')}")
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        self.agent.load_state_dict(state["agent"])
        self.sac.load_state_dict(state["sac"])
        self.generator.set_state(state["torch_generator"])
        _set_rng_state(self.collect_rng, state["collect_rng"])
        _set_rng_state(self.train_rng, state["train_rng"])
        self.rl_buffer.load_state_dict({k: v.numpy() for k, v in state["rl_buffer"].items()})
        self.enc_buffer.load_state_dict({k: v.numpy() for k, v in state["enc_buffer"].items()})
        self._np_agent = None

    def save_checkpoint(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the checkpoint and the numpy policy next to it, each atomically (temp file, fsync, rename),
        then the manifest naming both: a crash between the renames leaves a pair the loaders refuse
        (``pearl-robot train --resume`` rewrites it), never a new checkpoint silently beside an old policy."""
        if path is None:
            if self.run_dir is None:
                raise PearlRobotError("no run folder to checkpoint into")
            path = self.run_dir / CHECKPOINT
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)
        self._save_policy(path)
        return path

    def _save_policy(self, checkpoint: Path) -> None:
        policy = self.numpy_agent().save(checkpoint.with_name(POLICY_EXPORT))
        manifest = checkpoint.with_name(PAIR_MANIFEST)
        write_manifest(manifest, [checkpoint, policy], iteration=self.iteration, env_steps=self.env_steps)

    @classmethod
    def from_checkpoint(
        cls,
        run_dir: str | os.PathLike[str],
        overrides: list[str] | None = None,
        family: TaskFamily | None = None,
        progress: ProgressBar | None = None,
        for_resume: bool = True,
    ) -> MetaTrainer:
        """A trainer restored from ``RUN/checkpoint.pt``; ``overrides`` may change RESUMABLE_FIELDS only."""
        path = Path(run_dir)
        if path.is_dir():
            path = path / CHECKPOINT
        cfg, state = load_checkpoint(path)
        if overrides:
            changed = apply_overrides(cfg, overrides)
            for name in FIELDS:
                if getattr(changed, name) != getattr(cfg, name) and name not in RESUMABLE_FIELDS:
                    raise ConfigError("--set", name, f"cannot change on resume (only {sorted(RESUMABLE_FIELDS)})")
            cfg = changed
        trainer = cls(cfg, run_dir=path.parent if for_resume else None, family=family, progress=progress)
        trainer.load_state_dict(state)
        if for_resume and manifest_mismatches(path.with_name(PAIR_MANIFEST)):
            trainer._save_policy(path)  # a save cut short: the checkpoint is the truth, re-export its policy
        return trainer


def load_checkpoint(run: str | os.PathLike[str]) -> tuple[PEARLConfig, dict[str, Any]]:
    """(config, state) of ``RUN/checkpoint.pt`` (or a checkpoint file), loaded without unpickling code."""
    path = Path(run)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise PearlRobotError(f"{path}: no checkpoint there")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return config_from_dict(state["config"], path), state


@dataclass
class LoadedPolicy:
    """What evaluating a checkpoint needs, without buffers or optimizers."""

    cfg: PEARLConfig
    iteration: int
    family: TaskFamily
    train_tasks: list
    test_tasks: list
    agent: NumpyAgent
    evaluator: Evaluator


def load_policy(run: str | os.PathLike[str], num_steps_per_eval: int | None = None) -> LoadedPolicy:
    cfg, state = load_checkpoint(run)
    family = make_task_family(cfg)
    train_tasks, test_tasks = family.split(cfg.seed)
    env = family.make_env(seed=cfg.seed + 1)
    obs_dim = int(np.prod(env.observation_space.shape))
    action_dim = int(np.prod(env.action_space.shape))
    agent = PEARLAgent(AgentDims.from_config(cfg, obs_dim, action_dim))
    agent.load_state_dict(state["agent"])
    max_path_length = int(cfg.max_path_length or family.max_path_length)
    evaluator = Evaluator.from_config(
        cfg, family, env, Layout(obs_dim, action_dim), max_path_length, num_steps_per_eval
    )
    return LoadedPolicy(cfg, int(state["iteration"]), family, train_tasks, test_tasks, agent.export_numpy(), evaluator)
