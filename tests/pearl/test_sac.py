"""The gradient step pinned to PEARL.md: who gets gradients from which loss (detach points), the
target update, the KL over the meta-batch, the Bellman target, one batched pass vs per-task."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from pearl_robot.pearl.agent import AgentDims, PEARLAgent
from pearl_robot.pearl.encoder import product_of_gaussians
from pearl_robot.pearl.sac import SoftActorCritic, TrainBatch

OBS, ACT = 4, 2


def _setup(seed: int = 0, **dims):
    torch.manual_seed(seed)
    agent = PEARLAgent(AgentDims(OBS, ACT, latent_size=3, net_size=32, encoder_net_size=16, **dims))
    # move the output layers off their tiny init so every gradient is clearly non-zero
    for p in agent.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    agent.target_vf.load_state_dict(agent.vf.state_dict())
    sac = SoftActorCritic(agent, kl_lambda=0.1, generator=torch.Generator().manual_seed(seed))
    return agent, sac


def _batch(agent: PEARLAgent, t: int = 3, b: int = 10, n: int = 6, seed: int = 0) -> TrainBatch:
    g = torch.Generator().manual_seed(seed)
    return TrainBatch(
        obs=torch.randn(t, b, OBS, generator=g),
        actions=torch.rand(t, b, ACT, generator=g) * 2 - 1,
        rewards=torch.randn(t, b, 1, generator=g),
        next_obs=torch.randn(t, b, OBS, generator=g),
        terminals=(torch.rand(t, b, 1, generator=g) < 0.3).float(),
        context=torch.randn(t, n, agent.dims.context_dim, generator=g),
    )


def _grads(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("loss_name", ["v_loss", "policy_loss"])
def test_v_and_policy_losses_give_the_encoder_no_gradient(loss_name):
    agent, sac = _setup()
    losses = sac.compute_losses(_batch(agent))
    agent.zero_grad(set_to_none=True)
    getattr(losses, loss_name).backward()
    assert _grads(agent.encoder) == 0.0
    trained = agent.vf if loss_name == "v_loss" else agent.policy
    assert _grads(trained) > 0


def test_policy_loss_trains_the_policy_only():
    agent, sac = _setup()
    losses = sac.compute_losses(_batch(agent))
    agent.zero_grad(set_to_none=True)
    losses.policy_loss.backward()
    assert _grads(agent.qf) == 0.0 and _grads(agent.vf) == 0.0 and _grads(agent.encoder) == 0.0
    assert _grads(agent.policy) > 0


def test_v_loss_trains_v_only():
    agent, sac = _setup()
    losses = sac.compute_losses(_batch(agent))
    agent.zero_grad(set_to_none=True)
    losses.v_loss.backward()
    assert _grads(agent.qf) == 0.0 and _grads(agent.policy) == 0.0 and _grads(agent.encoder) == 0.0
    assert _grads(agent.vf) > 0


def test_q_loss_and_kl_train_the_encoder():
    agent, sac = _setup()
    losses = sac.compute_losses(_batch(agent))
    agent.zero_grad(set_to_none=True)
    losses.q_loss.backward(retain_graph=True)
    assert _grads(agent.encoder) > 0 and _grads(agent.qf) > 0
    assert _grads(agent.policy) == 0.0 and _grads(agent.vf) == 0.0 and _grads(agent.target_vf) == 0.0
    agent.zero_grad(set_to_none=True)
    losses.kl_loss.backward()
    assert _grads(agent.encoder) > 0 and _grads(agent.qf) == 0.0


def test_kl_is_summed_over_tasks_and_latent_dims():
    agent, sac = _setup()
    batch = _batch(agent, t=4)
    losses = sac.compute_losses(batch)
    expected = 0.0
    for t in range(4):  # per task, as the reference's loop over the meta-batch
        mean, var = agent.infer_posterior(batch.context[t : t + 1])
        expected += float(kl_divergence(Normal(mean, var.sqrt()), Normal(0.0, 1.0)).sum().detach())
    assert float(losses.kl.detach()) == pytest.approx(expected, rel=1e-5)
    assert float(losses.kl_loss.detach()) == pytest.approx(0.1 * expected, rel=1e-5)


def test_batched_posterior_equals_per_task_posterior():
    agent, _ = _setup()
    batch = _batch(agent, t=5)
    mean, var = agent.infer_posterior(batch.context)
    for t in range(5):
        f_mean, f_var = agent.encoder.factors(batch.context[t])
        m, v = product_of_gaussians(f_mean, f_var, dim=0)
        torch.testing.assert_close(mean[t], m, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(var[t], v, rtol=1e-5, atol=1e-8)


def test_q_loss_uses_the_bellman_target_with_one_z_per_task():
    agent, sac = _setup()
    batch = _batch(agent, t=2, b=5)
    state = sac.generator.get_state()
    losses = sac.compute_losses(batch)
    # recompute by hand with the same z noise
    sac.generator.set_state(state)
    mean, var = agent.infer_posterior(batch.context)
    z = agent.sample_z(mean, var, sac.generator)
    zs = z.unsqueeze(1).expand(2, 5, -1).reshape(10, -1)
    obs, act = batch.obs.reshape(10, OBS), batch.actions.reshape(10, ACT)
    target_v = agent.target_vf(torch.cat([batch.next_obs.reshape(10, OBS), zs], -1))
    y = sac.reward_scale * batch.rewards.reshape(10, 1) + (1 - batch.terminals.reshape(10, 1)) * sac.gamma * target_v
    q = agent.qf(torch.cat([obs, act, zs], -1))
    expected = ((q[0] - y) ** 2).mean() + ((q[1] - y) ** 2).mean()
    assert float(losses.q_loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_target_v_is_polyak_averaged_every_step():
    agent, sac = _setup()
    old_target = [p.detach().clone() for p in agent.target_vf.parameters()]
    sac.train_step(_batch(agent))
    new_v = [p.detach().clone() for p in agent.vf.parameters()]
    for target, old, v in zip(agent.target_vf.parameters(), old_target, new_v):
        torch.testing.assert_close(target.detach(), (1 - sac.tau) * old + sac.tau * v)
    assert sac.tau == 0.005
    assert not any(p.requires_grad for p in agent.target_vf.parameters())


def test_one_step_moves_every_trained_network():
    agent, sac = _setup()
    before = {name: p.detach().clone() for name, p in agent.named_parameters()}
    stats = sac.train_step(_batch(agent))
    assert torch.isfinite(stats).all()
    for name, p in agent.named_parameters():
        if name.startswith("target_vf"):
            continue
        assert not torch.equal(before[name], p.detach()), name


def test_deterministic_encoder_has_no_kl():
    agent, sac = _setup(probabilistic=False)
    losses = sac.compute_losses(_batch(agent))
    assert float(losses.kl.detach()) == 0.0
    agent.zero_grad(set_to_none=True)
    losses.q_loss.backward()
    assert _grads(agent.encoder) > 0


def test_recurrent_agent_trains():
    agent, sac = _setup(recurrent=True)
    stats = sac.train_step(_batch(agent))
    assert torch.isfinite(stats).all()


def _learned(seed: int = 0, target_entropy: float | None = None):
    agent, _ = _setup(seed)
    sac = SoftActorCritic(
        agent, generator=torch.Generator().manual_seed(seed), learned_temperature=True, target_entropy=target_entropy
    )
    return agent, sac


def test_fixed_temperature_is_one_and_not_trained():
    agent, sac = _setup()
    stats = sac.train_step(_batch(agent))
    assert not sac.log_alpha.requires_grad and sac.log_alpha.item() == 0.0
    assert float(stats[-1]) == 1.0  # the "alpha" stat


def test_learned_temperature_trains_alpha_alone_and_scales_log_pi():
    agent, sac = _learned()
    assert sac.target_entropy == -ACT  # SAC-v2's default
    batch = _batch(agent)
    losses = sac.compute_losses(batch)
    agent.zero_grad(set_to_none=True)
    losses.alpha_loss.backward()
    assert sac.log_alpha.grad is not None and float(sac.log_alpha.grad) != 0.0
    assert _grads(agent) == 0.0  # the temperature's loss trains nothing else
    # with alpha = 1 the V and policy losses are the fixed-temperature ones, at alpha 2 log pi counts twice
    fixed = SoftActorCritic(agent, generator=torch.Generator().manual_seed(0))
    sac.generator, fixed.generator = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = sac.compute_losses(batch), fixed.compute_losses(batch)
    assert torch.allclose(a.policy_loss, b.policy_loss) and torch.allclose(a.v_loss, b.v_loss)
    with torch.no_grad():
        sac.log_alpha.fill_(torch.log(torch.tensor(2.0)))
    sac.generator = torch.Generator().manual_seed(5)
    doubled = sac.compute_losses(batch)
    assert float(doubled.stats[-1]) == pytest.approx(2.0)
    # the same sample: the policy loss grows by mean(log pi) (the entropy term counted twice)
    log_pi = float(b.stats[6])
    assert float(doubled.policy_loss.detach()) == pytest.approx(float(b.policy_loss.detach()) + log_pi, rel=1e-5)


@pytest.mark.parametrize("target, direction", [(-50.0, -1), (50.0, 1)])
def test_alpha_moves_so_the_entropy_tracks_its_target(target, direction):
    """Entropy above the target (-50: far below any policy's) lowers alpha; below it (+50) raises it."""
    agent, sac = _learned(target_entropy=target)
    batch = _batch(agent)
    for _ in range(5):
        sac.train_step(batch)
    assert direction * sac.log_alpha.item() > 0


def test_learned_alpha_survives_a_checkpoint():
    agent, sac = _learned()
    batch = _batch(agent)
    for _ in range(3):
        sac.train_step(batch)
    state = sac.state_dict()
    agent2, sac2 = _learned()
    sac2.load_state_dict(state)
    assert sac2.log_alpha.item() == sac.log_alpha.item() != 0.0
    assert sac2.log_alpha.requires_grad
