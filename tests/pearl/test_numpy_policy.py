"""The numpy agent equals the torch agent (acting and posterior inference) and survives save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pearl_robot.pearl.agent import AgentDims, PEARLAgent
from pearl_robot.pearl.numpy_policy import NumpyAgent


@pytest.mark.parametrize("variant", ["probabilistic", "deterministic", "recurrent"])
def test_numpy_agent_matches_torch(variant, tmp_path):
    torch.manual_seed(0)
    dims = AgentDims(
        3, 2, latent_size=4, net_size=32, encoder_net_size=16,
        probabilistic=variant != "deterministic", recurrent=variant == "recurrent", use_next_obs_in_context=True,
    )  # fmt: skip
    agent = PEARLAgent(dims)
    for p in agent.parameters():
        p.data.normal_(0, 0.4)
    exported = agent.export_numpy()
    loaded = NumpyAgent.load(exported.save(tmp_path / "policy.npz"))
    context = torch.randn(2, 7, dims.context_dim)
    mean, var = agent.infer_posterior(context)
    obs = torch.randn(5, 3)
    z = torch.randn(4)
    actions = agent.act(obs, z.expand(5, 4), deterministic=True).numpy()
    for np_agent in (exported, loaded):
        m, v = np_agent.infer_posterior(context.numpy())
        np.testing.assert_allclose(m, mean.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(v, var.detach().numpy(), rtol=1e-4, atol=1e-7)
        m1, _ = np_agent.infer_posterior(context[1].numpy())  # one task, [N, C]
        np.testing.assert_allclose(m1, mean[1].detach().numpy(), rtol=1e-4, atol=1e-5)
        np_agent.set_z(z.numpy())
        single = np.stack([np_agent.act(o, deterministic=True) for o in obs.numpy()])
        np.testing.assert_allclose(single, actions, rtol=1e-5, atol=1e-6)
        batched = np_agent.act_batch(obs.numpy(), z.expand(5, 4).numpy(), deterministic=True)
        np.testing.assert_allclose(batched, actions, rtol=1e-5, atol=1e-6)
    assert loaded.meta == exported.meta


def test_stochastic_actions_are_in_bounds_and_seeded():
    torch.manual_seed(0)
    agent = PEARLAgent(AgentDims(3, 2, net_size=16, encoder_net_size=8)).export_numpy()
    obs = np.ones(3, np.float32)
    a1 = agent.act(obs, np.random.default_rng(4))
    a2 = agent.act(obs, np.random.default_rng(4))
    np.testing.assert_array_equal(a1, a2)
    assert np.all(np.abs(a1) <= 1)
    z = agent.sample_z(*agent.prior(), np.random.default_rng(0))
    assert z.shape == (5,) and z.dtype == np.float32


def test_export_is_plain_npz(tmp_path):
    torch.manual_seed(0)
    path = PEARLAgent(AgentDims(3, 2, net_size=16, encoder_net_size=8)).export_numpy().save(tmp_path / "p.npz")
    with np.load(path, allow_pickle=False) as data:
        assert "policy.0.weight" in data.files and "encoder.3.weight" in data.files
        assert all(data[k].dtype != object for k in data.files)
