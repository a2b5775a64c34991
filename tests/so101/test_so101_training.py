"""A few iterations of ``pearl-robot train --config so101-fleet-small``; the demo's choice of config, its
reuse of a trained run and the whole demo for ``--hardware so101``."""

import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from toy_training import TINY as SHARED_TINY

from pearl_robot.cli.demo import DEMO_CONFIG, demo_config, reusable_run
from pearl_robot.cli.main import main

# the shared toy budget, with two iterations, an evaluation and a checkpoint each (later items win)
TINY = [
    *SHARED_TINY,
    "num_iterations=2",
    "num_initial_steps=40",
    "num_steps_per_eval=20",
    "eval_every=1",
    "checkpoint_every=1",
    "family_params.num_test_tasks=1",
]


@pytest.fixture(scope="module")
def so101_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("so101") / "train"
    argv = ["train", "--config", "so101-fleet-small", "--out", str(run), "--quiet", "--threads", "1"]
    assert main(argv + [arg for item in TINY for arg in ("--set", item)]) == 0
    return run


def test_a_tiny_training_run_completes_on_the_so101(so101_run):
    config = yaml.safe_load((so101_run / "config.yaml").read_text())
    assert config["family"] == "arm-fleet" and config["family_params"]["hardware"] == "so101"
    rows = (so101_run / "progress.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2  # a header and one row per iteration
    policy = np.load(so101_run / "policy.npz")
    assert all(np.all(np.isfinite(policy[k])) for k in policy.files)
    assert (so101_run / "checkpoint.pt").stat().st_size > 0


def test_the_demo_picks_the_config_named_after_the_arm():
    assert demo_config("so101") == "so101-fleet-small"
    assert demo_config("openmanipulator_x") == DEMO_CONFIG == "arm-fleet-small"  # no config of its own


def test_the_demo_reuses_a_run_only_on_the_arm_it_was_trained_on(so101_run, capsys):
    assert reusable_run(so101_run, "so101")
    assert not reusable_run(so101_run, "openmanipulator_x")
    assert "trained on so101, not openmanipulator_x" in capsys.readouterr().out


def test_the_demo_runs_sim_to_real_on_the_so101(tmp_path):
    """``pearl-robot demo --hardware so101`` end to end at a toy budget: so101-fleet-small in simulation, a
    virtual Feetech bus of six STS3215s on a pseudo-terminal, adaptation through ``serial:`` (FeetechRobot)."""
    out = tmp_path / "demo"
    argv = [sys.executable, "-m", "pearl_robot.cli.main", "demo", "--hardware", "so101", "--out", str(out)]
    argv += ["--episodes", "2", "--scripted-episodes", "0"]
    for item in TINY:
        argv += ["--set", item]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "meta-training PEARL on so101-fleet-small (so101)" in done.stdout
    assert "virtual arm on /dev/" in done.stdout and "(so101): 2 episodes" in done.stdout
    assert re.search(r"^\s+1\s+posterior\s+-?\d", done.stdout, re.M)
    session = next(out.glob("session-*"))
    assert all((session / name).stat().st_size > 0 for name in ("session.jsonl", "session.hdf5"))
