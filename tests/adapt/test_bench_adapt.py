"""`pearl-robot bench adapt` end to end at a toy budget: every method trained and evaluated per seed on the
same held-out arms and goal sequences, the JSON's figures consistent with its own returns, a second
invocation reusing the runs; and the figure functions on hand-made arrays."""

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pearl_robot.bench import adapt as bench
from pearl_robot.bench import adapt_baselines as baselines
from pearl_robot.cli.main import build_parser
from pearl_robot.errors import PearlRobotError
from pearl_robot.pearl.config import apply_overrides, load_config

TOY = [
    "num_iterations=1", "num_train_steps_per_itr=5", "num_initial_steps=50", "num_tasks_sample=1",
    "num_steps_prior=50", "num_extra_rl_steps_posterior=50", "meta_batch=2", "batch_size=16",
    "embedding_batch_size=16", "net_size=16", "encoder_net_size=16", "num_steps_per_eval=50", "eval_every=100",
    "family_params.num_train_tasks=3", "family_params.num_test_tasks=2",
]  # fmt: skip
METHODS = {
    "pearl_posterior_sampling", "pearl_prior_z", "dr_sac", "rl_oracle", "scripted_best_single", "scripted_per_task",
    "random",
}  # fmt: skip


def _args(out, *extra):
    argv = ["bench", "adapt", "--json", "--config", "arm-fleet-small", "--set", *TOY, "--out", str(out)]
    return build_parser().parse_args(argv + list(extra))


def _recomputed(result):
    """The contract's figures from the raw returns in the JSON alone."""
    returns = [{m: np.array(v) for m, v in row["returns"].items()} for row in result["per_seed"]]
    gaps, gains, gaps_to_close, over_oracle = [], [], [], []
    for r in returns:
        per_arm = np.maximum(r["rl_oracle"].mean(axis=(1, 2)), r["scripted_per_task"].mean(axis=(1, 2)))
        oracle, dr = per_arm.mean(), r["dr_sac"].mean()
        gaps.append((r["pearl_posterior_sampling"].mean(axis=(0, 1)) - dr) / (oracle - dr))
        gains.append(r["pearl_posterior_sampling"].mean(axis=(0, 1)) - dr)
        gaps_to_close.append(oracle - dr)
        over_oracle.append(r["pearl_posterior_sampling"].mean(axis=1) - per_arm[:, None])
    diffs = np.concatenate(
        [
            (r["pearl_posterior_sampling"] - r["scripted_best_single"].mean(axis=2, keepdims=True)).reshape(
                -1, result["episodes"]
            )
            for r in returns
        ]
    )
    single, per_task, rnd = (np.concatenate([r[m].ravel() for r in returns]).mean() for m in (
        "scripted_best_single", "scripted_per_task", "random"))  # fmt: skip
    return {
        "gap": np.mean(gaps, axis=0),
        "gap_pooled": np.sum(gains, axis=0) / np.sum(gaps_to_close) if np.sum(gaps_to_close) > 0 else None,
        "over_oracle": np.concatenate(over_oracle).mean(axis=0),
        "margin": diffs.mean(axis=0),
        "margin_stderr": diffs.std(axis=0, ddof=1) / np.sqrt(len(diffs)),
        "value": (per_task - single) / (single - rnd),
        "returns": {m: np.mean([r[m].mean(axis=(0, 1)) for r in returns], axis=0) for m in returns[0]},
    }


