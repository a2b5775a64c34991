"""Rollouts with the numpy agent: one trajectory under a fixed z, written straight into buffer rows.

Every trajectory starts with ``env.reset(seed=...)`` from the caller's generator, so the environment's
randomness is a function of the learner's saved RNG state (what makes ``--resume`` exact).
Bootstrapping uses ``terminated`` only; a time-limit truncation is not a terminal (the reference's old
gym API could not tell them apart).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from pearl_robot.pearl.buffers import Layout
from pearl_robot.pearl.numpy_policy import NumpyAgent

SEED_BOUND = 2**31 - 1


@dataclass
class Path:
    rows: np.ndarray  # [length, layout.width]
    dense_return: float
    sparse_return: float
    z: np.ndarray
    z_source: str  # "prior" or "posterior"
    terminated: bool

    @property
    def length(self) -> int:
        return len(self.rows)

    def reported_return(self, sparse_rewards: bool) -> float:
        return self.sparse_return if sparse_rewards else self.dense_return


def rollout(
    env: gym.Env,
    agent: NumpyAgent,
    z: np.ndarray,
    layout: Layout,
    max_path_length: int,
    rng: np.random.Generator,
    deterministic: bool = False,
    z_source: str = "prior",
) -> Path:
    """One trajectory of at most ``max_path_length`` steps under ``z``."""
    agent.set_z(z)
    obs, _ = env.reset(seed=int(rng.integers(SEED_BOUND)))
    rows = np.empty((max_path_length, layout.width), np.float32)
    o_sl, a_sl, no_sl = layout.obs, layout.action, layout.next_obs
    r_col, s_col, t_col = layout.reward, layout.sparse_reward, layout.terminal
    act = agent.act
    step = env.step
    terminated = False
    n = 0
    for n in range(1, max_path_length + 1):
        action = act(obs, rng, deterministic)
        next_obs, reward, terminated, truncated, info = step(action)
        row = rows[n - 1]
        row[o_sl] = obs
        row[a_sl] = action
        row[r_col] = reward
        row[s_col] = info.get("sparse_reward", reward)
        row[no_sl] = next_obs
        row[t_col] = terminated
        if terminated or truncated:
            break
        obs = next_obs
    rows = rows[:n]
    return Path(
        rows=rows,
        dense_return=float(rows[:, r_col].sum(dtype=np.float64)),
        sparse_return=float(rows[:, s_col].sum(dtype=np.float64)),
        z=np.asarray(z, np.float32).copy(),
        z_source=z_source,
        terminated=bool(terminated),
    )


def rollout_batch(
    envs: list[gym.Env],
    agent: NumpyAgent,
    zs: np.ndarray,
    layout: Layout,
    max_path_length: int,
    rng: np.random.Generator,
    deterministic: bool = False,
    z_source: str = "prior",
) -> list[Path]:
    """``len(envs)`` independent trajectories in lockstep, one z each (``zs`` ``[K, latent]``): the policy
    runs once per step for all of them, so its weights are read once instead of K times. Each env must
    already play its task."""
    k = len(envs)
    zs = np.asarray(zs, np.float32).reshape(k, agent.latent_size)
    bias = agent.z_bias(zs)
    obs = np.stack([np.asarray(env.reset(seed=int(rng.integers(SEED_BOUND)))[0], np.float32) for env in envs])
    rows = np.empty((k, max_path_length, layout.width), np.float32)
    o_sl, a_sl, no_sl = layout.obs, layout.action, layout.next_obs
    r_col, s_col, t_col = layout.reward, layout.sparse_reward, layout.terminal
    lengths = np.zeros(k, np.int64)
    terminated_at = np.zeros(k, bool)
    active = np.arange(k)
    for t in range(max_path_length):
        actions = agent.act_with_bias(obs[active], bias[active], rng, deterministic)
        still = []
        for j, i in enumerate(active):
            next_obs, reward, terminated, truncated, info = envs[i].step(actions[j])
            row = rows[i, t]
            row[o_sl] = obs[i]
            row[a_sl] = actions[j]
            row[r_col] = reward
            row[s_col] = info.get("sparse_reward", reward)
            row[no_sl] = next_obs
            row[t_col] = terminated
            lengths[i] = t + 1
            if terminated or truncated:
                terminated_at[i] = bool(terminated)
            else:
                obs[i] = next_obs
                still.append(i)
        if not still:
            break
        active = np.asarray(still)
    paths = []
    for i in range(k):
        path_rows = rows[i, : lengths[i]]
        paths.append(
            Path(
                rows=path_rows,
                dense_return=float(path_rows[:, r_col].sum(dtype=np.float64)),
                sparse_return=float(path_rows[:, s_col].sum(dtype=np.float64)),
                z=zs[i].copy(),
                z_source=z_source,
                terminated=bool(terminated_at[i]),
            )
        )
    return paths
