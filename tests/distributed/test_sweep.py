"""Sweeps without Ray: the grid, run names and configs, the summary statistics, and ``--local`` runs that
continue (exactly) what an earlier sweep into the same folder left unfinished."""

from __future__ import annotations

import csv

import pytest
from distributed_helpers import tiny_config, write_config

from pearl_robot.cli.main import main
from pearl_robot.distributed.sweep import RunResult, expand, parse_grid, split_values, summarize
from pearl_robot.errors import ConfigError
from pearl_robot.pearl.trainer import MetaTrainer


def test_grid_values_split_on_top_level_commas_only():
    assert split_values("0.001,0.0003") == ["0.001", "0.0003"]
    assert split_values("[1, 2],{a: 1, b: 2},'x,y'") == ["[1, 2]", "{a: 1, b: 2}", "'x,y'"]
    assert parse_grid(["lr=0.1,0.2", "family_params.goal_radius=0.2"]) == [
        ("lr", ["0.1", "0.2"]),
        ("family_params.goal_radius", ["0.2"]),
    ]
    for bad in (["lr"], ["lr=0.1,,0.2"], ["lr=1", "lr=2"], ["seed=1,2"]):
        with pytest.raises(ConfigError):
            parse_grid(bad)


def test_expand_names_each_grid_point_and_seed_and_resolves_its_config(tmp_path):
    config = write_config(tmp_path / "tiny.yaml", tiny_config())
    specs = expand(str(config), [0, 1], parse_grid(["lr=0.001,0.01", "meta_batch=2"]), ["num_iterations=1"])
    assert [s.name for s in specs] == [
        "tiny_lr-0.001_meta_batch-2-seed0",
        "tiny_lr-0.001_meta_batch-2-seed1",
        "tiny_lr-0.01_meta_batch-2-seed0",
        "tiny_lr-0.01_meta_batch-2-seed1",
    ]
    assert [(s.config["lr"], s.config["seed"], s.config["num_iterations"]) for s in specs] == [
        (0.001, 0, 1), (0.001, 1, 1), (0.01, 0, 1), (0.01, 1, 1)
    ]  # fmt: skip
    assert len({s.group for s in specs}) == 2
    # a grid over whole configs (e.g. task families)
    other = write_config(tmp_path / "sparse.yaml", tiny_config(family="sparse-point-robot", sparse_rewards=True))
    specs = expand(str(config), [0], parse_grid([f"config={config},{other}"]))
    assert [(s.group, s.config["family"]) for s in specs] == [("tiny", "point-robot"), ("sparse", "sparse-point-robot")]
    with pytest.raises(ConfigError, match="meta_batch"):
        expand(str(config), [0], parse_grid(["meta_batch=0,2"]))  # refused before anything runs


def test_summary_statistics_across_seeds_leave_failed_runs_out():
    results = [
        RunResult("a-seed0", "a", 0, "", env_steps=100, final_test_return=-10.0, wall_s=2.0),
        RunResult("a-seed1", "a", 1, "", env_steps=100, final_test_return=-14.0, wall_s=4.0),
        RunResult("a-seed2", "a", 2, "", error="RuntimeError: boom"),
        RunResult("b-seed0", "b", 0, "", env_steps=50, final_test_return=-3.0, wall_s=1.0),
    ]
    a, b = summarize(results)
    assert (a["group"], a["runs"], a["failed"], a["env_steps"]) == ("a", 2, 1, 100)
    assert a["test_return_mean"] == -12.0 and a["test_return_std"] == pytest.approx(2.8284271)
    assert (a["test_return_min"], a["test_return_max"], a["wall_s_mean"]) == (-14.0, -10.0, 3.0)
    assert b["runs"] == 1 and b["test_return_std"] == 0.0


def test_local_sweep_writes_runs_and_summary_and_continues_unfinished_runs(tmp_path, capsys):
    config = write_config(tmp_path / "tiny.yaml", tiny_config())
    out = tmp_path / "sweep"
    args = ["sweep", str(config), "--seeds", "2", "--out", str(out), "--local", "--set", "num_iterations=1"]
    assert main(args) == 0
    first = (out / "tiny-seed0" / "progress.csv").read_text()
    assert main([*args[:-1], "num_iterations=2"]) == 0  # the same experiment, run longer: continued
    printed = capsys.readouterr().out
    assert (out / "tiny-seed0" / "progress.csv").read_text().startswith(first)
    MetaTrainer(tiny_config(seed=1, num_iterations=2), run_dir=tmp_path / "straight").train()
    assert (out / "tiny-seed1" / "progress.csv").read_text() == (tmp_path / "straight" / "progress.csv").read_text()
    with open(out / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert [r["name"] for r in runs] == ["tiny-seed0", "tiny-seed1"] and all(r["iterations"] == "2" for r in runs)
    assert (out / "summary.csv").exists() and (out / "summary.png").exists() and "in process" in printed

    # another experiment into the same folder is refused before anything runs or is overwritten
    summary = (out / "summary.csv").read_text()
    assert main(["sweep", str(config), "--seeds", "1", "--out", str(out), "--local", "--set", "lr=0.01"]) == 1
    err = capsys.readouterr().err
    assert "other experiments" in err and "differs in lr" in err
    assert (out / "summary.csv").read_text() == summary
