"""Collection as seeded jobs (no Ray needed): a job's data depend on its seed, task and weights only -- not on
the runner, its environments' history or the BLAS thread count -- and the trainer adds whole results only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from distributed_helpers import same_results, tiny_config, write_config
from threadpoolctl import threadpool_limits

from pearl_robot.cli.main import main
from pearl_robot.distributed import make_collector
from pearl_robot.errors import PearlRobotError
from pearl_robot.pearl.collector import Block, CollectJob, InProcessCollector, RolloutRunner
from pearl_robot.pearl.config import load_config
from pearl_robot.pearl.trainer import MetaTrainer


def _jobs(trainer: MetaTrainer, iteration: int = 1) -> list[CollectJob]:
    trainer.iteration = iteration
    return trainer.collection_jobs()


def test_iteration_jobs_follow_the_schedule_and_draw_one_seed_each():
    trainer = MetaTrainer(tiny_config())
    jobs = _jobs(trainer, iteration=0)
    initial, sampled = jobs[:6], jobs[6:]
    assert [j.task for j in initial] == list(range(6))
    assert all(j.blocks == (Block("initial", 40, True),) and not j.clear_encoder for j in initial)
    assert len(sampled) == 3 and all(j.clear_encoder for j in sampled)
    assert all([b.name for b in j.blocks] == ["prior", "posterior", "extra"] for j in sampled)
    assert len({j.seed for j in jobs}) == len(jobs)
    assert len(_jobs(trainer, iteration=1)) == 3  # no initial data after iteration 0


@pytest.mark.parametrize("config", ["point", "cheetah-vel"])
def test_a_job_gives_the_same_data_on_any_runner_and_after_any_history(config):
    if config == "point":
        cfg = tiny_config()
    else:
        cfg = load_config("cheetah-vel-small", ["family_params={num_train_tasks: 3, num_test_tasks: 1}",
                                                "tensorboard=false", "num_tasks_sample=2"])  # fmt: skip
    trainer = MetaTrainer(cfg)
    jobs, agent = _jobs(trainer), trainer.numpy_agent()
    first = InProcessCollector(trainer.runner).collect(jobs, agent)
    again = InProcessCollector(trainer.runner).collect(list(reversed(jobs)), agent)[::-1]  # envs used since
    fresh = InProcessCollector(RolloutRunner.from_config(cfg)).collect(jobs, agent)
    assert same_results(first, again) and same_results(first, fresh)
    # the BLAS thread count of the calling process does not matter (collection pins it to one thread)
    with threadpool_limits(limits=2, user_api="blas"):
        two = InProcessCollector(trainer.runner).collect(jobs, agent)
    assert same_results(first, two)
    other = dataclasses.replace(jobs[0], seed=jobs[0].seed + 1)
    assert not same_results(first[:1], InProcessCollector(trainer.runner).collect([other], agent))


def test_results_are_added_whole_or_not_at_all():
    trainer = MetaTrainer(tiny_config())
    jobs = trainer.collection_jobs()
    results = InProcessCollector(trainer.runner).collect(jobs, trainer.numpy_agent())
    rl, enc, steps = trainer.rl_buffer.size.copy(), trainer.enc_buffer.size.copy(), trainer.env_steps
    cut = results[-1].blocks[-1]
    cut.paths.pop()  # a block that lost a trajectory
    cut.context_sizes.pop()
    with pytest.raises(PearlRobotError, match="incomplete"):
        trainer.add_results(jobs, results)
    with pytest.raises(PearlRobotError, match="results for"):
        trainer.add_results(jobs, results[:-1])
    assert np.array_equal(trainer.rl_buffer.size, rl) and np.array_equal(trainer.enc_buffer.size, enc)
    assert trainer.env_steps == steps and trainer.collection_log == []


def test_workers_without_ray_fall_back_to_in_process(monkeypatch, tmp_path, capsys):
    import pearl_robot.distributed as distributed

    trainer = MetaTrainer(tiny_config())
    assert make_collector(trainer, 0) is trainer.collector
    monkeypatch.setattr(distributed, "ray_available", lambda: False)
    warnings = []
    assert make_collector(trainer, 2, warn=warnings.append) is trainer.collector
    assert "not installed" in warnings[0]
    with pytest.raises(PearlRobotError, match="distributed"):
        make_collector(trainer, 2, address="auto")
    with pytest.raises(PearlRobotError, match=">= 0"):
        make_collector(trainer, -1)

    config = write_config(tmp_path / "tiny.yaml", tiny_config())
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "plain"), "--quiet"]) == 0
    args = ["train", "--config", str(config), "--out", str(tmp_path / "workers"), "--quiet", "--workers", "2"]
    assert main(args) == 0
    assert "not installed" in capsys.readouterr().err
    progress = [(tmp_path / name / "progress.csv").read_text() for name in ("plain", "workers")]
    assert progress[0] == progress[1]
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "x"), "--ray-address", "auto"]) == 1
