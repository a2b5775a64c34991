"""The evaluation protocol's z schedule: prior for the exploration trajectories, then the posterior of
all online context, deterministic actions; per-trajectory and final returns."""

from __future__ import annotations

import numpy as np
import torch

from pearl_robot.pearl.agent import AgentDims, PEARLAgent
from pearl_robot.pearl.buffers import Layout
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
