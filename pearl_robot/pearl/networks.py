"""Networks: MLPs, an ensemble MLP that computes the twin Q functions in one batched pass, and the
tanh-Gaussian policy.

Initialization (``init``, PEARLConfig.init; see docs/pearl.md):

- ``"fan_in"`` (default): hidden weights uniform in +-1/sqrt(fan_in) with the true fan-in, hidden biases
  0.1, every last layer's weights and biases uniform in +-3e-3 (the policy's too).
- ``"reference"`` (rlkit's, as oyster runs it): hidden weights uniform in +-1/sqrt(width of the layer's
  *output*) (``fanin_init`` reads ``weight.size(0)`` of an ``nn.Linear``, which is its output width), so
  the first layer of a 300-wide net gets +-1/sqrt(300) whatever its input; hidden biases 0.1; last
  layers +-3e-3 (``Mlp``'s ``init_w``) except the policy's mean and log-std heads, +-1e-3
  (``TanhGaussianPolicy``'s ``init_w``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pearl_robot.pearl.numpy_policy import LOG_STD_MAX, LOG_STD_MIN

HIDDEN_BIAS_INIT = 0.1
LAST_LAYER_INIT = 3e-3
POLICY_LAST_LAYER_INIT_REFERENCE = 1e-3  # rlkit's TanhGaussianPolicy init_w
INITS = ("fan_in", "reference")
_LOG2 = math.log(2.0)


def check_init(init: str) -> str:
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return init


def _init_hidden(weight: torch.Tensor, bias: torch.Tensor, fan_in: int, fan_out: int, init: str = "fan_in") -> None:
    """Uniform in +-1/sqrt(fan_in) (``init="fan_in"``) or +-1/sqrt(fan_out) (``"reference"``, rlkit's
    ``fanin_init`` on an ``nn.Linear`` weight); bias 0.1."""
    bound = 1.0 / math.sqrt(fan_in if check_init(init) == "fan_in" else fan_out)
    nn.init.uniform_(weight, -bound, bound)
    nn.init.constant_(bias, HIDDEN_BIAS_INIT)


def _init_last(weight: torch.Tensor, bias: torch.Tensor, bound: float = LAST_LAYER_INIT) -> None:
    nn.init.uniform_(weight, -bound, bound)
    nn.init.uniform_(bias, -bound, bound)


class MLP(nn.Module):
    """Linear-ReLU stack; the output layer is linear (weights and biases uniform in +-``last_init``)."""

    def __init__(
        self,
        in_dim: int,
        hidden: list[int] | tuple[int, ...],
        out_dim: int,
        init: str = "fan_in",
        last_init: float = LAST_LAYER_INIT,
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.last = nn.Linear(dims[-1], out_dim)
        for layer, fan_in, fan_out in zip(self.hidden, dims[:-1], dims[1:]):
            _init_hidden(layer.weight, layer.bias, fan_in, fan_out, init)
        _init_last(self.last.weight, self.last.bias, last_init)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = F.relu(F.linear(x, layer.weight, layer.bias), inplace=True)
        return F.linear(x, self.last.weight, self.last.bias)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden activation."""
        for layer in self.hidden:
            x = F.relu(F.linear(x, layer.weight, layer.bias), inplace=True)
        return x