def test_bench_adapt_end_to_end_and_reused(tmp_path):
    extra = ["--seeds", "2", "--tasks", "0", "--repeats", "2", "--episodes", "2", "--jobs", "2"]
    extra += ["--scripted-gains", "0.2", "1.0", "--scripted-blends", "0", "1"]
    args = _args(tmp_path, *extra)
    result = args.bench_module.run(args)

    json.dumps(result, allow_nan=False)  # strict JSON: no NaN or infinity anywhere
    assert json.loads((tmp_path / "bench_adapt.json").read_text()) == result
    assert (tmp_path / "bench_adapt.png").stat().st_size > 10_000
    assert result["family"] == "arm-fleet" and result["seeds"] == 2 and result["held_out_tasks"] == [0]
    assert result["episodes"] == 2 and result["repeats"] == 2 and isinstance(result["command"], list)
    assert set(result["methods"]) == METHODS and set(result["return_per_episode"]) == METHODS
    for key in ("return_per_episode", "return_stderr_per_episode"):
        assert all(len(v) == 2 for v in result[key].values())
    for key in ("gap_closed_per_episode", "gap_closed_stderr_per_episode", "margin_over_scripted_per_episode",
                "margin_over_scripted_stderr_per_episode", "clearly_above"):  # fmt: skip
        assert len(result[key]) == 2, key
    assert set(result["return_level"]) == METHODS - {"pearl_posterior_sampling"}
    assert set(result["targets"]) == {
        "pearl_above_best_single_scripted_by_episode_3", "gap_closed_by_episode_3>=0.9",
        "gap_closed_pooled_by_episode_3>=0.9", "adaptation_value>=0.25",
    }  # fmt: skip
    assert set(result["definitions"]) >= {"gap_closed_per_episode", "margin_over_scripted_per_episode",
                                          "adaptation_value", "best_oracle"}  # fmt: skip
    assert len(result["per_seed"]) == 2 and len(result["adaptation_value_per_seed"]) == 2
    assert set(result["runs"]) == {"seed-0", "seed-1"}
    assert set(result["runs"]["seed-1"]) == {"pearl", "dr_sac", "rl_oracle"}
    for row in result["per_seed"]:
        assert {m: np.shape(v) for m, v in row["returns"].items()} == {m: (1, 2, 2) for m in METHODS}
        chosen = row["scripted"]["best_single"]
        assert chosen["gain"] in (0.2, 1.0) and chosen["blend"] in (0, 1)
        assert [p["index"] for p in row["scripted"]["per_task"]] == [0]
    # every seed has its own split: different held-out arms
    assert (
        result["per_seed"][0]["held_out_tasks"][0]["dynamics"] != result["per_seed"][1]["held_out_tasks"][0]["dynamics"]
    )

    # the figures are the contract's, recomputed from the returns in the JSON
    again = _recomputed(result)
    assert np.allclose(result["gap_closed_per_episode"], again["gap"], atol=1e-3)
    if again["gap_pooled"] is None:
        assert result["gap_closed_pooled_per_episode"] == [None, None]
    else:
        assert np.allclose(result["gap_closed_pooled_per_episode"], again["gap_pooled"], atol=1e-3)
    assert result["gap_closed_pooled_leave_one_seed_out_min_per_episode"] == [None, None]  # 2 seeds: undefined
    assert np.allclose(result["pearl_minus_best_oracle_per_episode"], again["over_oracle"], atol=1e-3)
    kinds = {task["kind"] for row in result["per_seed"] for task in row["held_out_tasks"]}
    assert kinds and kinds <= {"loaded", "remote"}
    assert set(result["pearl_minus_best_oracle_by_kind_per_episode"]) == kinds
    assert np.allclose(result["margin_over_scripted_per_episode"], again["margin"], atol=1e-3)
    assert np.allclose(result["margin_over_scripted_stderr_per_episode"], again["margin_stderr"], atol=1e-3)
    assert result["clearly_above"] == [bool(m > 2 * e) for m, e in zip(again["margin"], again["margin_stderr"])]
    assert result["adaptation_value"] == pytest.approx(again["value"], abs=1e-3)
    for m, v in again["returns"].items():
        assert np.allclose(result["return_per_episode"][m], v, atol=1e-3), m
    # the first episode acts on the prior in both PEARL variants: same z schedule, same goal, same return
    first = result["return_per_episode"]
    assert first["pearl_posterior_sampling"][0] == first["pearl_prior_z"][0]

    # a second invocation reuses the finished runs (no training), with the same numbers
    checkpoint = tmp_path / "seed-0" / "pearl" / "checkpoint.pt"
    mtime = checkpoint.stat().st_mtime_ns
    started = time.perf_counter()
    second = args.bench_module.run(_args(tmp_path, *extra))
    assert checkpoint.stat().st_mtime_ns == mtime
    assert time.perf_counter() - started < 60
    assert second["per_seed"] == result["per_seed"]
    assert second["gap_closed_per_episode"] == result["gap_closed_per_episode"]


