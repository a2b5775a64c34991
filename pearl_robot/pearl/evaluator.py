"""The paper's evaluation protocol, as an object of its own.

Per task and run: start from the prior and accumulate the online context. Trajectory ``k`` (0-based)
uses z ~ prior while ``k < num_exp_traj_eval``; after that z ~ the posterior inferred from *all*
context accumulated so far (re-inferred before every trajectory). Actions are deterministic (tanh of
the mean); z is a sample of its distribution, as in the reference. Reported: the return per trajectory
index ("online" adaptation curve) and the average over tasks of the last trajectory's return (the
paper's number). With ``sparse_rewards`` the context and the reported returns use ``sparse_reward``.
Evaluation steps are not training samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from pearl_robot.pearl.buffers import Layout
from pearl_robot.pearl.numpy_policy import NumpyAgent
from pearl_robot.pearl.sampler import rollout
from pearl_robot.tasks.base import Task, TaskFamily


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
    returns: np.ndarray  # [tasks, runs, trajectories] reported returns
    records: list[TrajectoryRecord] = field(default_factory=list)

    @property
    def online_returns(self) -> np.ndarray:
        """Mean return per trajectory index (over tasks and runs)."""
        return self.returns.mean(axis=(0, 1))

    @property
    def final_return(self) -> float:
        """The paper's number: mean over tasks of the last trajectory's return (runs averaged)."""
        return float(self.returns[:, :, -1].mean())


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
    ) -> None:
        self.family, self.env, self.layout = family, env, layout
        self.max_path_length = max_path_length
        self.num_trajectories = max(int(num_trajectories), 1)
        self.num_exp_traj_eval = int(num_exp_traj_eval)
        self.sparse_rewards = sparse_rewards
        self.context_columns = layout.context_columns(use_next_obs_in_context, sparse_rewards)

    def run_task(
        self, agent: NumpyAgent, task: Task, rng: np.random.Generator, adapt: bool = True, run: int = 0
    ) -> list[TrajectoryRecord]:
        """One run of the protocol on ``task``; ``adapt=False`` holds z ~ prior for every trajectory."""
        self.family.apply(self.env, task)
        context: list[np.ndarray] = []
        records = []
        for k in range(self.num_trajectories):
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
        return records

    def evaluate(
        self,
        agent: NumpyAgent,
        tasks: list[Task],
        rng: np.random.Generator,
        num_evals: int = 1,
        adapt: bool = True,
    ) -> EvalResult:
        returns = np.zeros((len(tasks), num_evals, self.num_trajectories))
        records: list[TrajectoryRecord] = []
        for i, task in enumerate(tasks):
            for run in range(num_evals):
                task_records = self.run_task(agent, task, rng, adapt=adapt, run=run)
                returns[i, run] = [r.reported_return for r in task_records]
                records.extend(task_records)
        return EvalResult([t.index for t in tasks], returns, records)
