"""Replay buffers, numpy: one store per task, all tasks in one array so a meta-batch is one gather.

PEARL keeps two of these: the RL buffer (everything collected for a task, for the actor-critic) and the
encoder buffer (the data the context is drawn from; cleared for a task each time it is collected for, so
the context comes from recent policies). Rows are float32 transitions laid out as
``[obs | action | reward | sparse_reward | next_obs | terminal]``.

Storage per task grows on demand (doubling) up to ``capacity``, then wraps as a ring buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    obs_dim: int
    action_dim: int

    @property
    def width(self) -> int:
        return 2 * self.obs_dim + self.action_dim + 3

    @property
    def obs(self) -> slice:
        return slice(0, self.obs_dim)

    @property
    def action(self) -> slice:
        return slice(self.obs_dim, self.obs_dim + self.action_dim)

    @property
    def reward(self) -> int:
        return self.obs_dim + self.action_dim

    @property
    def sparse_reward(self) -> int:
        return self.reward + 1

    @property
    def next_obs(self) -> slice:
        start = self.reward + 2
        return slice(start, start + self.obs_dim)

    @property
    def terminal(self) -> int:
        return self.width - 1

    def context_columns(self, use_next_obs: bool, sparse_rewards: bool) -> np.ndarray:
        """Columns of a context row: obs, action, reward (sparse or dense)[, next obs]."""
        cols = [
            np.arange(self.obs.start, self.obs.stop),
            np.arange(self.action.start, self.action.stop),
            [self.sparse_reward if sparse_rewards else self.reward],
        ]
        if use_next_obs:
            cols.append(np.arange(self.next_obs.start, self.next_obs.stop))
        return np.concatenate(cols).astype(np.intp)

    def rows(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        sparse_rewards: np.ndarray,
        next_obs: np.ndarray,
        terminals: np.ndarray,
    ) -> np.ndarray:
        n = len(obs)
        out = np.empty((n, self.width), np.float32)
        out[:, self.obs] = obs
        out[:, self.action] = actions
        out[:, self.reward] = rewards
        out[:, self.sparse_reward] = sparse_rewards
        out[:, self.next_obs] = next_obs
        out[:, self.terminal] = terminals
        return out


class MultiTaskReplayBuffer:
    def __init__(self, num_tasks: int, layout: Layout, capacity: int = 1_000_000, initial_capacity: int = 1024):
        self.num_tasks, self.layout, self.capacity = num_tasks, layout, int(capacity)
        self.data = np.zeros((num_tasks, min(initial_capacity, self.capacity), layout.width), np.float32)
        self.size = np.zeros(num_tasks, np.int64)
        self.top = np.zeros(num_tasks, np.int64)  # next write position per task

    @property
    def allocated(self) -> int:
        return self.data.shape[1]

    def _grow(self, needed: int) -> None:
        new = self.allocated
        while new < needed:
            new *= 2
        new = min(new, self.capacity)
        if new > self.allocated:
            data = np.zeros((self.num_tasks, new, self.layout.width), np.float32)
            data[:, : self.allocated] = self.data
            self.data = data

    def add(self, task: int, rows: np.ndarray) -> None:
        """Append transition rows (``Layout.rows``) to ``task``'s store."""
        n = len(rows)
        if n == 0:
            return
        if n > self.capacity:
            rows, n = rows[-self.capacity :], self.capacity
        if self.size[task] < self.capacity:
            self._grow(int(self.size[task]) + n)
        top = int(self.top[task])
        idx = (top + np.arange(n)) % self.capacity
        self.data[task, idx] = rows
        self.top[task] = (top + n) % self.capacity
        self.size[task] = min(int(self.size[task]) + n, self.capacity)

    def clear(self, task: int) -> None:
        self.size[task] = 0
        self.top[task] = 0

    def task_rows(self, task: int) -> np.ndarray:
        """``task``'s rows in insertion order (a copy)."""
        n, top = int(self.size[task]), int(self.top[task])
        if n < self.capacity:
            return self.data[task, :n].copy()
        return np.concatenate([self.data[task, top:], self.data[task, :top]])

    def sample(self, tasks: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """``batch_size`` rows per task, uniformly with replacement: ``[len(tasks), batch_size, width]``."""
        tasks = np.asarray(tasks, dtype=np.intp)
        sizes = self.size[tasks]
        if np.any(sizes == 0):
            raise ValueError(f"cannot sample from empty task buffers: {tasks[sizes == 0].tolist()}")
        idx = (rng.random((len(tasks), batch_size)) * sizes[:, None]).astype(np.intp)
        return self.data[tasks[:, None], idx]

    def sample_sequence(self, tasks: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
        """A contiguous window of ``length`` rows per task in insertion order (for the recurrent encoder);
        a task holding fewer rows repeats its last row."""
        tasks = np.asarray(tasks, dtype=np.intp)
        sizes = self.size[tasks]
        if np.any(sizes == 0):
            raise ValueError(f"cannot sample from empty task buffers: {tasks[sizes == 0].tolist()}")
        starts = (rng.random(len(tasks)) * np.maximum(sizes - length + 1, 1)).astype(np.intp)
        offsets = np.minimum(starts[:, None] + np.arange(length), sizes[:, None] - 1)
        oldest = np.where(sizes >= self.capacity, self.top[tasks], 0)
        idx = (oldest[:, None] + offsets) % self.allocated
        return self.data[tasks[:, None], idx]

    # ---- checkpointing -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        used = int(self.size.max()) if self.size.size else 0
        if np.any(self.size >= self.capacity):
            used = self.allocated
        return {"data": self.data[:, :used].copy(), "size": self.size.copy(), "top": self.top.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        data = np.asarray(state["data"], np.float32)
        if data.shape[0] != self.num_tasks or data.shape[2] != self.layout.width:
            raise ValueError(f"buffer shape {data.shape} does not match {self.num_tasks} tasks x {self.layout.width}")
        self.data = np.zeros((self.num_tasks, max(data.shape[1], 1), self.layout.width), np.float32)
        self.data[:, : data.shape[1]] = data
        self.size = np.asarray(state["size"], np.int64).copy()
        self.top = np.asarray(state["top"], np.int64).copy()
