"""The context encoder pinned to its definition: product of Gaussians, KL, deterministic and recurrent
variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from pearl_robot.pearl.encoder import VAR_FLOOR, ContextEncoder, kl_to_standard_normal, product_of_gaussians


def test_product_of_gaussians_matches_the_product_of_densities():
    """1-D: multiply the factor densities on a grid, normalize, read off mean and variance."""
    mean = torch.tensor([[0.3], [-0.5], [1.2], [0.1]], dtype=torch.float64)
    var = torch.tensor([[0.5], [2.0], [1.5], [0.8]], dtype=torch.float64)
    mu_p, var_p = product_of_gaussians(mean, var, dim=0)
    x = np.linspace(-10, 10, 400_001)
    log_density = sum(-0.5 * (x - m) ** 2 / v for m, v in zip(mean[:, 0].numpy(), var[:, 0].numpy()))
    w = np.exp(log_density - log_density.max())
    w /= w.sum()
    grid_mean = float((w * x).sum())
    grid_var = float((w * (x - grid_mean) ** 2).sum())
    assert mu_p.item() == pytest.approx(grid_mean, abs=1e-6)
    assert var_p.item() == pytest.approx(grid_var, rel=1e-5)


def test_product_of_gaussians_batched_over_tasks_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 7, 5, generator=g, dtype=torch.float64)
    var = torch.rand(4, 7, 5, generator=g, dtype=torch.float64) + 0.1
    mu_p, var_p = product_of_gaussians(mean, var)
    for t in range(4):
        for d in range(5):
            precision = sum(1.0 / var[t, n, d].item() for n in range(7))
            expected_var = 1.0 / precision
            expected_mean = expected_var * sum(mean[t, n, d].item() / var[t, n, d].item() for n in range(7))
            assert var_p[t, d].item() == pytest.approx(expected_var, rel=1e-12)
            assert mu_p[t, d].item() == pytest.approx(expected_mean, rel=1e-12, abs=1e-12)


def test_product_of_gaussians_floors_the_variance():
    mu, var = product_of_gaussians(torch.zeros(1, 2, 1), torch.zeros(1, 2, 1))
    assert var.item() == pytest.approx(VAR_FLOOR / 2)
    assert torch.isfinite(mu).all()


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mean = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    var = torch.rand(6, 5, generator=g, dtype=torch.float64) * 3 + 1e-3
    ours = kl_to_standard_normal(mean, var)
    ref = kl_divergence(Normal(mean, var.sqrt()), Normal(torch.zeros_like(mean), torch.ones_like(var))).sum(-1)
    torch.testing.assert_close(ours, ref)


def test_probabilistic_encoder_is_the_product_of_its_factors_and_permutation_invariant():
    torch.manual_seed(0)
    enc = ContextEncoder(context_dim=5, latent_size=3, hidden_size=16)
    context = torch.randn(2, 9, 5)
    mean, var = enc(context)
    f_mean, f_var = enc.factors(context)
    expected = product_of_gaussians(f_mean, f_var)
    torch.testing.assert_close(mean, expected[0])
    torch.testing.assert_close(var, expected[1])
    perm = torch.randperm(9)
    mean_p, var_p = enc(context[:, perm])
    torch.testing.assert_close(mean, mean_p, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(var, var_p, rtol=1e-5, atol=1e-7)
    # each factor's variance is a softplus of the network output, floored
    raw = enc.net(context)[..., 3:]
    torch.testing.assert_close(f_var, torch.nn.functional.softplus(raw).clamp(min=VAR_FLOOR))


def test_deterministic_encoder_is_the_mean_of_the_outputs():
    torch.manual_seed(0)
    enc = ContextEncoder(context_dim=5, latent_size=3, hidden_size=16, probabilistic=False)
    context = torch.randn(2, 9, 5)
    mean, var = enc(context)
    torch.testing.assert_close(mean, enc.net(context).mean(dim=1))
    assert torch.count_nonzero(var) == 0


def test_recurrent_encoder_depends_on_order_and_trains():
    torch.manual_seed(0)
    enc = ContextEncoder(context_dim=5, latent_size=3, hidden_size=16, recurrent=True)
    context = torch.randn(2, 9, 5)
    mean, var = enc(context)
    assert mean.shape == (2, 3) and var.shape == (2, 3) and (var > 0).all()
    mean_r, _ = enc(context.flip(1))
    assert not torch.allclose(mean, mean_r)
    (mean.sum() + var.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_recurrent_encoder_must_be_probabilistic():
    with pytest.raises(ValueError):
        ContextEncoder(5, 3, recurrent=True, probabilistic=False)
