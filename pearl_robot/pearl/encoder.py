"""The context encoder: a set of transitions -> a Gaussian posterior over the task variable z.

- probabilistic (the paper's): an MLP maps each transition (obs, act, reward[, next obs]) to a Gaussian
  factor (mean, variance = softplus, floored at 1e-7); the posterior is their product
  ``var = 1 / sum_n 1/var_n``, ``mean = var * sum_n mean_n/var_n`` (the prior is not multiplied in);
  the KL to N(0, I) regularizes it.
- deterministic: z = the mean of the per-transition outputs; no KL.
- recurrent: an MLP embedding, then a GRU over the transitions in the order they happened; the last
  hidden state gives one Gaussian (mean, softplus variance). Order-dependent, so its context is a
  contiguous window of the encoder buffer. (The reference's recurrent option does not run; this one
  is a working replacement, see docs/pearl.md.)

Contexts are batched over tasks: ``[T, N, C]`` -> mean, var ``[T, latent]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pearl_robot.pearl.networks import MLP, _init_last

VAR_FLOOR = 1e-7


def product_of_gaussians(mean: torch.Tensor, var: torch.Tensor, dim: int = -2) -> tuple[torch.Tensor, torch.Tensor]:
    """The product of the Gaussian factors along ``dim`` (unnormalized product, as a Gaussian)."""
    var = var.clamp(min=VAR_FLOOR)
    precision = var.reciprocal()
    var_p = precision.sum(dim=dim).reciprocal()
    mean_p = var_p * (mean * precision).sum(dim=dim)
    return mean_p, var_p


def kl_to_standard_normal(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag var) || N(0, I)) summed over the last dimension."""
    return 0.5 * (var + mean.pow(2) - 1.0 - var.log()).sum(dim=-1)


class ContextEncoder(nn.Module):
    def __init__(
        self,
        context_dim: int,
        latent_size: int,
        hidden_size: int = 200,
        num_hidden_layers: int = 3,
        probabilistic: bool = True,
        recurrent: bool = False,
        init: str = "fan_in",
    ) -> None:
        super().__init__()
        self.context_dim, self.latent_size = context_dim, latent_size
        self.probabilistic, self.recurrent = probabilistic, recurrent
        out = 2 * latent_size if probabilistic else latent_size
        if recurrent:
            if not probabilistic:
                raise ValueError("the recurrent encoder is probabilistic only")
            self.embed = MLP(context_dim, [hidden_size] * max(num_hidden_layers - 1, 1), hidden_size, init)
            self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
            self.head = nn.Linear(hidden_size, out)
            _init_last(self.head.weight, self.head.bias)
        else:
            self.net = MLP(context_dim, [hidden_size] * num_hidden_layers, out, init)

    def factors(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-transition Gaussian factors ``[T, N, latent]`` (probabilistic, non-recurrent)."""
        params = self.net(context)
        return params[..., : self.latent_size], F.softplus(params[..., self.latent_size :]).clamp(min=VAR_FLOOR)

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``context`` ``[T, N, C]`` -> posterior (mean, var), each ``[T, latent]``. Deterministic: var = 0."""
        if self.recurrent:
            h = F.relu(self.embed(context))
            _, last = self.gru(h)
            params = self.head(last[0])
            return params[..., : self.latent_size], F.softplus(params[..., self.latent_size :]).clamp(min=VAR_FLOOR)
        if self.probabilistic:
            return product_of_gaussians(*self.factors(context))
        mean = self.net(context).mean(dim=-2)
        return mean, torch.zeros_like(mean)
