"""PEARL (Rakelly et al. 2019): probabilistic context encoder, SAC learner, meta-training and evaluation.

Parts, each in its own module: ``config`` (PEARLConfig), ``networks`` (MLPs, the twin-Q ensemble, the
tanh-Gaussian policy), ``encoder`` (ContextEncoder, product of Gaussians, KL), ``agent`` (PEARLAgent),
``sac`` (the batched gradient step), ``buffers`` (RL and encoder replay buffers), ``numpy_policy``
(numpy acting and export), ``sampler`` (rollouts), ``evaluator`` (the paper's protocol) and ``trainer``
(MetaTrainer). See docs/pearl.md for the deliberate differences from the reference implementation.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# the parts are imported on first use: `pearl_robot.pearl.config` (or the numpy policy) must not load torch
_EXPORTS = {
    "AgentDims": "agent",
    "PEARLAgent": "agent",
    "PEARLConfig": "config",
    "load_config": "config",
    "ContextEncoder": "encoder",
    "kl_to_standard_normal": "encoder",
    "product_of_gaussians": "encoder",
    "EvalResult": "evaluator",
    "Evaluator": "evaluator",
    "NumpyAgent": "numpy_policy",
    "SoftActorCritic": "sac",
    "TrainBatch": "sac",
    "MetaTrainer": "trainer",
}

if TYPE_CHECKING:
    from pearl_robot.pearl.agent import AgentDims, PEARLAgent
    from pearl_robot.pearl.config import PEARLConfig, load_config
    from pearl_robot.pearl.encoder import ContextEncoder, kl_to_standard_normal, product_of_gaussians
    from pearl_robot.pearl.evaluator import EvalResult, Evaluator
    from pearl_robot.pearl.numpy_policy import NumpyAgent
    from pearl_robot.pearl.sac import SoftActorCritic, TrainBatch
    from pearl_robot.pearl.trainer import MetaTrainer


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AgentDims",
    "ContextEncoder",
    "EvalResult",
    "Evaluator",
    "MetaTrainer",
    "NumpyAgent",
    "PEARLAgent",
    "PEARLConfig",
    "SoftActorCritic",
    "TrainBatch",
    "kl_to_standard_normal",
    "load_config",
    "product_of_gaussians",
]