def test_the_session_path_and_the_direct_loop_give_the_same_scripted_returns():
    cfg = baselines.scripted_config(apply_overrides(load_config("arm-fleet-small"), TOY))
    family = bench.family_for(cfg)
    _, test = family.split(0)
    via_session = bench.evaluate(family, test, bench._scripted(lambda t: {"gain": 0.35, "blend": 0.5}), 2, 2, 2)
    env = family.make_env(seed=0)
    direct = np.zeros_like(via_session)
    for t, task in enumerate(test):
        for r in range(2):
            for e in range(2):
                family.apply(env, task)
                direct[t, r, e] = baselines.episode_return(env, 0.35, 0.5, seed=1000 * (r + 1))
    env.close()
    assert np.array_equal(via_session, direct)
    assert len(np.unique(via_session)) > 1  # the arms and goal sequences differ


def test_the_baselines_play_on_joint_actions_of_the_same_family():
    cfg = apply_overrides(load_config("arm-fleet-small"), TOY)
    assert cfg.family_params.get("action_mode", "controller") == "controller"
    scripted = baselines.scripted_config(cfg)
    assert scripted.family_params["action_mode"] == "joint" and not scripted.family_params["observe_dynamics"]
    configs = bench.method_configs(cfg, side_by_side=True)
    assert set(configs) == {"pearl", "dr_sac", "rl_oracle", "pearl_joint_actions"}
    assert not configs["dr_sac"].use_context and not configs["rl_oracle"].use_context
    assert configs["rl_oracle"].family_params["observe_dynamics"] is True
    assert configs["pearl_joint_actions"].family_params["action_mode"] == "joint"
    assert all(c.torch_threads == 1 for c in configs.values())
    oracle_env = bench.family_for(configs["rl_oracle"]).make_env(seed=0)
    plain_env = bench.family_for(configs["pearl"]).make_env(seed=0)
    assert oracle_env.observation_space.shape[0] == plain_env.observation_space.shape[0] + 6
    oracle_env.close()
    plain_env.close()


def test_gap_closed_best_oracle_and_adaptation_value_on_hand_made_returns():
    shape = (2, 3, 4)  # tasks, repeats, episodes
    dr = np.full(shape, -10.0)
    rl = np.stack([np.full(shape[1:], -2.0), np.full(shape[1:], -6.0)])  # better on task 0
    per_task = np.stack([np.full(shape[1:], -4.0), np.full(shape[1:], -3.0)])  # better on task 1
    assert bench.best_oracle(rl, per_task) == -2.5  # the stricter oracle per task: (-2 + -3) / 2
    pearl = np.broadcast_to(np.array([-10.0, -6.25, -3.25, -2.5]), shape)
    assert np.allclose(bench.gap_closed(pearl, dr, -2.5), [0.0, 0.5, 0.9, 1.0])
    assert np.isnan(bench.gap_closed(pearl, dr, -10.0)).all()  # no gap: undefined, never a division by zero
    assert bench.adaptation_value(np.full(4, -3.0), np.full(4, -5.0), np.full(4, -13.0)) == 0.25
    assert bench.adaptation_value(np.full(4, -3.0), np.full(4, -13.0), np.full(4, -13.0)) is None

    means, errors = bench.mean_stderr(np.array([[1.0, np.nan], [3.0, 2.0]]))
    assert means == [2.0, 2.0] and errors == [pytest.approx(1.0), None]


def test_pooled_gap_is_a_ratio_of_sums_that_a_small_gap_cannot_inflate():
    pearl = np.array([[-10.0, -8.0], [-10.0, -4.0], [-10.0, -9.5]])  # [seeds, episodes]
    dr = np.array([-10.0, -10.0, -10.0])
    oracle = np.array([-9.0, -2.0, -9.75])  # gaps to close: 1, 8 and 0.25
    # per seed the gap closed at episode 2 is 2.0, 0.75 and 2.0 (mean 1.58); pooled it is (2 + 6 + 0.5) / 9.25
    assert bench.pooled_gap_closed(pearl, dr, oracle) == pytest.approx([0.0, 8.5 / 9.25])
    # leaving out the seed with the large gap leaves (2 + 0.5) / 1.25 = 2.0; leaving out the first, the worst
    assert bench.leave_one_out_min_gap(pearl, dr, oracle) == pytest.approx([0.0, 6.5 / 8.25])
    assert bench.leave_one_out_min_gap(pearl[:2], dr[:2], oracle[:2]) == [None, None]  # 2 seeds: undefined
    assert bench.pooled_gap_closed(pearl, dr, dr) == [None, None]  # nothing to close: undefined


