"""`pearl-robot bench adapt` end to end at a toy budget: every method is trained and evaluated on the same
held-out task and goal sequences, and the JSON carries the contract's figures."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from adapt_helpers import TINY

from pearl_robot.bench import adapt as bench
from pearl_robot.errors import PearlRobotError
from pearl_robot.pearl.config import apply_overrides, load_config


def test_oracle_is_exactly_the_held_out_task():
    cfg = load_config("arm-dynamics-small")
    family_cfg = bench.oracle_config(cfg, {"gain_scale": 0.5, "payload_mass_kg": 0.2, "latency_s": 0.05}, 2.0)
    assert not family_cfg.use_context and family_cfg.num_iterations == 2 * cfg.num_iterations
    family = bench.family_for(family_cfg)
    train, test = family.split(0)
    assert {t.params["gain_scale"] for t in train + test} == {0.5}
    assert {t.params["latency_s"] for t in train + test} == {0.05}


def test_bench_adapt_runs_every_method(tmp_path):
    args = argparse.Namespace(
        config="arm-dynamics-small", set=TINY, checkpoint=None, out=tmp_path, task=0, episodes=2, repeats=1,
        prior_episodes=1, oracle_iterations=1.0,
    )  # fmt: skip
    result = bench.run(args)
    assert set(result["return_per_episode"]) == {
        "pearl_posterior_sampling", "pearl_prior_z", "multitask_sac", "oracle", "random"
    }  # fmt: skip
    assert all(len(v) == 2 for v in result["return_per_episode"].values())
    assert len(result["fraction_of_oracle"]) == 2
    assert set(result["targets"]) == {
        "fraction_of_oracle_by_episode_3>=0.9", "pearl_above_prior_z", "pearl_above_multitask_sac"
    }  # fmt: skip
    # the first episode acts on the prior in both PEARL variants: same z schedule, same goal, same return
    first = result["return_per_episode"]
    assert first["pearl_posterior_sampling"][0] == first["pearl_prior_z"][0]
    assert json.loads(Path(tmp_path / "bench_adapt.json").read_text()) == result
    json.dumps(result, allow_nan=False)  # strict JSON: no NaN or infinity anywhere
    assert apply_overrides(load_config("arm-dynamics-small"), TINY).num_iterations == 1


def test_clearly_above_is_a_paired_margin_over_the_later_episodes():
    other = np.array([[-5.0, -4.0, -4.0], [-6.0, -5.0, -5.0], [-4.0, -3.0, -3.0]])
    better = other + np.array([0.0, 1.0, 1.1])  # same first (prior) episode, then consistently better
    margin = bench.paired_margin(better, other, prior_episodes=1)
    assert margin["mean"] == 1.05 and margin["clearly_above"]
    noisy = other + np.array([[0.0, 3.0, 3.0], [0.0, -2.5, -2.5], [0.0, 0.0, 0.0]])  # better on average, not clearly
    assert bench.paired_margin(noisy, other, prior_episodes=1)["mean"] > 0
    assert not bench.paired_margin(noisy, other, prior_episodes=1)["clearly_above"]
    assert not bench.paired_margin(other, other, prior_episodes=1)["clearly_above"]
    single = bench.paired_margin(better[:1], other[:1], prior_episodes=1)  # one goal sequence: no spread
    assert single == {"mean": 1.05, "stderr": None, "clearly_above": False}


def test_an_interrupted_training_is_resumed_not_evaluated_half_trained(tmp_path):
    from pearl_robot.pearl.trainer import MetaTrainer, load_checkpoint

    cfg = apply_overrides(load_config("arm-dynamics-small"), TINY + ["num_iterations=2"])
    trainer = MetaTrainer(cfg, run_dir=tmp_path / "run")
    trainer.run_iteration()
    trainer.save_checkpoint()  # the benchmark was stopped here, after one of two iterations
    trainer.close()
    bench.train(cfg, tmp_path / "run")
    assert load_checkpoint(tmp_path / "run")[1]["iteration"] == 2
    with pytest.raises(PearlRobotError, match="another configuration"):
        bench.train(apply_overrides(cfg, ["lr=0.001"]), tmp_path / "run")