class EnsembleMLP(nn.Module):
    """``size`` independent MLPs evaluated together: every layer is one ``torch.baddbmm`` over the
    members (weights ``[size, in, out]``). The twin Q functions are an ensemble of 2."""

    def __init__(
        self, size: int, in_dim: int, hidden: list[int] | tuple[int, ...], out_dim: int, init: str = "fan_in"
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            w = torch.empty(size, a, b)
            bias = torch.empty(size, 1, b)
            if i < len(dims) - 2:
                _init_hidden(w, bias, a, b, init)
            else:
                _init_last(w, bias)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(bias))
        self.size, self.in_dim, self.out_dim = size, in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[M, in]`` (the same input to every member) or ``[size, M, in]``; returns
        ``[size, M, out]``."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.size, -1, -1)
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < n - 1:
                x = F.relu(x, inplace=True)
        return x

    def min_over_members(self, x: torch.Tensor) -> torch.Tensor:
        """min over the members of ``forward(x)``, ``[M, out]``, with gradients reaching ``x`` but never
        the weights (the policy's dQ/da must not train Q). The same values and gradient as
        ``torch.minimum`` of the members, but the backward runs each row through its minimum member
        alone: the other member's gradient there is zero, so half the backward GEMMs of the plain path
        are skipped. Ties (which torch.minimum splits in half) go to member 0. Two members of one output
        (the twin Q functions) only."""
        if self.size != 2 or self.out_dim != 1:
            raise ValueError(
                f"min_over_members needs 2 members of 1 output, this ensemble has {self.size} of {self.out_dim}"
            )
        params = [t.detach() for pair in zip(self.weights, self.biases) for t in pair]
        return _MinMemberInputGrad.apply(x, *params)

    def member_state(self, k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Member ``k``'s layers as (weight ``[in, out]``, bias ``[out]``)."""
        return [(w[k], b[k, 0]) for w, b in zip(self.weights, self.biases)]


class _MinMemberInputGrad(torch.autograd.Function):
    """Forward: the two members on ``x`` ``[M, in]``, kept ReLU outputs, the row-wise minimum. Backward:
    the input gradient through the minimum member of each row (rows gathered per member)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        weights, biases = params[0::2], params[1::2]
        n = len(weights)
        h = x.unsqueeze(0).expand(2, -1, -1)
        activations = []
        for i, (w, b) in enumerate(zip(weights, biases)):
            h = torch.baddbmm(b, h, w)
            if i < n - 1:
                h = h.relu_()
                activations.append(h)
        second = h[1] < h[0]  # [M, out]: member 1 is the minimum
        ctx.save_for_backward(second, *activations, *weights)
        return torch.where(second, h[1], h[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        second, *rest = ctx.saved_tensors
        n = (len(rest) + 1) // 2
        activations, weights = rest[: n - 1], rest[n - 1 :]
        picks = second.squeeze(-1)
        dx = grad.new_empty(grad.shape[0], weights[0].shape[1])
        for k, rows in enumerate((torch.nonzero(~picks).squeeze(-1), torch.nonzero(picks).squeeze(-1))):
            d = grad.index_select(0, rows).mm(weights[-1][k].t())
            for i in range(n - 2, -1, -1):
                d = d.masked_fill_(activations[i][k].index_select(0, rows) <= 0, 0.0).mm(weights[i][k].t())
            dx.index_copy_(0, rows, d)
        return (dx, *([None] * (2 * n)))


def tanh_log_det_jacobian(pre_tanh: torch.Tensor) -> torch.Tensor:
    """log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), exact and stable."""
    return 2.0 * (_LOG2 - pre_tanh - F.softplus(-2.0 * pre_tanh))


class TanhGaussianPolicy(nn.Module):
    """MLP(obs + z) -> mean and log-std heads (log-std clamped to [-20, 2]); action = tanh(u),
    u ~ N(mean, std); log-prob with the tanh correction. The heads' init: +-3e-3 (``init="fan_in"``) or
    +-1e-3 (``"reference"``, rlkit's ``init_w`` for both heads)."""

    def __init__(self, in_dim: int, hidden: list[int] | tuple[int, ...], action_dim: int, init: str = "fan_in") -> None:
        super().__init__()
        last_init = POLICY_LAST_LAYER_INIT_REFERENCE if check_init(init) == "reference" else LAST_LAYER_INIT
        self.net = MLP(in_dim, hidden, 2 * action_dim, init, last_init)  # the two heads share one output layer
        self.action_dim = action_dim

    def forward(
        self, x: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (action, mean, log_std, log_prob ``[M, 1]``, pre_tanh) with a reparameterized sample."""
        out = self.net(x)
        mean, log_std = out[:, : self.action_dim], out[:, self.action_dim :]
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        if deterministic:
            pre_tanh = mean
            noise = torch.zeros_like(mean)
        else:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            pre_tanh = mean + log_std.exp() * noise
        action = torch.tanh(pre_tanh)
        # log N(u; mean, std) with (u - mean) / std = noise, minus log|d tanh / du|
        log_prob = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi) - tanh_log_det_jacobian(pre_tanh)
        return action, mean, log_std, log_prob.sum(dim=-1, keepdim=True), pre_tanh
