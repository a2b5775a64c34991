"""The paper's evaluation protocol, as an object of its own.

Per task and run: start from the prior and accumulate the online context. Trajectory ``k`` (0-based)
uses z ~ prior while ``k < num_exp_traj_eval``; after that z ~ the posterior inferred from *all*
context accumulated so far (re-inferred before every trajectory). Actions are deterministic (tanh of
the mean); z is a sample of its distribution, as in the reference. Reported: the return per trajectory
index ("online" adaptation curve) and the average over tasks of the last trajectory's return (the
paper's number). With ``sparse_rewards`` the context and the reported returns use ``sparse_reward``.
Evaluation steps are not training samples.

How many trajectories (``PEARLConfig.eval_rule``):

- ``"trajectories"`` (default): every task and run gets ``num_steps_per_eval // max_path_length``
  trajectories, so early terminations do not change the count and the per-index curve is complete.
- ``"steps"`` (the reference's ``collect_paths``): whole trajectories (each up to ``max_path_length``)
  until ``num_steps_per_eval`` steps are collected, so the last one may overshoot the budget and an
  early termination adds trajectories. The score is still the last trajectory's return, whatever its
  index; the per-index curve is cut to the fewest trajectories of any task and run (as the reference's
  ``_do_eval``), which is at least ``ceil(num_steps_per_eval / max_path_length)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

from pearl_robot.pearl.buffers import Layout
from pearl_robot.pearl.numpy_policy import NumpyAgent
from pearl_robot.pearl.sampler import rollout
from pearl_robot.tasks.base import Task, TaskFamily

if TYPE_CHECKING:
    from pearl_robot.pearl.config import PEARLConfig

EVAL_RULES = ("trajectories", "steps")  # PEARLConfig.eval_rule: what fixes the number of trajectories


@dataclass(frozen=True)
class TrajectoryRecord:
    task_index: int
    run: int
    trajectory: int
    z_source: str  # "prior" or "posterior"
    context_size: int  # transitions the posterior was inferred from (0 for the prior)
    length: int
    reported_return: float


@dataclass
class EvalResult:
    task_indices: list[int]
    returns: np.ndarray  # [tasks, runs, trajectories] reported returns (eval_rule "steps": cut to the fewest)
    records: list[TrajectoryRecord] = field(default_factory=list)
    last_returns: np.ndarray | None = None  # [tasks, runs] the last trajectory's return; None: returns[:, :, -1]

    def __post_init__(self) -> None:
        if self.last_returns is None:
            self.last_returns = self.returns[:, :, -1]

    @property
    def online_returns(self) -> np.ndarray:
        """Mean return per trajectory index (over tasks and runs)."""
        return self.returns.mean(axis=(0, 1))

    @property
    def final_return(self) -> float:
        """The paper's number: mean over tasks of the last trajectory's return (runs averaged)."""
        return float(self.last_returns.mean())


class Evaluator:
    def __init__(
        self,
        family: TaskFamily,
        env: gym.Env,
        layout: Layout,
        max_path_length: int,
        num_trajectories: int,
        num_exp_traj_eval: int,
        sparse_rewards: bool = False,
        use_next_obs_in_context: bool = False,
        num_steps: int | None = None,
    ) -> None:
        """``num_steps`` None: ``num_trajectories`` trajectories per task and run (eval_rule
        "trajectories"). An int: the reference's rule (eval_rule "steps"), whole trajectories until
        ``num_steps`` steps; ``num_trajectories`` is then ignored and set to the count every task and
        run is sure to reach, ``ceil(num_steps / max_path_length)``."""
        self.family, self.env, self.layout = family, env, layout
        self.max_path_length = max_path_length
        self.num_steps = None if num_steps is None else max(int(num_steps), 1)
        if self.num_steps is not None:
            num_trajectories = math.ceil(self.num_steps / max_path_length)
        self.num_trajectories = max(int(num_trajectories), 1)
        self.num_exp_traj_eval = int(num_exp_traj_eval)
        self.sparse_rewards = sparse_rewards
        self.context_columns = layout.context_columns(use_next_obs_in_context, sparse_rewards)

    @classmethod
    def from_config(
        cls,
        cfg: PEARLConfig,
        family: TaskFamily,
        env: gym.Env,
        layout: Layout,
        max_path_length: int,
        num_steps_per_eval: int | None = None,
    ) -> Evaluator:
        """The protocol as ``cfg`` sets it (``num_steps_per_eval``, ``eval_rule``, ``num_exp_traj_eval``,
        context options); ``num_steps_per_eval`` overrides the config's."""
        steps = num_steps_per_eval or cfg.num_steps_per_eval
        if cfg.eval_rule not in EVAL_RULES:
            raise ValueError(f"eval_rule must be one of {EVAL_RULES}, got {cfg.eval_rule!r}")
        return cls(
            family,
            env,
            layout,
            max_path_length,
            num_trajectories=max(steps // max_path_length, 1),
            num_exp_traj_eval=cfg.num_exp_traj_eval,
            sparse_rewards=cfg.sparse_rewards,
            use_next_obs_in_context=cfg.use_next_obs_in_context,
            num_steps=steps if cfg.eval_rule == "steps" else None,
        )

    def _more(self, trajectories: int, steps: int) -> bool:
        if self.num_steps is None:
            return trajectories < self.num_trajectories
        return steps < self.num_steps

    def run_task(
        self, agent: NumpyAgent, task: Task, rng: np.random.Generator, adapt: bool = True, run: int = 0
    ) -> list[TrajectoryRecord]:
        """One run of the protocol on ``task``; ``adapt=False`` holds z ~ prior for every trajectory."""
        self.family.apply(self.env, task)
        context: list[np.ndarray] = []
        records: list[TrajectoryRecord] = []
        k = steps = 0
        while self._more(k, steps):
            if adapt and k >= self.num_exp_traj_eval and context:
                online = np.concatenate(context)
                mean, var = agent.infer_posterior(online[:, self.context_columns])
                source, context_size = "posterior", len(online)
            else:
                (mean, var), source, context_size = agent.prior(), "prior", 0
            z = agent.sample_z(mean, var, rng)
            path = rollout(self.env, agent, z, self.layout, self.max_path_length, rng, True, source)
            context.append(path.rows)
            records.append(
                TrajectoryRecord(
                    task.index, run, k, source, context_size, path.length, path.reported_return(self.sparse_rewards)
                )
            )
            k += 1
            steps += path.length
        return records

    def evaluate(
        self,
        agent: NumpyAgent,
        tasks: list[Task],
        rng: np.random.Generator,
        num_evals: int = 1,
        adapt: bool = True,
    ) -> EvalResult:
        per_run: list[list[list[float]]] = []  # [task][run] -> returns per trajectory (ragged for "steps")
        records: list[TrajectoryRecord] = []
        for task in tasks:
            per_run.append([])
            for run in range(num_evals):
                task_records = self.run_task(agent, task, rng, adapt=adapt, run=run)
                per_run[-1].append([r.reported_return for r in task_records])
                records.extend(task_records)
        runs = [r for task_runs in per_run for r in task_runs]
        shortest = min((len(r) for r in runs), default=self.num_trajectories)
        returns = np.array([[r[:shortest] for r in task_runs] for task_runs in per_run], dtype=float)
        last = np.array([[r[-1] for r in task_runs] for task_runs in per_run], dtype=float)
        returns = returns.reshape(len(tasks), num_evals, shortest)
        last = last.reshape(len(tasks), num_evals)
        return EvalResult([t.index for t in tasks], returns, records, last)
