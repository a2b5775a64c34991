"""The evaluation protocol's z schedule: prior for the exploration trajectories, then the posterior of
all online context, deterministic actions; per-trajectory and final returns."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from pearl_robot.pearl.agent import AgentDims, PEARLAgent
from pearl_robot.pearl.buffers import Layout
from pearl_robot.pearl.config import PEARLConfig
from pearl_robot.pearl.evaluator import Evaluator
from pearl_robot.pearl.numpy_policy import NumpyAgent
from pearl_robot.tasks.registry import make_family


class RecordingAgent(NumpyAgent):
    """A NumpyAgent that records what the protocol asks of it."""

    def __init__(self, inner: NumpyAgent) -> None:
        super().__init__(inner.policy, inner.encoder, inner.meta)
        self.contexts: list[int] = []
        self.deterministic: set[bool] = set()
        self.zs: list[np.ndarray] = []

    def infer_posterior(self, context):
        self.contexts.append(len(context))
        return super().infer_posterior(context)

    def set_z(self, z):
        super().set_z(z)
        if hasattr(self, "zs"):
            self.zs.append(np.array(z))

    def act(self, obs, rng=None, deterministic=False):
        self.deterministic.add(deterministic)
        return super().act(obs, rng, deterministic)


def _setup(family_name="point-robot", sparse=False, num_trajectories=4, num_exp=2):
    family = make_family(family_name, num_train_tasks=2, num_test_tasks=2)
    env = family.make_env(seed=0)
    layout = Layout(2, 2)
    torch.manual_seed(0)
    agent = RecordingAgent(PEARLAgent(AgentDims(2, 2, net_size=16, encoder_net_size=16)).export_numpy())
    ev = Evaluator(family, env, layout, 20, num_trajectories, num_exp, sparse_rewards=sparse)
    return family, ev, agent


def test_z_schedule_prior_then_posterior_of_all_online_context():
    family, ev, agent = _setup(num_trajectories=5, num_exp=2)
    _, test = family.split(0)
    records = ev.run_task(agent, test[0], np.random.default_rng(0))
    assert [r.z_source for r in records] == ["prior", "prior", "posterior", "posterior", "posterior"]
    assert [r.context_size for r in records] == [0, 0, 40, 60, 80]
    assert agent.contexts == [40, 60, 80]  # re-inferred before every posterior trajectory, from everything so far
    assert agent.deterministic == {True}
    assert len({tuple(z) for z in agent.zs}) == 5  # a fresh z sample per trajectory


def test_prior_only_holds_z_at_the_prior():
    family, ev, agent = _setup(num_trajectories=3, num_exp=1)
    _, test = family.split(0)
    records = ev.run_task(agent, test[0], np.random.default_rng(0), adapt=False)
    assert [r.z_source for r in records] == ["prior"] * 3 and agent.contexts == []


def test_results_per_trajectory_index_and_final():
    family, ev, agent = _setup(num_trajectories=3, num_exp=1)
    _, test = family.split(0)
    result = ev.evaluate(agent, test, np.random.default_rng(0), num_evals=2)
    assert result.returns.shape == (2, 2, 3)
    np.testing.assert_allclose(result.online_returns, result.returns.mean(axis=(0, 1)))
    assert result.final_return == result.returns[:, :, -1].mean()
    assert len(result.records) == 2 * 2 * 3


def test_sparse_rewards_are_reported_and_used_as_context():
    family, ev, agent = _setup("sparse-point-robot", sparse=True, num_trajectories=2, num_exp=1)
    assert len(ev.context_columns) == 2 + 2 + 1 and ev.layout.sparse_reward in ev.context_columns
    _, test = family.split(0)
    result = ev.evaluate(agent, test, np.random.default_rng(0))
    assert np.all(result.returns >= 0)  # sparse rewards are >= 0; the dense ones are -distance


class EndsEarly(gym.Wrapper):
    """Terminates the n-th trajectory (counted over the wrapper's life) after ``lengths[n]`` steps; None:
    no early end (the point robot's own 20-step time limit)."""

    def __init__(self, env: gym.Env, lengths: list[int | None]) -> None:
        super().__init__(env)
        self.lengths, self.episode, self.steps = list(lengths), -1, 0

    def reset(self, **kwargs):
        self.episode += 1
        self.steps = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        limit = self.lengths[self.episode] if self.episode < len(self.lengths) else None
        return obs, reward, terminated or (limit is not None and self.steps >= limit), truncated, info


def test_steps_rule_collects_until_the_budget_and_scores_the_last_trajectory():
    """The reference's rule (eval_rule "steps"): whole trajectories until num_steps_per_eval steps, so early
    terminations add trajectories and the last one may overshoot; the score is each run's last trajectory,
    the per-index curve is cut to the fewest trajectories."""
    family, _, agent = _setup(num_exp=2)
    # task A: 5 + 20 + 20 + 3 = 48 < 50, so a fifth, full trajectory (68 steps); task B: 20 x 3 = 60
    env = EndsEarly(family.make_env(seed=0), [5, None, None, 3, None] + [None] * 3)
    ev = Evaluator(family, env, Layout(2, 2), 20, num_trajectories=99, num_exp_traj_eval=2, num_steps=50)
    assert ev.num_trajectories == 3  # what every task and run reaches: ceil(50 / 20)
    _, test = family.split(0)
    result = ev.evaluate(agent, test, np.random.default_rng(0))
    a = [r for r in result.records if r.task_index == test[0].index]
    b = [r for r in result.records if r.task_index == test[1].index]
    assert [r.length for r in a] == [5, 20, 20, 3, 20] and [r.length for r in b] == [20, 20, 20]
    assert [r.z_source for r in a] == ["prior", "prior", "posterior", "posterior", "posterior"]
    assert [r.context_size for r in a] == [0, 0, 25, 45, 48]  # all online context so far
    np.testing.assert_array_equal(result.last_returns[:, 0], [a[-1].reported_return, b[-1].reported_return])
    assert result.final_return == np.mean([a[-1].reported_return, b[-1].reported_return])
    assert result.returns.shape == (2, 1, 3)  # cut to task B's 3 trajectories
    np.testing.assert_allclose(
        result.online_returns, [np.mean([x.reported_return, y.reported_return]) for x, y in zip(a, b)]
    )


def test_trajectories_rule_ignores_early_terminations():
    family, _, agent = _setup(num_exp=1)
    env = EndsEarly(family.make_env(seed=0), [5, 3, 7, 2])
    ev = Evaluator(family, env, Layout(2, 2), 20, num_trajectories=50 // 20, num_exp_traj_eval=1)
    _, test = family.split(0)
    result = ev.evaluate(agent, test, np.random.default_rng(0))
    assert [r.length for r in result.records] == [5, 3, 7, 2]
    assert result.returns.shape == (2, 1, 2)
    np.testing.assert_array_equal(result.last_returns, result.returns[:, :, -1])


def test_steps_rule_on_a_terminating_family():
    """hopper-rand-params: an untrained policy falls long before 200 steps, so the reference's rule runs more
    trajectories than 600 // 200 and scores the one that crosses 600 steps."""
    family = make_family("hopper-rand-params", num_train_tasks=1, num_test_tasks=1)
    env = family.make_env(seed=0)
    layout = Layout(11, 3)
    torch.manual_seed(0)
    agent = PEARLAgent(AgentDims(11, 3, net_size=16, encoder_net_size=16, use_next_obs_in_context=True)).export_numpy()
    cfg = PEARLConfig(family="hopper-rand-params", num_exp_traj_eval=2, eval_rule="steps", use_next_obs_in_context=True)
    ev = Evaluator.from_config(cfg, family, env, layout, 200)
    assert (ev.num_steps, ev.num_trajectories) == (600, 3)
    _, test = family.split(0)
    result = ev.evaluate(agent, test, np.random.default_rng(0))
    lengths = [r.length for r in result.records]
    assert max(lengths) < 200 and len(lengths) > 3  # early terminations added trajectories
    assert sum(lengths[:-1]) < 600 <= sum(lengths)
    assert result.final_return == result.records[-1].reported_return
    assert result.returns.shape == (1, 1, len(lengths))
    trajectories = Evaluator.from_config(PEARLConfig(num_exp_traj_eval=2), family, env, layout, 200)
    assert trajectories.num_steps is None and trajectories.num_trajectories == 3
