"""Networks: the twin-Q ensemble equals two separate MLPs, the min-member pass on the policy's actions,
the tanh-Gaussian policy's log-prob, and the reference initialization."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from pearl_robot.pearl.agent import AgentDims, PEARLAgent
from pearl_robot.pearl.networks import LAST_LAYER_INIT, MLP, EnsembleMLP, TanhGaussianPolicy


def _member_forward(ens: EnsembleMLP, k: int, x: torch.Tensor) -> torch.Tensor:
    layers = ens.member_state(k)
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = F.relu(x)
    return x


def test_ensemble_is_independent_mlps_in_one_pass():
    torch.manual_seed(0)
    ens = EnsembleMLP(2, 7, [32, 32, 32], 1)
    x = torch.randn(50, 7)
    out = ens(x)
    assert out.shape == (2, 50, 1)
    for k in range(2):
        torch.testing.assert_close(out[k], _member_forward(ens, k, x))
    # per-member inputs
    xs = torch.randn(2, 50, 7)
    out2 = ens(xs)
    for k in range(2):
        torch.testing.assert_close(out2[k], _member_forward(ens, k, xs[k]))
    # the two members differ (independent initialization)
    assert not torch.allclose(out[0], out[1])


def _plain_min(ens: EnsembleMLP, x: torch.Tensor) -> torch.Tensor:
    """The straightforward path: both members through autograd, torch.minimum (the callers take the
    gradient with respect to ``x`` only)."""
    return torch.minimum(_member_forward(ens, 0, x), _member_forward(ens, 1, x))


@pytest.mark.parametrize("last_bias_of_member_1", [0.0, -100.0, 100.0], ids=["mixed", "all-member-1", "all-member-0"])
def test_min_over_members_matches_the_plain_minimum_and_trains_no_weight(last_bias_of_member_1):
    torch.manual_seed(0)
    ens = EnsembleMLP(2, 7, [32, 32, 32], 1)
    x = torch.randn(300, 7, requires_grad=True)
    with torch.no_grad():  # "mixed": member 1 shifted so it is the lower one on half the rows; else far off
        q = ens(x)
        ens.biases[-1][1].sub_((q[1] - q[0]).median()).add_(last_bias_of_member_1)
    grad_out = torch.randn(300, 1)
    fast = ens.min_over_members(x)
    (fast_grad,) = torch.autograd.grad(fast, x, grad_out)
    plain = _plain_min(ens, x)
    (plain_grad,) = torch.autograd.grad(plain, x, grad_out)
    torch.testing.assert_close(fast, plain)
    torch.testing.assert_close(fast_grad, plain_grad)
    with torch.no_grad():
        q = ens(x)
    share_of_member_1 = (q[1] < q[0]).float().mean().item()
    expected = {-100.0: (1.0, 1.0), 100.0: (0.0, 0.0), 0.0: (0.4, 0.6)}[last_bias_of_member_1]
    assert expected[0] <= share_of_member_1 <= expected[1]  # "mixed": the gathered backward runs both ways
    ens.min_over_members(x).sum().backward()
    assert all(p.grad is None for p in ens.parameters())


def test_min_over_members_needs_twin_members_of_one_output():
    with pytest.raises(ValueError, match="2 members of 1 output"):
        EnsembleMLP(3, 4, [8], 1).min_over_members(torch.randn(5, 4))
    with pytest.raises(ValueError, match="has 2 of 3"):
        EnsembleMLP(2, 4, [8], 3).min_over_members(torch.randn(5, 4))


def test_default_initialization_uses_the_true_fan_in():
    torch.manual_seed(0)
    mlp = MLP(10, [300, 300], 4)
    for layer in mlp.hidden:
        assert torch.all(layer.bias == 0.1)
    assert mlp.last.weight.abs().max() <= LAST_LAYER_INIT and mlp.last.bias.abs().max() <= LAST_LAYER_INIT
    bound = 1 / 10**0.5  # true fan-in of the first layer
    assert mlp.hidden[0].weight.abs().max() <= bound and mlp.hidden[0].weight.abs().max() > 0.9 * bound
    ens = EnsembleMLP(2, 10, [300], 1)
    assert torch.all(ens.biases[0] == 0.1) and ens.weights[-1].abs().max() <= LAST_LAYER_INIT


def _hidden_layers(agent: PEARLAgent) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, weight ``[out, in]``, bias) of every hidden layer of the policy, V, the Qs and the encoder."""
    layers = []
    for name, mlp in (("policy", agent.policy.net), ("vf", agent.vf), ("encoder", agent.encoder.net)):
        layers += [(f"{name}.{i}", layer.weight, layer.bias) for i, layer in enumerate(mlp.hidden)]
    for k in range(agent.qf.size):
        layers += [(f"qf{k}.{i}", w.T, b) for i, (w, b) in enumerate(agent.qf.member_state(k)[:-1])]
    return layers


