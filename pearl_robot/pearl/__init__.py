"""PEARL (Rakelly et al. 2019): probabilistic context encoder, SAC learner, meta-training and evaluation.

Parts, each in its own module: ``config`` (PEARLConfig), ``networks`` (MLPs, the twin-Q ensemble, the
tanh-Gaussian policy), ``encoder`` (ContextEncoder, product of Gaussians, KL), ``agent`` (PEARLAgent),
``sac`` (the batched gradient step), ``buffers`` (RL and encoder replay buffers), ``numpy_policy``
(numpy acting and export), ``sampler`` (rollouts), ``evaluator`` (the paper's protocol) and ``trainer``
(MetaTrainer). See docs/pearl.md for the deliberate differences from the reference implementation.
"""

from pearl_robot.pearl.agent import AgentDims, PEARLAgent
from pearl_robot.pearl.config import PEARLConfig, load_config
from pearl_robot.pearl.encoder import ContextEncoder, kl_to_standard_normal, product_of_gaussians
from pearl_robot.pearl.evaluator import EvalResult, Evaluator
from pearl_robot.pearl.numpy_policy import NumpyAgent
from pearl_robot.pearl.sac import SoftActorCritic, TrainBatch
from pearl_robot.pearl.trainer import MetaTrainer

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
