"""Scale-out on Ray: rollout workers for one training run and whole experiments in parallel.

- ``collector.RayCollector``: an iteration's collection jobs on N Ray actors (``pearl-robot train --workers N``);
- ``sweep``: seeds x a grid of config values as Ray tasks, one run folder each, one summary
  (``pearl-robot sweep``).

Ray is optional (``pip install -e '.[distributed]'``) and imported lazily: nothing here imports it at module
level, and ``pearl-robot train`` without ``--workers`` never does.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pearl_robot.errors import PearlRobotError

if TYPE_CHECKING:
    from pearl_robot.pearl.collector import Collector
    from pearl_robot.pearl.trainer import MetaTrainer

INSTALL_HINT = "install the distributed extra: pip install -e '.[distributed]'"


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def require_ray() -> Any:
    """The ``ray`` module, or PearlRobotError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise PearlRobotError(f"Ray is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Make sure this process is connected to Ray: an existing connection is used as is; else ``address``
    (``auto``: the cluster this node joined with ``ray start``; or ``HOST:PORT`` of the head) or, with no
    address, a new local instance with ``num_cpus`` logical CPUs (default: this machine's cores). Returns
    True when this call connected (the caller then disconnects with ``ray.shutdown()``)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise PearlRobotError(f"cannot reach the Ray cluster at '{address}': {exc}") from None
    return True


def make_collector(
    trainer: MetaTrainer, workers: int, address: str | None = None, warn: Callable[[str], None] | None = None
) -> Collector:
    """The trainer's in-process collector for ``workers == 0``, else a RayCollector with ``workers`` actors.
    Without Ray installed, ``--workers N`` falls back to in-process collection (same results; ``warn`` says
    so) unless an address was given."""
    if workers < 0:
        raise PearlRobotError(f"--workers must be >= 0, got {workers}")
    if workers == 0:
        return trainer.collector
    if not ray_available():
        if address:
            raise PearlRobotError(f"--ray-address needs Ray, which is not installed: {INSTALL_HINT}")
        if warn is not None:
            warn(f"Ray is not installed, collecting in process instead of on {workers} workers ({INSTALL_HINT})")
        return trainer.collector
    from pearl_robot.distributed.collector import RayCollector

    return RayCollector(trainer.cfg, trainer.family, workers, address=address)