def test_reference_initialization_is_rlkits():
    """init="reference": rlkit's fanin_init bound 1/sqrt(output width) on every hidden layer, biases 0.1,
    last layers +-3e-3 (Q, V, encoder) and +-1e-3 (both policy heads)."""
    torch.manual_seed(0)
    dims = AgentDims(obs_dim=2, action_dim=2, net_size=300, encoder_net_size=200, init="reference")
    agent = PEARLAgent(dims)
    for name, weight, bias in _hidden_layers(agent):
        assert torch.all(bias == 0.1), name
        bound = 1 / weight.shape[0] ** 0.5  # the layer's output width: 300, or 200 in the encoder
        assert bound < 1 / weight.shape[1] ** 0.5 or weight.shape[0] == weight.shape[1]
        assert weight.abs().max() <= bound and weight.abs().max() > 0.95 * bound, name
    policy_last = agent.policy.net.last
    assert policy_last.weight.abs().max() <= 1e-3 and policy_last.bias.abs().max() <= 1e-3
    assert policy_last.weight.abs().max() > 0.9e-3  # the full +-1e-3 range, not something smaller
    for last_w, last_b in (
        (agent.vf.last.weight, agent.vf.last.bias),
        (agent.encoder.net.last.weight, agent.encoder.net.last.bias),
        (agent.qf.weights[-1], agent.qf.biases[-1]),
    ):
        assert last_w.abs().max() <= 3e-3 and last_b.abs().max() <= 3e-3
        assert last_w.abs().max() > 2.5e-3
    torch.testing.assert_close(agent.target_vf.last.weight, agent.vf.last.weight)


def test_default_initialization_keeps_the_true_fan_in_and_3e_3_policy_heads():
    torch.manual_seed(0)
    agent = PEARLAgent(AgentDims(obs_dim=2, action_dim=2, net_size=300, encoder_net_size=200))
    first = agent.policy.net.hidden[0].weight  # input 2 + 5 (z): bound 1/sqrt(7), 6.5x the reference's
    assert first.abs().max() <= 1 / 7**0.5 and first.abs().max() > 0.95 / 7**0.5
    assert 2.5e-3 < agent.policy.net.last.weight.abs().max() <= LAST_LAYER_INIT
    with pytest.raises(ValueError, match="init must be one of"):
        MLP(3, [4], 1, init="xavier")


def test_tanh_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    policy = TanhGaussianPolicy(6, [32, 32], 3)
    for p in policy.parameters():
        p.data.normal_(0, 0.3)
    x = torch.randn(64, 6, dtype=torch.float64)
    policy.double()
    g = torch.Generator().manual_seed(5)
    action, mean, log_std, log_prob, pre_tanh = policy(x, generator=g)
    dist = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform(cache_size=0)])
    expected = Normal(mean, log_std.exp()).log_prob(pre_tanh) - dist.transforms[0].log_abs_det_jacobian(
        pre_tanh, action
    )
    torch.testing.assert_close(log_prob, expected.sum(-1, keepdim=True))
    torch.testing.assert_close(action, torch.tanh(pre_tanh))
    assert (action.abs() < 1).all()


def test_policy_log_std_is_clamped_and_deterministic_action_is_tanh_mean():
    policy = TanhGaussianPolicy(3, [8], 2)
    with torch.no_grad():
        policy.net.last.bias.copy_(torch.tensor([0.5, -0.5, 50.0, -50.0]))
        policy.net.last.weight.zero_()
    action, mean, log_std, _, _ = policy(torch.randn(4, 3), deterministic=True)
    assert torch.all(log_std[:, 0] == 2.0) and torch.all(log_std[:, 1] == -20.0)
    torch.testing.assert_close(action, torch.tanh(mean))


def test_reparameterized_sample_carries_gradients():
    torch.manual_seed(0)
    policy = TanhGaussianPolicy(3, [8], 2)
    action, *_ = policy(torch.randn(4, 3))
    action.sum().backward()
    assert policy.net.last.weight.grad.abs().sum() > 0
