"""Task families: a distribution over tasks that differ in reward (a goal) or dynamics (mass, friction,
gains), sampled reproducibly from a seed and applied to an environment of the family.

Contract used by the PEARL learner:
- ``make_env(seed)`` builds one gymnasium.Env of the family (Box observation and action spaces,
  actions in [-1, 1]);
- ``sample_tasks(n, seed)`` returns ``n`` tasks; ``split(seed)`` returns (train, test) with the
  family's counts, disjoint and reproducible;
- ``apply(env, task)`` makes ``env`` play ``task`` from its next ``reset()``;
- ``step`` info may carry ``"sparse_reward"`` (sparse-reward families) which the learner uses for
  the context and for reporting when ``sparse_rewards`` is on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class Task:
    """One task: an index within its family and the parameters that define it (JSON-serializable)."""

    family: str
    index: int
    params: dict[str, Any] = field(default_factory=dict)


class TaskFamily(ABC):
    name: str = ""
    num_train_tasks: int = 0
    num_test_tasks: int = 0
    max_path_length: int = 200

    def __init__(
        self,
        num_train_tasks: int | None = None,
        num_test_tasks: int | None = None,
        max_path_length: int | None = None,
    ) -> None:
        """Override the family's default counts or path length (e.g. for a small config or a test)."""
        if num_train_tasks is not None:
            self.num_train_tasks = int(num_train_tasks)
        if num_test_tasks is not None:
            self.num_test_tasks = int(num_test_tasks)
        if max_path_length is not None:
            self.max_path_length = int(max_path_length)

    @abstractmethod
    def make_env(self, seed: int | None = None) -> gym.Env: ...

    @abstractmethod
    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]: ...

    @abstractmethod
    def apply(self, env: gym.Env, task: Task) -> None: ...

    def split(self, seed: int) -> tuple[list[Task], list[Task]]:
        """Train and test tasks, reproducible from ``seed``; indices run on across both lists."""
        rng = np.random.default_rng(seed)
        tasks = self.sample_tasks(self.num_train_tasks + self.num_test_tasks, rng)
        tasks = [Task(t.family, i, t.params) for i, t in enumerate(tasks)]
        return tasks[: self.num_train_tasks], tasks[self.num_train_tasks :]
