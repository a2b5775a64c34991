"""On a local Ray instance (2 CPUs, shared by the module): training with rollout workers equals in-process
training and itself; a worker killed mid-collection is replaced and its jobs redone, the iteration's data
complete and without duplicates; a collection that cannot finish leaves the buffers untouched; a sweep over
two seeds writes two run folders and a summary."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from distributed_helpers import same_results, tiny_config, write_config

pytest.importorskip("ray")

from pearl_robot.cli.main import main  # noqa: E402
from pearl_robot.distributed.collector import RayCollector  # noqa: E402
from pearl_robot.errors import PearlRobotError  # noqa: E402
from pearl_robot.pearl.collector import Collector, InProcessCollector  # noqa: E402
from pearl_robot.pearl.trainer import MetaTrainer  # noqa: E402


def _progress(run_dir) -> str:
    return (run_dir / "progress.csv").read_text()


def test_training_on_two_workers_is_deterministic_and_equals_in_process(ray_local, tmp_path):
    cfg = tiny_config(num_iterations=3)
    MetaTrainer(cfg, run_dir=tmp_path / "in_process").train()

    config = write_config(tmp_path / "tiny.yaml", cfg)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "cli"), "--workers", "2", "--quiet"]) == 0

    trainer = MetaTrainer(cfg, run_dir=tmp_path / "api")
    with RayCollector(cfg, trainer.family, 2) as collector:
        trainer.collector = collector
        trainer.train()
        assert len({info["pid"] for info in collector.worker_info}) == 2

    assert _progress(tmp_path / "cli") == _progress(tmp_path / "api") == _progress(tmp_path / "in_process")
    assert ray_local.is_initialized()  # the CLI used the running instance and left it running


class KillWhileCollecting(Collector):
    """Runs a RayCollector's round, killing the worker of a job still running once the first job finished."""

    def __init__(self, inner: RayCollector, kill_at_call: int) -> None:
        self.inner, self.kill_at_call, self.calls, self.killed_unfinished = inner, kill_at_call, 0, 0
        self.results = []

    def collect(self, jobs, agent):
        import ray

        rnd = self.inner.submit(jobs, agent)
        if self.calls == self.kill_at_call:
            ray.wait(rnd.refs(), num_returns=1)
            _, running = ray.wait(rnd.refs(), num_returns=len(rnd.refs()), timeout=0)
            slot = rnd.pending[running[0]][1]
            ray.kill(self.inner.workers[slot])
            self.killed_unfinished = len(running)
        self.calls += 1
        results = self.inner.gather(rnd)
        self.results.append(results)
        return results


def test_a_killed_worker_is_replaced_and_its_rollouts_redone(ray_local, tmp_path):
    # iteration 0: 6 initial jobs of 1000 steps and 3 task visits, so jobs are still running at the kill
    cfg = tiny_config(num_initial_steps=1000)
    expected = MetaTrainer(cfg, run_dir=tmp_path / "in_process")
    expected.train()

    trainer = MetaTrainer(cfg, run_dir=tmp_path / "killed")
    with RayCollector(cfg, trainer.family, 2) as ray_collector:
        killer = KillWhileCollecting(ray_collector, kill_at_call=0)
        trainer.collector = killer
        trainer.train()
        assert killer.killed_unfinished >= 1 and ray_collector.restarts == 1
        assert len(ray_collector.workers) == 2
        # the iteration's data: every job's result once (no duplicates, none missing), as in process
        fresh = MetaTrainer(cfg)
        jobs = fresh.collection_jobs()
        assert same_results(killer.results[0], InProcessCollector(fresh.runner).collect(jobs, fresh.numpy_agent()))

        assert _progress(tmp_path / "killed") == _progress(tmp_path / "in_process")
        assert np.array_equal(trainer.rl_buffer.size, expected.rl_buffer.size)
        assert np.array_equal(trainer.rl_buffer.data, expected.rl_buffer.data)
        assert np.array_equal(trainer.enc_buffer.size, expected.enc_buffer.size)
        assert trainer.env_steps == expected.env_steps
        # a worker that keeps dying: the collection fails as a whole and the buffers stay as they were
        ray_collector.max_job_attempts = 1
        ray_local.kill(ray_collector.workers[0])
        ray_local.kill(ray_collector.workers[1])
        rl, enc, steps = trainer.rl_buffer.size.copy(), trainer.enc_buffer.size.copy(), trainer.env_steps
        trainer.collector = ray_collector
        with pytest.raises(PearlRobotError, match="failed"):
            trainer.collect_iteration_data()
        assert np.array_equal(trainer.rl_buffer.size, rl) and np.array_equal(trainer.enc_buffer.size, enc)
        assert trainer.env_steps == steps


def test_sweep_over_two_seeds_writes_two_runs_and_a_summary(ray_local, tmp_path, capsys):
    cfg = tiny_config()
    config = write_config(tmp_path / "tiny.yaml", cfg)
    out = tmp_path / "sweep"
    assert main(["sweep", str(config), "--seeds", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    runs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert runs == ["tiny-seed0", "tiny-seed1"]
    for name in runs:
        assert (out / name / "checkpoint.pt").exists() and (out / name / "policy.npz").exists()
    # a run of the sweep is the experiment run alone
    MetaTrainer(tiny_config(seed=0), run_dir=tmp_path / "alone").train()
    assert _progress(out / "tiny-seed0") == _progress(tmp_path / "alone")
    assert _progress(out / "tiny-seed0") != _progress(out / "tiny-seed1")

    with open(out / "summary.csv") as f:
        (row,) = list(csv.DictReader(f))
    with open(out / "runs.csv") as f:
        finals = [float(r["final_test_return"]) for r in csv.DictReader(f)]
    assert row["group"] == "tiny" and row["runs"] == "2" and row["failed"] == "0"
    assert float(row["test_return_mean"]) == pytest.approx(np.mean(finals))
    assert float(row["test_return_std"]) == pytest.approx(np.std(finals, ddof=1))
    assert (out / "summary.png").stat().st_size > 0
    assert "tiny" in printed and "+-" in printed
