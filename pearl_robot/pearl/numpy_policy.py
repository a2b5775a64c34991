"""The PEARL policy and context encoder as numpy arrays: acting and posterior inference without torch.

Used for acting during collection and evaluation (one observation at a time, where torch's per-call
overhead dominates), and to run a trained policy on a robot computer: ``NumpyAgent.save(path)`` writes
a plain ``.npz`` (no pickle) and ``NumpyAgent.load(path)`` reads it back.

Acting caches the latent's contribution to the first layer (``set_z``), so a step costs the observation
part of the first layer plus the remaining layers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pearl_robot.io import atomic_path

FORMAT_VERSION = 1
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the policy's log-std clamp, here so that acting never imports torch
VAR_FLOOR = 1e-7


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


class NumpyMLP:
    """Linear-ReLU stack from (weight ``[in, out]``, bias ``[out]``) pairs; the last layer is linear."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.layers = [(np.ascontiguousarray(w, np.float32), np.ascontiguousarray(b, np.float32)) for w, b in layers]

    @classmethod
    def from_torch(cls, mlp) -> NumpyMLP:
        mods = [*mlp.hidden, mlp.last]
        return cls([(m.weight.detach().cpu().numpy().T, m.bias.detach().cpu().numpy()) for m in mods])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])  # 2-D: numpy's stacked (3-D) matmul does not use BLAS
        n = len(self.layers)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < n - 1:
                np.maximum(x, 0.0, out=x)
        return x.reshape(*lead, x.shape[-1])

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {}
        for i, (w, b) in enumerate(self.layers):
            out[f"{prefix}.{i}.weight"] = w
            out[f"{prefix}.{i}.bias"] = b
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> NumpyMLP:
        layers = []
        i = 0
        while f"{prefix}.{i}.weight" in arrays:
            layers.append((arrays[f"{prefix}.{i}.weight"], arrays[f"{prefix}.{i}.bias"]))
            i += 1
        if not layers:
            raise ValueError(f"no layers named {prefix}.* in the arrays")
        return cls(layers)


