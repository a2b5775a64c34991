"""Seeds and checkpoints: one seed gives identical progress files; 2 iterations + resume 1 equals 3."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pearl_helpers import tiny_config

from pearl_robot.cli.main import main
from pearl_robot.errors import ConfigError
from pearl_robot.pearl.run_log import read_progress
from pearl_robot.pearl.trainer import CHECKPOINT, POLICY_EXPORT, MetaTrainer


def _train(run_dir: Path, **overrides) -> str:
    MetaTrainer(tiny_config(**overrides), run_dir=run_dir).train()
    return (run_dir / "progress.csv").read_text()


def test_one_seed_gives_identical_progress(tmp_path):
    a = _train(tmp_path / "a")
    b = _train(tmp_path / "b")
    assert a == b
    rows = read_progress(tmp_path / "a" / "progress.csv")
    assert len(rows) == 2 and rows[-1]["test_return_last"] != "" and rows[-1]["q_loss"] != ""
    assert _train(tmp_path / "c", seed=4) != a


@pytest.mark.parametrize("learned_temperature", [False, True])
def test_two_iterations_plus_resume_one_equals_three(tmp_path, learned_temperature):
    straight = _train(tmp_path / "straight", num_iterations=3, learned_temperature=learned_temperature)
    _train(tmp_path / "resumed", num_iterations=2, learned_temperature=learned_temperature)
    assert main(["train", "--resume", str(tmp_path / "resumed"), "--set", "num_iterations=3", "--quiet"]) == 0
    assert (tmp_path / "resumed" / "progress.csv").read_text() == straight
    # the final weights agree too
    a = torch.load(tmp_path / "straight" / CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)
    for key in a["agent"]:
        assert torch.equal(a["agent"][key], b["agent"][key]), key
    assert a["collect_rng"] == b["collect_rng"] and a["train_rng"] == b["train_rng"]
    alphas = {float(row["alpha"]) for row in read_progress(tmp_path / "straight" / "progress.csv")}
    assert (alphas == {1.0}) is not learned_temperature  # learned: it moved from 1


def test_resume_from_an_older_checkpoint_drops_later_rows(tmp_path):
    straight = _train(tmp_path / "straight", num_iterations=3)
    run = tmp_path / "run"
    MetaTrainer(tiny_config(num_iterations=3, checkpoint_every=2), run_dir=run).train()
    # rewind: keep the iteration-2 checkpoint as if the run had died during iteration 3
    trainer = MetaTrainer.from_checkpoint(run)
    assert trainer.iteration == 3
    cfg = tiny_config(num_iterations=2, checkpoint_every=2)
    MetaTrainer(cfg, run_dir=tmp_path / "two").train()
    (run / CHECKPOINT).write_bytes((tmp_path / "two" / CHECKPOINT).read_bytes())
    resumed = MetaTrainer.from_checkpoint(run, overrides=["num_iterations=3"])
    assert resumed.iteration == 2
    resumed.train()
    assert (run / "progress.csv").read_text() == straight


def test_checkpoint_is_atomic_and_plain(tmp_path):
    run = tmp_path / "run"
    MetaTrainer(tiny_config(num_iterations=1), run_dir=run).train()
    assert (run / CHECKPOINT).exists() and (run / POLICY_EXPORT).exists()
    assert not list(run.glob("*.tmp"))
    state = torch.load(run / CHECKPOINT, weights_only=True)  # no code unpickled
    assert state["iteration"] == 1 and state["rl_buffer"]["data"].shape[0] == 6
    assert (run / "config.yaml").exists()


def test_resume_refuses_to_change_what_was_computed(tmp_path):
    run = tmp_path / "run"
    MetaTrainer(tiny_config(num_iterations=1), run_dir=run).train()
    with pytest.raises(ConfigError, match="cannot change on resume"):
        MetaTrainer.from_checkpoint(run, overrides=["lr=0.1"])
    assert main(["train", "--resume", str(run), "--set", "meta_batch=5", "--quiet"]) == 1
