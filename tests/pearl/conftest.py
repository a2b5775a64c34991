"""PEARL tests: one torch thread; ``tiny_cfg`` is pearl_helpers.tiny_config()."""

from __future__ import annotations

import pytest
import torch
from pearl_helpers import tiny_config

from pearl_robot.pearl.config import PEARLConfig

torch.set_num_threads(1)


@pytest.fixture
def tiny_cfg() -> PEARLConfig:
    return tiny_config()
