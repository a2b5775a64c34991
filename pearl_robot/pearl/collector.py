"""Where collection runs: an iteration's rollouts as independent, seeded jobs, and the collectors that run them.

The trainer turns an iteration's collection schedule into ``CollectJob``s, one per train task visited
(iteration 0: one ``initial`` job per train task; then one job per sampled task with its prior / posterior /
extra blocks), each carrying a seed drawn from the trainer's collection generator. A job depends on nothing
but its seed, the policy weights and its task: the task's encoder buffer is cleared before it anyway, so its
posteriors are inferred from the job's own data, held in a one-task buffer of the runner. That is what lets
jobs run anywhere, in any order, on any number of workers, and give the same data.

A ``Collector`` runs a list of jobs with one set of weights and returns one ``JobResult`` per job, in job
order, each holding whole trajectories. The trainer adds a result's rows to its buffers only after every
result of the iteration arrived, so a failure mid-collection leaves the buffers as they were.

- ``InProcessCollector``: the jobs one after the other in this process (the default; ``--workers 0``);
- ``pearl_robot.distributed.RayCollector``: the jobs on N Ray actors, each with its own ``RolloutRunner``.

Both run ``RolloutRunner.run``, so a run gives identical results with any number of workers, 0 included.
Collection runs numpy's BLAS on one thread (``threadpoolctl``): a matrix product's rounding depends on how
many threads split it, and one flipped bit makes a MuJoCo trajectory diverge, so without this the data would
depend on the core count of the process that collects (one thread is also the faster for these small
products). Bitwise equality across machines further needs the same numpy / OpenBLAS build and CPU kernel
(OpenBLAS picks its kernels per CPU); else runs agree in distribution only.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from threadpoolctl import ThreadpoolController

from pearl_robot.pearl.buffers import Layout, MultiTaskReplayBuffer
from pearl_robot.pearl.config import PEARLConfig
from pearl_robot.pearl.numpy_policy import NumpyAgent
from pearl_robot.pearl.sampler import Path, rollout, rollout_batch
from pearl_robot.tasks.base import Task, TaskFamily

BLOCKS = ("initial", "prior", "posterior", "extra")
SEED_BOUND = 2**63 - 1
_threadpools: ThreadpoolController | None = None


def single_threaded_blas():
    """A context in which numpy's BLAS runs on one thread (restored after)."""
    global _threadpools
    if _threadpools is None:
        _threadpools = ThreadpoolController()
    return _threadpools.limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class Block:
    """Collect whole trajectories until ``num_samples`` transitions are reached.

    ``name``: ``initial`` / ``prior`` (z ~ prior), ``posterior`` (z ~ posterior; its trajectories run one
    after the other since their data feed the context they infer from) or ``extra`` (z ~ posterior).
    ``to_encoder``: the trajectories also go to the encoder buffer (the context)."""

    name: str
    num_samples: int
    to_encoder: bool

    def __post_init__(self) -> None:
        if self.name not in BLOCKS:
            raise ValueError(f"unknown collection block '{self.name}' (known: {', '.join(BLOCKS)})")


@dataclass(frozen=True)
class CollectJob:
    """The collection for one visit of train task ``task``: ``blocks`` in order, every random draw (z,
    actions, environment reset seeds, context batches) from ``np.random.default_rng(seed)``.
    ``clear_encoder``: the trainer clears the task's encoder buffer before adding the job's data (a sampled
    task; iteration 0's initial jobs do not clear)."""

    task: int
    blocks: tuple[Block, ...]
    seed: int
    clear_encoder: bool


@dataclass
class BlockPaths:
    block: Block
    paths: list[Path]
    context_sizes: list[int]  # encoder-buffer transitions each path's posterior was inferred from (0: prior)


