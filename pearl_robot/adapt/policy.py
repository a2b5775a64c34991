"""A meta-trained run as the session's policy: exported numpy weights (``RUN/policy.npz``) and the run's
config, so the control loop never touches torch. Where the run has a ``checkpoint.json`` (the trainer's
pair manifest), policy.npz and checkpoint.pt must be the pair it names."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pearl_robot.errors import PearlRobotError
from pearl_robot.io import manifest_mismatches
from pearl_robot.pearl.config import PEARLConfig, load_config
from pearl_robot.pearl.numpy_policy import NumpyAgent

PAIR_MANIFEST = "checkpoint.json"  # pearl_robot.pearl.trainer.PAIR_MANIFEST (imported here without torch)


class CheckpointMismatch(PearlRobotError):
    """The checkpoint was trained for another robot or observation layout."""


@dataclass
class PearlPolicy:
    """AdaptivePolicy over a NumpyAgent: deterministic actions, the paper's context rows."""

    agent: NumpyAgent
    sparse_rewards: bool = False

    @property
    def latent_size(self) -> int:
        return self.agent.latent_size

    def prior(self) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self.agent.prior()
        return mean.astype(np.float64), var.astype(np.float64)

    def act(self, obs: np.ndarray, z: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if not np.array_equal(self.agent.z, np.asarray(z, np.float32)):
            self.agent.set_z(z)
        rng = None if deterministic else np.random.default_rng()
        return self.agent.act(obs, rng=rng, deterministic=deterministic).astype(np.float64)

    def context_reward(self, reward: float, info: dict[str, Any]) -> float:
        return float(info.get("sparse_reward", reward)) if self.sparse_rewards else float(reward)

    def context_row(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray) -> np.ndarray:
        parts = [np.asarray(obs, np.float32), np.asarray(action, np.float32), np.array([reward], np.float32)]
        if self.agent.use_next_obs_in_context:
            parts.append(np.asarray(next_obs, np.float32))
        return np.concatenate(parts)

    def posterior(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self.agent.infer_posterior(context)
        return mean.astype(np.float64), var.astype(np.float64)


def load_run(run: str | os.PathLike[str]) -> tuple[PEARLConfig, PearlPolicy]:
    run = Path(run)
    config_path, weights = run / "config.yaml", run / "policy.npz"
    for path in (config_path, weights):
        if not path.exists():
            message = f"{run} is not a trained run: {path.name} is missing (train with `pearl-robot train`)"
            raise PearlRobotError(message)
    mismatched = manifest_mismatches(run / PAIR_MANIFEST)  # None: a run saved before the manifest existed
    if mismatched:
        raise PearlRobotError(
            f"{run}: {' and '.join(mismatched)} do not match {PAIR_MANIFEST} (a checkpoint save was cut short); "
            f"`pearl-robot train --resume {run}` writes the pair again"
        )
    cfg = load_config(config_path)
    try:
        agent = NumpyAgent.load(weights)
    except (ValueError, KeyError, OSError) as exc:
        raise PearlRobotError(f"{weights}: cannot load the policy weights ({exc})") from None
    return cfg, PearlPolicy(agent, cfg.sparse_rewards)


def check_matches(policy: PearlPolicy, observation_dim: int, action_dim: int, where: str) -> None:
    agent = policy.agent
    if agent.obs_dim != observation_dim or agent.action_dim != action_dim:
        raise CheckpointMismatch(
            f"the checkpoint's policy takes {agent.obs_dim} observations and gives {agent.action_dim} actions, "
            f"but {where} has {observation_dim} and {action_dim}: it was trained for another arm or task layout"
        )


def family_for(cfg: PEARLConfig, **overrides: Any):
    """The run's task family (as the trainer builds it), with ``overrides`` (e.g. another hardware file)."""
    from pearl_robot.tasks.registry import make_family

    params = {**cfg.family_params, **{k: v for k, v in overrides.items() if v is not None}}
    if cfg.max_path_length is not None:
        params.setdefault("max_path_length", cfg.max_path_length)
    return make_family(cfg.family, **params)