def test_pearl_minus_best_oracle_is_per_arm_and_per_kind():
    shape = (2, 3, 2)  # tasks, repeats, episodes
    rl = np.stack([np.full(shape[1:], -2.0), np.full(shape[1:], -6.0)])
    per_task = np.stack([np.full(shape[1:], -4.0), np.full(shape[1:], -3.0)])
    oracles = bench.oracle_per_task(rl, per_task)
    assert oracles.tolist() == [-2.0, -3.0]
    pearl = np.stack([np.full(shape[1:], -1.0), np.full(shape[1:], -5.0)])  # +1 on arm 0, -2 on arm 1
    over = bench.margin_over_oracle([pearl, pearl], [oracles, oracles], [["loaded", "remote"], ["loaded", None]])
    assert over["mean"] == pytest.approx([-0.5, -0.5])
    assert over["by_kind"] == {"loaded": pytest.approx([1.0, 1.0]), "remote": pytest.approx([-2.0, -2.0])}
    assert over["stderr"][0] == pytest.approx(np.std([1, -2, 1, -2], ddof=1) / 2)


def test_margin_over_scripted_is_paired_on_goal_sequences_pooled_over_seeds():
    scripted = [np.array([[[-5.0, -5.0]], [[-9.0, -9.0]]]), np.array([[[-7.0, -7.0]]])]  # 3 sequences in all
    pearl = [s + np.array([0.0, 1.0]) + np.array([0.0, 0.1])[None, None, :] * i for i, s in enumerate(scripted)]
    margin = bench.margin_per_episode(pearl, scripted)
    assert margin["mean"][0] == 0.0 and not margin["clearly_above"][0]  # the prior episode: no better
    assert margin["mean"][1] == pytest.approx((1.0 + 1.0 + 1.1) / 3)
    assert margin["clearly_above"][1]  # the arms differ by 4 in return, the pairs by 0.1: clearly above
    unpaired = [s + np.array([[[0.0, 3.0]], [[0.0, -2.0]]])[: len(s)] for s in scripted]
    assert not bench.margin_per_episode(unpaired, scripted)["clearly_above"][1]
    single = bench.margin_per_episode([pearl[1]], [scripted[1]])  # one goal sequence: no spread
    assert single["stderr"] == [None, None] and single["clearly_above"] == [False, False]


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

    cfg = apply_overrides(load_config("arm-fleet-small"), TOY + ["num_iterations=2"])
    trainer = MetaTrainer(cfg, run_dir=tmp_path / "run")
    trainer.run_iteration()
    trainer.save_checkpoint()  # the benchmark was stopped here, after one of two iterations
    trainer.close()
    assert not bench._finished(cfg, tmp_path / "run")
    bench.train(cfg, tmp_path / "run")
    assert load_checkpoint(tmp_path / "run")[1]["iteration"] == 2
    assert bench._finished(cfg, tmp_path / "run")
    with pytest.raises(PearlRobotError, match="another configuration"):
        bench.train(apply_overrides(cfg, ["lr=0.001"]), tmp_path / "run")


def test_a_longer_budget_continues_a_finished_run_and_a_shorter_one_is_refused(tmp_path):
    from pearl_robot.pearl.trainer import load_checkpoint

    cfg = apply_overrides(load_config("arm-fleet-small"), TOY + ["num_iterations=1"])
    bench.train(cfg, tmp_path / "run")
    longer = apply_overrides(cfg, ["num_iterations=2", "eval_every=2"])
    assert not bench._finished(longer, tmp_path / "run")
    bench.train(longer, tmp_path / "run")  # continued from iteration 1, not retrained
    saved, state = load_checkpoint(tmp_path / "run")
    assert state["iteration"] == 2 and saved.num_iterations == 2
    assert bench._finished(longer, tmp_path / "run")
    with pytest.raises(PearlRobotError, match="longer than"):
        bench.train(cfg, tmp_path / "run")


