import os

import pytest
import torch

os.environ.setdefault("CI", "true")
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


@pytest.fixture(params=["mock", "sim"])
def backend(request) -> str:
    """The in-process backends every safety and lifecycle rule is checked on."""
    return request.param