@dataclass
class JobResult:
    job: CollectJob
    blocks: list[BlockPaths]

    @property
    def env_steps(self) -> int:
        return sum(p.length for b in self.blocks for p in b.paths)

    def check(self, job: CollectJob, width: int) -> None:
        """Raise ValueError unless this is a whole result of ``job`` with rows ``width`` wide."""
        if self.job != job:
            raise ValueError(f"result of {self.job} returned for {job}")
        if [b.block for b in self.blocks] != list(job.blocks):
            raise ValueError(f"result of task {job.task} holds blocks {[b.block.name for b in self.blocks]}")
        for b in self.blocks:
            if len(b.paths) != len(b.context_sizes):
                raise ValueError(f"block {b.block.name} of task {job.task}: paths and context sizes differ")
            if sum(p.length for p in b.paths) < b.block.num_samples:
                raise ValueError(f"block {b.block.name} of task {job.task}: fewer than {b.block.num_samples} steps")
            for p in b.paths:
                if p.rows.ndim != 2 or p.rows.shape[1] != width or p.length == 0:
                    raise ValueError(f"block {b.block.name} of task {job.task}: rows of shape {p.rows.shape}")


class RolloutRunner:
    """Runs collection on its own environments of the family (up to ``num_collect_envs``, stepped in lockstep
    for independent trajectories). The trainer owns one (in-process collection); each Ray worker builds its
    own (``from_config``)."""

    def __init__(
        self,
        cfg: PEARLConfig,
        family: TaskFamily,
        train_tasks: list[Task],
        layout: Layout,
        max_path_length: int,
        env: gym.Env | None = None,
    ) -> None:
        self.cfg, self.family, self.train_tasks = cfg, family, train_tasks
        self.layout, self.max_path_length = layout, int(max_path_length)
        self.envs = [env if env is not None else family.make_env(seed=cfg.seed)]
        self.context_columns = layout.context_columns(cfg.use_next_obs_in_context, cfg.sparse_rewards)
        self._context = MultiTaskReplayBuffer(1, layout, cfg.replay_buffer_size)  # a job's encoder buffer

    @classmethod
    def from_config(cls, cfg: PEARLConfig, family: TaskFamily | None = None) -> RolloutRunner:
        """A runner as the trainer of ``cfg`` builds it: the same train tasks, layout and path length."""
        from pearl_robot.pearl.trainer import make_task_family

        family = family if family is not None else make_task_family(cfg)
        train_tasks, _ = family.split(cfg.seed)
        env = family.make_env(seed=cfg.seed)
        layout = Layout(int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape)))
        return cls(cfg, family, train_tasks, layout, int(cfg.max_path_length or family.max_path_length), env)

    @property
    def env(self) -> gym.Env:
        return self.envs[0]

    def _collect_envs(self, k: int) -> list[gym.Env]:
        while len(self.envs) < k:
            self.envs.append(self.family.make_env(seed=self.cfg.seed + 1000 + len(self.envs)))
        return self.envs[:k]

    def context(self, buffer: MultiTaskReplayBuffer, row: int, rng: np.random.Generator) -> np.ndarray:
        """``[embedding_batch_size, context_dim]`` from ``buffer``'s task ``row``."""
        rows = np.array([row])
        if self.cfg.recurrent:
            batch = buffer.sample_sequence(rows, self.cfg.embedding_batch_size, rng)
        else:
            batch = buffer.sample(rows, self.cfg.embedding_batch_size, rng)
        return batch[0][..., self.context_columns]

    def run(self, job: CollectJob, agent: NumpyAgent) -> JobResult:
        """``job``'s blocks in order from an empty encoder buffer; whole trajectories only."""
        rng = np.random.default_rng(job.seed)
        task = self.train_tasks[job.task]
        self._context.clear(0)
        blocks = [self.collect_block(task, block, self._context, 0, agent, rng) for block in job.blocks]
        return JobResult(job, blocks)

    def collect_block(
        self,
        task: Task,
        block: Block,
        encoder: MultiTaskReplayBuffer,
        row: int,
        agent: NumpyAgent,
        rng: np.random.Generator,
    ) -> BlockPaths:
        """Whole trajectories on ``task`` until ``block.num_samples`` transitions are reached. Posteriors are
        inferred from ``encoder``'s task ``row``, which receives the block's trajectories as they are collected
        when ``block.to_encoder``. Trajectories that do not depend on each other (initial, prior and extra
        blocks) run up to ``num_collect_envs`` at a time in lockstep; the posterior is re-inferred, from a
        fresh context batch, for every ``update_post_train`` trajectories either way."""
        with single_threaded_blas():
            return self._collect_block(task, block, encoder, row, agent, rng)

    def _collect_block(
        self,
        task: Task,
        block: Block,
        encoder: MultiTaskReplayBuffer,
        row: int,
        agent: NumpyAgent,
        rng: np.random.Generator,
    ) -> BlockPaths:
        cfg = self.cfg
        posterior = block.name in ("posterior", "extra")

        def inference(first: bool) -> tuple[tuple[np.ndarray, np.ndarray], str, int]:
            size = int(encoder.size[row])
            if not posterior or size == 0 or (first and cfg.posterior_block_starts_from_prior):
                return agent.prior(), "prior", 0
            return agent.infer_posterior(self.context(encoder, row, rng)), "posterior", size

        def record(paths: list[Path], sizes: list[int]) -> None:
            for path in paths:
                if block.to_encoder:
                    encoder.add(row, path.rows)
            out.paths.extend(paths)
            out.context_sizes.extend(sizes)

        out = BlockPaths(block, [], [])
        collected, num_samples = 0, block.num_samples
        if block.name == "posterior":
            env = self.envs[0]
            self.family.apply(env, task)
            dist, source, size = inference(first=True)
            while collected < num_samples:
                paths = []
                while collected < num_samples and len(paths) < cfg.update_post_train:
                    z = agent.sample_z(*dist, rng)
                    path = rollout(env, agent, z, self.layout, self.max_path_length, rng, False, source)
                    paths.append(path)
                    collected += path.length
                record(paths, [size] * len(paths))
                dist, source, size = inference(first=False)
        else:
            per_inference = cfg.update_post_train if posterior else math.inf
            current, done_trajectories = None, 0
            while collected < num_samples:
                k = min(math.ceil((num_samples - collected) / self.max_path_length), cfg.num_collect_envs)
                envs = self._collect_envs(k)
                zs, sources, sizes = [], [], []
                for j in range(k):
                    if current is None or (done_trajectories + j) % per_inference == 0:
                        current = inference(first=current is None)
                    (mean, var), source, size = current
                    zs.append(agent.sample_z(mean, var, rng))
                    sources.append(source)
                    sizes.append(size)
                for env in envs:
                    self.family.apply(env, task)
                paths = rollout_batch(envs, agent, np.stack(zs), self.layout, self.max_path_length, rng)
                for path, source in zip(paths, sources):
                    path.z_source = source
                record(paths, sizes)
                collected += sum(p.length for p in paths)
                done_trajectories += k
        return out


class Collector(ABC):
    """Runs collection jobs with one set of policy weights; returns one whole result per job, in job order,
    or raises (then no result of the call is used)."""

    num_workers: int = 0

    @abstractmethod
    def collect(self, jobs: Sequence[CollectJob], agent: NumpyAgent) -> list[JobResult]: ...

    def close(self) -> None:  # noqa: B027 (optional hook: nothing to release in process)
        """Release workers."""

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessCollector(Collector):
    """The jobs one after the other on the trainer's own runner."""

    def __init__(self, runner: RolloutRunner) -> None:
        self.runner = runner

    def collect(self, jobs: Sequence[CollectJob], agent: NumpyAgent) -> list[JobResult]:
        return [self.runner.run(job, agent) for job in jobs]
