import subprocess
import sys

import pytest
from toy_training import TINY


@pytest.fixture(scope="session")
def tiny_arm_run(tmp_path_factory):
    """A (barely) trained arm-dynamics run: enough for the adaptation machinery, not for learning."""
    run = tmp_path_factory.mktemp("runs") / "arm"
    args = [sys.executable, "-m", "pearl_robot.cli.main", "train", "--config", "arm-dynamics-small", "--out", str(run)]
    for item in TINY:
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "policy.npz").exists()
    return run
