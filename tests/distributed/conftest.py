"""Distributed tests: one torch thread; ``ray_local`` is one local Ray instance (2 CPUs, no dashboard) per
test module, shut down after it (Ray takes seconds to start, so a module shares it)."""

from __future__ import annotations

import logging
import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=256 * 1024**2,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    yield ray
    ray.shutdown()
