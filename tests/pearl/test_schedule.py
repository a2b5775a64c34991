"""The collection schedule: iteration-0 initial data, per-iteration prior / posterior / extra blocks,
encoder-buffer clearing, posterior re-inference every ``update_post_train`` trajectories, and the
sparse-reward and next-observation context options."""

from __future__ import annotations

from collections import Counter

import numpy as np
from pearl_helpers import tiny_config

from pearl_robot.pearl.trainer import MetaTrainer


def test_iteration_zero_collects_initial_data_for_every_train_task_with_the_prior():
    trainer = MetaTrainer(tiny_config())
    trainer.collect_iteration_data()
    initial = [r for r in trainer.collection_log if r.block == "initial"]
    assert Counter(r.task for r in initial) == Counter({t: 2 for t in range(6)})  # 40 steps = 2 paths of 20
    assert all(r.z_source == "prior" and r.to_encoder and r.context_size == 0 for r in initial)


def test_each_sampled_task_clears_its_encoder_buffer_then_runs_prior_posterior_extra():
    cfg = tiny_config()
    trainer = MetaTrainer(cfg)
    trainer.collect_iteration_data()  # iteration 0 (initial data for all)
    trainer.iteration = 1
    rl_before = trainer.rl_buffer.size.copy()
    enc_before = trainer.enc_buffer.size.copy()
    steps_before = trainer.env_steps
    trainer.collection_log = []
    trainer.collect_iteration_data()
    log = trainer.collection_log
    assert not any(r.block == "initial" for r in log)
    blocks = [r.block for r in log]
    # per sampled task: 2 prior paths, 1 posterior path, 2 extra paths, in that order
    assert blocks == ["prior", "prior", "posterior", "extra", "extra"] * cfg.num_tasks_sample
    sampled = Counter(r.task for r in log if r.block == "prior")
    per_task = cfg.num_steps_prior + cfg.num_steps_posterior + cfg.num_extra_rl_steps_posterior
    for task in range(6):
        visits = sampled.get(task, 0) // 2
        assert trainer.rl_buffer.size[task] == rl_before[task] + visits * per_task
        # the encoder buffer was cleared: it holds this iteration's prior + posterior data only
        expected_enc = cfg.num_steps_prior + cfg.num_steps_posterior if visits else enc_before[task]
        assert trainer.enc_buffer.size[task] == expected_enc
    assert trainer.env_steps - steps_before == cfg.num_tasks_sample * per_task
    for r in log:
        assert r.to_encoder == (r.block != "extra")
        assert r.z_source == ("prior" if r.block == "prior" else "posterior")
    # the posterior block starts from the posterior of the prior data; the extra block sees prior + posterior
    posterior = [r for r in log if r.block == "posterior"]
    assert all(r.context_size == cfg.num_steps_prior for r in posterior)
    extra = [r for r in log if r.block == "extra"]
    assert all(r.context_size == cfg.num_steps_prior + cfg.num_steps_posterior for r in extra)


def test_reference_quirk_posterior_block_starting_from_the_prior():
    trainer = MetaTrainer(tiny_config(posterior_block_starts_from_prior=True))
    trainer.collect_iteration_data()
    log = [r for r in trainer.collection_log if r.block in ("posterior", "extra")]
    firsts = [
        log[i] for i in range(len(log)) if i == 0 or log[i - 1].block != log[i].block or log[i - 1].task != log[i].task
    ]
    assert all(r.z_source == "prior" for r in firsts)
    assert any(r.z_source == "posterior" for r in log)


def test_posterior_is_reinferred_every_update_post_train_trajectories():
    cfg = tiny_config(num_tasks_sample=1, num_steps_prior=40, num_steps_posterior=80, num_extra_rl_steps_posterior=0,
                      update_post_train=2)  # fmt: skip
    trainer = MetaTrainer(cfg)
    trainer.collect_iteration_data()
    posterior = [r for r in trainer.collection_log if r.block == "posterior"]
    # two paths per inference: context of 40 (prior data), then 80 (prior + 2 posterior paths)
    assert [r.context_size for r in posterior] == [40, 40, 80, 80]


def test_sparse_reward_context_and_dense_critic():
    cfg = tiny_config(family="sparse-point-robot", sparse_rewards=True)
    trainer = MetaTrainer(cfg)
    trainer.collect_iteration_data()
    lay = trainer.layout
    assert lay.sparse_reward in trainer.context_columns and lay.reward not in trainer.context_columns
    batch = trainer.sample_batch(np.arange(3), np.random.default_rng(0))
    assert (batch.rewards <= 0).all()  # the critic's reward: -distance
    assert (batch.context[..., lay.obs_dim + lay.action_dim] >= 0).all()  # the encoder's: sparse, >= 0
    rows = trainer.rl_buffer.task_rows(0)
    assert np.all(rows[:, lay.sparse_reward] >= 0) and np.all(rows[:, lay.reward] <= 0)


def test_next_observation_in_context():
    trainer = MetaTrainer(tiny_config(use_next_obs_in_context=True))
    trainer.collect_iteration_data()
    lay = trainer.layout
    assert trainer.agent.dims.context_dim == 2 * lay.obs_dim + lay.action_dim + 1
    batch = trainer.sample_batch(np.arange(3), np.random.default_rng(0))
    ctx = batch.context.numpy()
    assert ctx.shape[-1] == 2 * lay.obs_dim + lay.action_dim + 1
    # point robot: next position = position + 0.1 * action
    np.testing.assert_allclose(ctx[..., -2:], ctx[..., :2] + 0.1 * ctx[..., 2:4], atol=1e-5)


def test_recurrent_encoder_runs_end_to_end(tmp_path):
    trainer = MetaTrainer(tiny_config(recurrent=True, num_iterations=1), run_dir=tmp_path)
    rows = trainer.train()
    assert np.isfinite(rows[0]["q_loss"]) and rows[0]["test_return_last"] is not None


def test_without_initial_data_only_tasks_with_data_are_trained_on():
    trainer = MetaTrainer(tiny_config(num_initial_steps=0, num_iterations=1))
    rows = trainer.train()
    assert np.isfinite(rows[0]["q_loss"])
    assert (trainer.rl_buffer.size > 0).sum() <= trainer.cfg.num_tasks_sample


def test_extra_block_without_encoder_data_uses_the_prior():
    trainer = MetaTrainer(tiny_config(num_steps_prior=0, num_steps_posterior=0, num_extra_rl_steps_posterior=40))
    trainer.collect_iteration_data()
    extra = [r for r in trainer.collection_log if r.block == "extra"]
    assert extra and all(r.z_source == "prior" for r in extra)
