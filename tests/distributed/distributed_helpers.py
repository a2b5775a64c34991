"""Helpers shared by the distributed tests: a tiny point-robot config (milliseconds per iteration) and
comparisons of collection results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from pearl_robot.pearl.config import PEARLConfig


def tiny_config(**overrides) -> PEARLConfig:
    """Every block of the schedule (initial, prior, posterior, extra) in well under a second per iteration."""
    base = dict(
        family="point-robot",
        family_params={"num_train_tasks": 6, "num_test_tasks": 2},
        seed=3,
        device="cpu",
        torch_threads=1,
        num_iterations=2,
        meta_batch=3,
        num_train_steps_per_itr=4,
        num_initial_steps=40,
        num_tasks_sample=3,
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


def write_config(path: Path, cfg: PEARLConfig) -> Path:
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path


def same_results(a: list, b: list) -> bool:
    """Two lists of JobResult hold the same jobs, blocks, context sizes and transition rows."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        if ra.job != rb.job or len(ra.blocks) != len(rb.blocks):
            return False
        for ba, bb in zip(ra.blocks, rb.blocks):
            if ba.block != bb.block or ba.context_sizes != bb.context_sizes or len(ba.paths) != len(bb.paths):
                return False
            for pa, pb in zip(ba.paths, bb.paths):
                if pa.z_source != pb.z_source or not np.array_equal(pa.rows, pb.rows):
                    return False
    return True
