"""PEARL learns: meta-train the shipped point-robot-small config (about a minute on one thread) and check
that on the held-out test tasks the return after adaptation clearly beats both a random policy and the
same agent held at z from the prior."""

from __future__ import annotations

import time

import numpy as np

from pearl_robot.pearl.config import load_config
from pearl_robot.pearl.trainer import MetaTrainer


def _random_policy_return(trainer: MetaTrainer, rng: np.random.Generator, runs: int) -> float:
    env, returns = trainer.eval_env, []
    for task in trainer.test_tasks:
        trainer.family.apply(env, task)
        for _ in range(runs):
            env.reset(seed=int(rng.integers(2**31 - 1)))
            total = 0.0
            for _ in range(trainer.max_path_length):
                _, reward, terminated, truncated, _ = env.step(rng.uniform(-1.0, 1.0, env.action_space.shape))
                total += reward
                if terminated or truncated:
                    break
            returns.append(total)
    return float(np.mean(returns))


def test_point_robot_adapts_to_unseen_goals():
    start = time.monotonic()
    cfg = load_config("point-robot-small", ["tensorboard=false", "torch_threads=1"])
    trainer = MetaTrainer(cfg)
    trainer.train()
    agent = trainer.numpy_agent()
    rng = np.random.default_rng(2024)
    runs = 2
    adapted = trainer.evaluator.evaluate(agent, trainer.test_tasks, rng, runs)
    held = trainer.evaluator.evaluate(agent, trainer.test_tasks, rng, runs, adapt=False)
    random = _random_policy_return(trainer, rng, runs)
    elapsed = time.monotonic() - start
    summary = (
        f"adapted per trajectory {np.round(adapted.online_returns, 2)}, final {adapted.final_return:.2f}; "
        f"z held at the prior {held.final_return:.2f}; random {random:.2f}; {elapsed:.0f} s"
    )
    print(summary)
    # 20 unseen goals x 2 runs; returns are minus the summed distance over 20 steps
    assert adapted.final_return > held.final_return + 3.0, summary
    assert adapted.final_return > random + 5.0, summary
    # the exploration trajectories (z from the prior) are no better than the held agent: the gain is adaptation
    assert adapted.online_returns[-1] > adapted.online_returns[: cfg.num_exp_traj_eval].mean() + 3.0, summary