class NumpyGRU:
    """torch.nn.GRU (one layer, batch_first) forward in numpy; returns the last hidden state."""

    def __init__(self, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> None:
        self.w_ih, self.w_hh = np.asarray(w_ih, np.float32), np.asarray(w_hh, np.float32)
        self.b_ih, self.b_hh = np.asarray(b_ih, np.float32), np.asarray(b_hh, np.float32)
        self.hidden = self.w_hh.shape[1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x`` ``[T, N, in]`` -> last hidden ``[T, hidden]``."""
        h = np.zeros((x.shape[0], self.hidden), np.float32)
        gi_all = (x.reshape(-1, x.shape[-1]) @ self.w_ih.T + self.b_ih).reshape(x.shape[0], x.shape[1], -1)
        k = self.hidden
        for n in range(x.shape[1]):
            gi = gi_all[:, n]
            gh = h @ self.w_hh.T + self.b_hh
            r = 1.0 / (1.0 + np.exp(-(gi[:, :k] + gh[:, :k])))
            u = 1.0 / (1.0 + np.exp(-(gi[:, k : 2 * k] + gh[:, k : 2 * k])))
            c = np.tanh(gi[:, 2 * k :] + r * gh[:, 2 * k :])
            h = (1.0 - u) * c + u * h
        return h

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.w_ih": self.w_ih, f"{prefix}.w_hh": self.w_hh, f"{prefix}.b_ih": self.b_ih,
                f"{prefix}.b_hh": self.b_hh}  # fmt: skip


class NumpyAgent:
    """Policy (obs + z -> tanh-Gaussian action) and encoder (context -> posterior) in numpy."""

    def __init__(
        self,
        policy: NumpyMLP,
        encoder: NumpyMLP,
        meta: dict,
        encoder_gru: NumpyGRU | None = None,
        encoder_head: NumpyMLP | None = None,
    ) -> None:
        self.policy, self.encoder, self.meta = policy, encoder, dict(meta)
        self.encoder_gru, self.encoder_head = encoder_gru, encoder_head
        self.obs_dim = int(meta["obs_dim"])
        self.action_dim = int(meta["action_dim"])
        self.latent_size = int(meta["latent_size"])
        self.probabilistic = bool(meta["probabilistic"])
        self.recurrent = bool(meta["recurrent"])
        self.use_next_obs_in_context = bool(meta["use_next_obs_in_context"])
        self.use_context = bool(meta.get("use_context", True))
        w1, b1 = self.policy.layers[0]
        self._w1_obs = np.ascontiguousarray(w1[: self.obs_dim])
        self._w1_z = np.ascontiguousarray(w1[self.obs_dim :])
        self._b1 = b1
        self._bias_z = b1.copy()
        self.set_z(np.zeros(self.latent_size, np.float32))

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_agent(cls, agent) -> NumpyAgent:
        dims = agent.dims
        meta = {
            "format_version": FORMAT_VERSION,
            "obs_dim": dims.obs_dim,
            "action_dim": dims.action_dim,
            "latent_size": dims.latent_size,
            "probabilistic": dims.probabilistic,
            "recurrent": dims.recurrent,
            "use_next_obs_in_context": dims.use_next_obs_in_context,
            "use_context": dims.use_context,
        }
        policy = NumpyMLP.from_torch(agent.policy.net)
        enc = agent.encoder
        if dims.recurrent:
            gru = enc.gru
            g = NumpyGRU(*(p.detach().cpu().numpy() for p in (gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0,
                                                                  gru.bias_hh_l0)))  # fmt: skip
            head = NumpyMLP([(enc.head.weight.detach().cpu().numpy().T, enc.head.bias.detach().cpu().numpy())])
            return cls(policy, NumpyMLP.from_torch(enc.embed), meta, g, head)
        return cls(policy, NumpyMLP.from_torch(enc.net), meta)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays = {**self.policy.arrays("policy"), **self.encoder.arrays("encoder")}
        if self.encoder_gru is not None:
            arrays.update(self.encoder_gru.arrays("encoder_gru"))
            arrays.update(self.encoder_head.arrays("encoder_head"))
        arrays["meta_json"] = np.frombuffer(json.dumps(self.meta).encode(), dtype=np.uint8)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> NumpyAgent:
        with np.load(Path(path), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(arrays.pop("meta_json").tobytes().decode())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported numpy policy format {meta.get('format_version')}")
        policy = NumpyMLP.from_arrays(arrays, "policy")
        encoder = NumpyMLP.from_arrays(arrays, "encoder")
        gru = head = None
        if meta["recurrent"]:
            gru = NumpyGRU(*(arrays[f"encoder_gru.{k}"] for k in ("w_ih", "w_hh", "b_ih", "b_hh")))
            head = NumpyMLP.from_arrays(arrays, "encoder_head")
        return cls(policy, encoder, meta, gru, head)

    # ---- z -----------------------------------------------------------------------------------------
    def prior(self) -> tuple[np.ndarray, np.ndarray]:
        mean = np.zeros(self.latent_size, np.float32)
        return mean, (np.ones_like(mean) if self.probabilistic and self.use_context else np.zeros_like(mean))

    def infer_posterior(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``context`` ``[N, context_dim]`` (or ``[T, N, context_dim]``) -> (mean, var)."""
        context = np.asarray(context, np.float32)
        single = context.ndim == 2
        if single:
            context = context[None]
        k = self.latent_size
        if not self.use_context:
            zeros = np.zeros(context.shape[:-2] + (k,), np.float32)
            return (zeros[0], zeros[0]) if single else (zeros, zeros)
        if self.recurrent:
            h = np.maximum(self.encoder(context), 0.0)
            params = self.encoder_head(self.encoder_gru(h))
            mean, var = params[..., :k], np.maximum(_softplus(params[..., k:]), VAR_FLOOR)
        elif self.probabilistic:
            params = self.encoder(context)
            var_n = np.maximum(_softplus(params[..., k:]), VAR_FLOOR)
            precision = 1.0 / var_n
            var = 1.0 / precision.sum(axis=-2)
            mean = var * (params[..., :k] * precision).sum(axis=-2)
        else:
            mean = self.encoder(context).mean(axis=-2)
            var = np.zeros_like(mean)
        mean, var = mean.astype(np.float32), var.astype(np.float32)
        return (mean[0], var[0]) if single else (mean, var)

    def sample_z(self, mean: np.ndarray, var: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.probabilistic:
            return np.asarray(mean, np.float32)
        return (mean + np.sqrt(var) * rng.standard_normal(np.shape(mean))).astype(np.float32)

    def z_bias(self, z: np.ndarray) -> np.ndarray:
        """z's contribution to the policy's first layer plus its bias: ``[..., hidden]``."""
        return self._b1 + np.asarray(z, np.float32) @ self._w1_z

    def set_z(self, z: np.ndarray) -> None:
        """Fix z for the following ``act`` calls (caches z's part of the first layer)."""
        self.z = np.asarray(z, np.float32).reshape(self.latent_size)
        self._bias_z = self.z_bias(self.z)

    # ---- acting ---------------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, rng: np.random.Generator | None = None, deterministic: bool = False) -> np.ndarray:
        """One action (``[action_dim]``) for ``obs`` under the current z: tanh(mean) if deterministic, else
        tanh of a Gaussian sample (``rng`` required)."""
        return self.act_with_bias(obs, self._bias_z, rng, deterministic)

    def act_with_bias(
        self, obs: np.ndarray, bias: np.ndarray, rng: np.random.Generator | None = None, deterministic: bool = False
    ) -> np.ndarray:
        """Actions for ``obs`` (``[obs_dim]`` or ``[M, obs_dim]``) given ``z_bias(z)`` (one row per obs row)."""
        x = np.asarray(obs, np.float32) @ self._w1_obs + bias
        np.maximum(x, 0.0, out=x)
        layers = self.policy.layers
        last = len(layers) - 1
        for i in range(1, last):
            w, b = layers[i]
            x = x @ w + b
            np.maximum(x, 0.0, out=x)
        w, b = layers[last]
        out = x @ w + b
        a = self.action_dim
        mean = out[..., :a]
        if deterministic:
            return np.tanh(mean)
        log_std = np.clip(out[..., a:], LOG_STD_MIN, LOG_STD_MAX)
        return np.tanh(mean + np.exp(log_std) * rng.standard_normal(mean.shape))

    def act_batch(
        self, obs: np.ndarray, z: np.ndarray, rng: np.random.Generator | None = None, deterministic: bool = False
    ) -> np.ndarray:
        """Actions for rows of ``obs`` with per-row ``z`` (``[M, latent]``)."""
        return self.act_with_bias(obs, self.z_bias(z), rng, deterministic)
