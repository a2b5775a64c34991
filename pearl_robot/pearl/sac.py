"""The PEARL gradient step: SAC with a V network and a fixed temperature, batched over the meta-batch.

One step for ``T`` tasks (PEARL.md "Losses per gradient step"):
1. context ``[T, N, C]`` -> q(z | c) per task -> one reparameterized z per task, repeated over its RL rows;
2. y = reward_scale r + (1 - done) gamma Vtarget(s', z)  (no grad);  Q loss = mse(Q1, y) + mse(Q2, y);
3. KL(q(z | c) || N(0, I)) summed over latent dims and tasks, times kl_lambda;
4. V target = min(Q1, Q2)(s, a ~ pi, z) - log pi(a | s, z); mse;
5. policy loss = mean(log pi - min Q) + 1e-3 mean(mean^2) + 1e-3 mean(log_std^2);
6. target V Polyak-averaged with tau.

The temperature is fixed at 1 (its role is played by reward_scale), as in the paper. ``learned_temperature``
(PEARLConfig, a departure listed in docs/pearl.md) learns it as SAC-v2 does: alpha = exp(log_alpha) from 1,
trained so the policy's entropy tracks ``target_entropy`` (default -action_dim); V's target becomes
min Q - alpha log pi and the policy loss mean(alpha log pi - min Q) + regularisers.

Every network is evaluated once per step, with all ``T * B`` rows in one forward: the encoder once over
all ``T * N`` context rows, Q1 and Q2 together (an ensemble of 2: one ``baddbmm`` per layer) on the
buffer actions, and once more on the policy's actions with the Q weights detached (so the policy's dQ/da
reaches the policy but never trains Q; that pass's backward runs each row through its minimum member only,
``EnsembleMLP.min_over_members``). All losses share one backward pass and one Adam step.

Detach points: the encoder gets gradients from the Q loss and the KL only; V, the policy and the Q pass
on the policy's actions see z detached. The reference takes the Q step before computing min Q on the new
actions; here all losses use the parameters from the start of the step (simultaneous SAC update, see
docs/pearl.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pearl_robot.pearl.agent import PEARLAgent

STAT_NAMES = (
    "q_loss",
    "v_loss",
    "policy_loss",
    "kl",
    "q_mean",
    "v_mean",
    "log_pi_mean",
    "z_mean_abs",
    "z_var_mean",
    "alpha",
)


@dataclass
class TrainBatch:
    """Tensors batched over tasks: RL rows ``[T, B, ...]`` and context ``[T, N, context_dim]``."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor  # [T, B, 1], dense
    next_obs: torch.Tensor
    terminals: torch.Tensor  # [T, B, 1], 1.0 where the env terminated (not truncated)
    context: torch.Tensor

    def to(self, device: torch.device) -> TrainBatch:
        return TrainBatch(*(t.to(device, non_blocking=True) for t in self.__dict__.values()))


@dataclass
class Losses:
    q_loss: torch.Tensor
    kl: torch.Tensor
    kl_loss: torch.Tensor
    v_loss: torch.Tensor
    policy_loss: torch.Tensor
    alpha_loss: torch.Tensor  # 0 unless the temperature is learned
    stats: torch.Tensor  # detached, in STAT_NAMES order

    @property
    def total(self) -> torch.Tensor:
        return self.q_loss + self.kl_loss + self.v_loss + self.policy_loss + self.alpha_loss


