"""Rollouts: one trajectory, and several in lockstep with one batched policy call per step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from pearl_robot.pearl.agent import AgentDims, PEARLAgent
from pearl_robot.pearl.buffers import Layout
from pearl_robot.pearl.sampler import rollout, rollout_batch


class CountdownEnv(gym.Env):
    """1-D: obs = steps taken; terminates after ``life`` steps; reward = action; sparse = 1."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, life: int) -> None:
        self.life, self.t = life, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.array([self.t], np.float32)
        return obs, float(action[0]), self.t >= self.life, False, {"sparse_reward": 1.0}


def _agent():
    torch.manual_seed(0)
    return PEARLAgent(AgentDims(1, 1, latent_size=2, net_size=8, encoder_net_size=8)).export_numpy()


def test_rollout_batch_runs_each_env_to_its_own_end():
    agent, layout = _agent(), Layout(1, 1)
    envs = [CountdownEnv(3), CountdownEnv(7), CountdownEnv(50)]
    zs = np.array([[0, 0], [1, 1], [2, 2]], np.float32)
    paths = rollout_batch(envs, agent, zs, layout, 10, np.random.default_rng(0))
    assert [p.length for p in paths] == [3, 7, 10]
    assert [p.terminated for p in paths] == [True, True, False]
    for path, z in zip(paths, zs):
        rows = path.rows
        np.testing.assert_array_equal(rows[:, layout.obs][:, 0], np.arange(path.length))
        np.testing.assert_array_equal(rows[:, layout.next_obs][:, 0], np.arange(1, path.length + 1))
        np.testing.assert_allclose(rows[:, layout.reward], rows[:, layout.action][:, 0])
        assert path.sparse_return == path.length
        assert path.dense_return == pytest.approx(float(rows[:, layout.reward].sum()), abs=1e-6)
        assert rows[-1, layout.terminal] == float(path.terminated) and not rows[:-1, layout.terminal].any()
        np.testing.assert_array_equal(path.z, z)


def test_rollout_batch_acts_like_single_rollouts_with_their_z():
    agent, layout = _agent(), Layout(1, 1)
    zs = np.array([[0.5, -1.0], [2.0, 0.3]], np.float32)
    batch = rollout_batch([CountdownEnv(5), CountdownEnv(5)], agent, zs, layout, 5, np.random.default_rng(0), True)
    for path, z in zip(batch, zs):
        single = rollout(CountdownEnv(5), agent, z, layout, 5, np.random.default_rng(1), deterministic=True)
        np.testing.assert_allclose(path.rows, single.rows, rtol=1e-6)


def test_rollouts_are_seeded():
    agent, layout = _agent(), Layout(1, 1)
    a = rollout_batch([CountdownEnv(4)] * 1, agent, np.zeros((1, 2)), layout, 4, np.random.default_rng(3))
    b = rollout_batch([CountdownEnv(4)] * 1, agent, np.zeros((1, 2)), layout, 4, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0].rows, b[0].rows)
