"""PEARLAgent: the context encoder, the tanh-Gaussian policy, the twin Q functions, V and target V,
and how z flows between them.

z handling is functional (no hidden ``self.z``): ``infer_posterior(context)`` gives the posterior
(mean, var) per task, ``sample_z`` draws a reparameterized z, ``prior(num_tasks)`` is N(0, I).
Detach points (the paper's): the encoder is trained by the Q loss and the KL only; V and the policy
see z detached (``SoftActorCritic.compute_losses``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from pearl_robot.pearl.config import PEARLConfig
from pearl_robot.pearl.encoder import ContextEncoder, kl_to_standard_normal
from pearl_robot.pearl.networks import MLP, EnsembleMLP, TanhGaussianPolicy


@dataclass(frozen=True)
class AgentDims:
    obs_dim: int
    action_dim: int
    latent_size: int = 5
    net_size: int = 300
    encoder_net_size: int = 200
    num_hidden_layers: int = 3
    use_next_obs_in_context: bool = False
    probabilistic: bool = True
    recurrent: bool = False
    use_context: bool = True  # False: z is always 0 (multi-task SAC without context, a baseline)
    init: str = "fan_in"  # weight initialization (networks.INITS): "fan_in" or "reference" (rlkit's)

    @property
    def context_dim(self) -> int:
        return self.obs_dim + self.action_dim + 1 + (self.obs_dim if self.use_next_obs_in_context else 0)

    @classmethod
    def from_config(cls, cfg: PEARLConfig, obs_dim: int, action_dim: int) -> AgentDims:
        return cls(
            obs_dim=obs_dim,
            action_dim=action_dim,
            latent_size=cfg.latent_size,
            net_size=cfg.net_size,
            encoder_net_size=cfg.encoder_net_size,
            num_hidden_layers=cfg.num_hidden_layers,
            use_next_obs_in_context=cfg.use_next_obs_in_context,
            probabilistic=cfg.use_information_bottleneck,
            recurrent=cfg.recurrent,
            use_context=cfg.use_context,
            init=cfg.init,
        )


class PEARLAgent(nn.Module):
    def __init__(self, dims: AgentDims) -> None:
        super().__init__()
        self.dims = dims
        hidden = [dims.net_size] * dims.num_hidden_layers
        o, a, z = dims.obs_dim, dims.action_dim, dims.latent_size
        self.encoder = ContextEncoder(
            dims.context_dim,
            z,
            dims.encoder_net_size,
            dims.num_hidden_layers,
            probabilistic=dims.probabilistic,
            recurrent=dims.recurrent,
            init=dims.init,
        )
        self.policy = TanhGaussianPolicy(o + z, hidden, a, dims.init)
        self.qf = EnsembleMLP(2, o + a + z, hidden, 1, dims.init)  # Q1, Q2 in one batched pass
        self.vf = MLP(o + z, hidden, 1, dims.init)
        self.target_vf = copy.deepcopy(self.vf)
        self.target_vf.requires_grad_(False)

    @property
    def latent_size(self) -> int:
        return self.dims.latent_size

    @property
    def probabilistic(self) -> bool:
        return self.dims.probabilistic

    # ---- z ------------------------------------------------------------------------------------
    def prior(self, num_tasks: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.vf.last.weight.device
        mean = torch.zeros(num_tasks, self.latent_size, device=device)
        var = torch.ones_like(mean) if self.probabilistic and self.dims.use_context else torch.zeros_like(mean)
        return mean, var

    def infer_posterior(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``context`` ``[T, N, context_dim]`` -> q(z | c) as (mean, var), each ``[T, latent]``."""
        if not self.dims.use_context:
            return self.prior(context.shape[0])
        return self.encoder(context)

    def sample_z(self, mean: torch.Tensor, var: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A reparameterized sample of N(mean, var); the mean itself for the deterministic encoder."""
        if not self.probabilistic:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + var.sqrt() * noise

    def kl_divergence(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """KL(q(z | c) || N(0, I)) summed over latent dimensions and tasks (0 without context)."""
        if not self.dims.use_context:
            return mean.new_zeros(())
        return kl_to_standard_normal(mean, var).sum()

    # ---- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, z: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Torch acting (numpy acting is ``export_numpy().act``); ``obs`` ``[M, obs]``, ``z`` ``[M, latent]``."""
        return self.policy(torch.cat([obs, z], dim=-1), deterministic=deterministic)[0]

    def export_numpy(self):
        """The encoder and policy as numpy arrays (pearl_robot.pearl.numpy_policy.NumpyAgent)."""
        from pearl_robot.pearl.numpy_policy import NumpyAgent

        return NumpyAgent.from_agent(self)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """Polyak averaging: target <- (1 - tau) target + tau V."""
        torch._foreach_lerp_(list(self.target_vf.parameters()), list(self.vf.parameters()), tau)
