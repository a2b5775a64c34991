"""Helpers shared by the PEARL tests: a tiny config on the point robot (numpy-only, milliseconds per
iteration)."""

from __future__ import annotations

from pearl_robot.pearl.config import PEARLConfig


def tiny_config(**overrides) -> PEARLConfig:
    """A point-robot run that exercises every block of the schedule in well under a second."""
    base = dict(
        family="point-robot",
        family_params={"num_train_tasks": 6, "num_test_tasks": 2},
        seed=3,
        device="cpu",
        num_iterations=2,
        meta_batch=3,
        num_train_steps_per_itr=4,
        num_initial_steps=40,
        num_tasks_sample=2,
        num_steps_prior=40,
        num_steps_posterior=20,
        num_extra_rl_steps_posterior=40,
        batch_size=16,
        embedding_batch_size=8,
        max_path_length=20,
        net_size=16,
        encoder_net_size=16,
        reward_scale=100.0,
        num_exp_traj_eval=1,
        num_steps_per_eval=60,
        eval_every=1,
        checkpoint_every=1,
        tensorboard=False,
    )
    base.update(overrides)
    return PEARLConfig(**base).validate()