def test_a_failed_training_is_one_clear_error_line(tmp_path):
    cfg = apply_overrides(load_config("arm-fleet-small"), TOY + ["family_params.remote_share=2.0"])
    jobs = [bench.TrainJob("seed 0 pearl", cfg, tmp_path / "pearl")]
    with pytest.raises(PearlRobotError) as caught:
        bench.train_all(jobs, 1, lambda message: None)
    message = str(caught.value)
    assert "\n" not in message and "seed 0 pearl" in message and "remote_share" in message


def test_failed_trainings_in_worker_processes_are_one_clear_error_line(tmp_path):
    cfg = apply_overrides(load_config("arm-fleet-small"), TOY + ["family_params.remote_share=2.0"])
    jobs = [bench.TrainJob(f"seed {s} pearl", replace(cfg, seed=s), tmp_path / f"seed-{s}") for s in (0, 1)]
    logged = []
    with pytest.raises(PearlRobotError) as caught:
        bench.train_all(jobs, 2, logged.append)
    message = str(caught.value)
    assert "\n" not in message and "remote_share" in message and "(and 1 more)" in message
    assert len(logged) == 1  # said at once, while the others finish


def test_the_best_single_tuning_is_best_over_all_training_tasks_and_the_oracle_per_task(monkeypatch):
    grid = baselines.Grid(gains=(0.1, 1.0), blends=(0.0, 1.0))  # points: (0.1, 0), (0.1, 1), (1, 0), (1, 1)
    table = np.array([[-1.0, -5.0, -2.0, -9.0], [-9.0, -5.0, -2.0, -1.0]])  # best on average: (1, 0)
    monkeypatch.setattr(baselines, "grid_returns", lambda family, tasks, grid: table)
    assert baselines.tune_best_single(None, [None, None], grid) == {"gain": 1.0, "blend": 0.0, "tuning_return": -2.0}
    chosen = baselines.tune_per_task(None, [None, None], grid)
    assert [(c["gain"], c["blend"]) for c in chosen] == [(0.1, 0.0), (1.0, 1.0)]


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path):
    cfg = apply_overrides(load_config("arm-fleet-small"), TOY)
    run = tmp_path / "pearl"
    bench.train(bench.method_configs(cfg, False)["pearl"], run)
    bench._check_checkpoint(run, bench.method_configs(cfg, False)["pearl"])  # the same: accepted
    with pytest.raises(PearlRobotError, match="another configuration"):
        bench._check_checkpoint(run, bench.method_configs(apply_overrides(cfg, ["seed=1"]), False)["pearl"])


def test_the_old_family_still_runs(tmp_path):
    """arm-dynamics has the same family parameters (joint actions and distance reward by default)."""
    overrides = TOY + ["family_params.num_test_tasks=1", "max_path_length=10"]
    argv = ["bench", "adapt", "--config", "arm-dynamics-small", "--set", *overrides, "--out", str(tmp_path)]
    argv += ["--seeds", "1", "--repeats", "1", "--episodes", "2", "--jobs", "1", "--scripted-gains", "0.3"]
    argv += ["--scripted-blends", "0"]
    args = build_parser().parse_args(argv)
    result = args.bench_module.run(args)
    assert result["family"] == "arm-dynamics" and result["seeds"] == 1
    assert result["gap_closed_stderr_per_episode"] == [None, None]  # one seed: no standard error
    assert Path(tmp_path / "bench_adapt.png").exists()


def test_scripted_only_measures_the_adaptation_value_without_training(tmp_path):
    args = _args(
        tmp_path / "scripted", "--scripted-only", "--seeds", "2", "--repeats", "2", "--episodes", "1",
        "--scripted-gains", "0.1", "1.0", "--scripted-blends", "0", "1",
    )  # fmt: skip
    result = bench.run(args)
    assert result["mode"] == "scripted-only" and result["family"] == "arm-fleet" and result["seeds"] == 2
    assert not list((tmp_path / "scripted").glob("seed-*"))  # nothing trained
    level = result["return_level"]
    single, per_task, rnd = level["scripted_best_single"], level["scripted_per_task"], level["random"]
    assert all(-50.0 <= v <= 0.0 for v in level.values())  # 50 steps of a tolerance reward in [-1, 0]
    assert result["adaptation_value"] == pytest.approx((per_task - single) / (single - rnd), abs=1e-3)
    assert len(result["adaptation_value_per_seed"]) == 2
    assert json.loads((tmp_path / "scripted" / "bench_adapt_scripted.json").read_text()) == result