class SoftActorCritic:
    def __init__(
        self,
        agent: PEARLAgent,
        lr: float = 3e-4,
        reward_scale: float = 5.0,
        kl_lambda: float = 0.1,
        gamma: float = 0.99,
        tau: float = 0.005,
        policy_mean_reg_weight: float = 1e-3,
        policy_std_reg_weight: float = 1e-3,
        generator: torch.Generator | None = None,
        learned_temperature: bool = False,
        target_entropy: float | None = None,
    ) -> None:
        self.agent = agent
        self.reward_scale, self.kl_lambda, self.gamma, self.tau = reward_scale, kl_lambda, gamma, tau
        self.policy_mean_reg_weight, self.policy_std_reg_weight = policy_mean_reg_weight, policy_std_reg_weight
        self.generator = generator
        self.learned_temperature = learned_temperature
        self.target_entropy = float(-agent.dims.action_dim if target_entropy is None else target_entropy)
        device = next(agent.parameters()).device
        # log alpha from 0: alpha starts at the paper's fixed 1; a parameter only where it is learned
        self.log_alpha = torch.zeros((), device=device, requires_grad=learned_temperature)
        # one Adam over every trained parameter: Adam is per-parameter, so this equals the reference's
        # separate optimizers with one learning rate (the target V is not a parameter of it)
        params = [
            *agent.encoder.parameters(),
            *agent.policy.parameters(),
            *agent.qf.parameters(),
            *agent.vf.parameters(),
            *([self.log_alpha] if learned_temperature else []),
        ]
        self.optimizer = torch.optim.Adam(params, lr=lr, fused=True)
        self.num_steps = 0

    def compute_losses(self, batch: TrainBatch) -> Losses:
        agent = self.agent
        t, b, obs_dim = batch.obs.shape
        rows = t * b
        obs = batch.obs.reshape(rows, obs_dim)
        actions = batch.actions.reshape(rows, -1)
        next_obs = batch.next_obs.reshape(rows, obs_dim)
        rewards = batch.rewards.reshape(rows, 1)
        terminals = batch.terminals.reshape(rows, 1)

        # 1. posterior per task, one z per task repeated over its rows
        mean, var = agent.infer_posterior(batch.context)
        task_z = agent.sample_z(mean, var, self.generator)  # [T, L]
        z = task_z.unsqueeze(1).expand(t, b, -1).reshape(rows, -1)
        z_detached = z.detach()

        # 2. Q loss (the encoder learns through z here)
        q_pred = agent.qf(torch.cat([obs, actions, z], dim=-1))  # [2, rows, 1]
        with torch.no_grad():
            target_v = agent.target_vf(torch.cat([next_obs, z_detached], dim=-1))
            y = self.reward_scale * rewards + (1.0 - terminals) * self.gamma * target_v
        q_loss = (q_pred - y).pow(2).mean(dim=(1, 2)).sum()

        # 3. KL to the prior
        if agent.probabilistic:
            kl = agent.kl_divergence(mean, var)
        else:
            kl = torch.zeros((), device=obs.device)
        kl_loss = self.kl_lambda * kl

        # 4.-5. V and policy see z detached; the Q pass on the policy's actions trains neither Q nor the encoder
        obs_z = torch.cat([obs, z_detached], dim=-1)
        new_actions, policy_mean, policy_log_std, log_pi, _ = agent.policy(obs_z, generator=self.generator)
        min_q_new = agent.qf.min_over_members(torch.cat([obs, new_actions, z_detached], dim=-1))
        v_pred = agent.vf(obs_z)
        if self.learned_temperature:
            alpha = self.log_alpha.detach().exp()
            scaled_log_pi = alpha * log_pi
            alpha_loss = -(self.log_alpha * (log_pi.detach() + self.target_entropy)).mean()
        else:
            alpha, scaled_log_pi, alpha_loss = self.log_alpha.exp(), log_pi, torch.zeros((), device=obs.device)
        v_loss = F.mse_loss(v_pred, (min_q_new - scaled_log_pi).detach())
        policy_loss = (
            (scaled_log_pi - min_q_new).mean()
            + self.policy_mean_reg_weight * policy_mean.pow(2).mean()
            + self.policy_std_reg_weight * policy_log_std.pow(2).mean()
        )

        with torch.no_grad():
            stats = torch.stack(
                [
                    q_loss,
                    v_loss,
                    policy_loss,
                    kl,
                    q_pred.mean(),
                    v_pred.mean(),
                    log_pi.mean(),
                    mean.abs().mean(),
                    var.mean(),
                    alpha,
                ]
            )
        return Losses(q_loss, kl, kl_loss, v_loss, policy_loss, alpha_loss, stats)

    def train_step(self, batch: TrainBatch) -> torch.Tensor:
        """One gradient step on every network, then the target update; returns the detached stats."""
        losses = self.compute_losses(batch)
        self.optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        self.optimizer.step()
        self.agent.update_target(self.tau)
        self.num_steps += 1
        return losses.stats

    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "num_steps": self.num_steps,
            "log_alpha": self.log_alpha.item(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.num_steps = int(state["num_steps"])
        with torch.no_grad():  # checkpoints from before the option have none: the fixed alpha 1
            self.log_alpha.fill_(float(state.get("log_alpha", 0.0)))
