"""Environment speed of a task family: env steps per second with random actions (no policy), the
ceiling that collection can reach. Used by benchmarks; prints nothing."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pearl_robot.tasks.base import TaskFamily
from pearl_robot.tasks.registry import make_family


def env_steps_per_second(family: TaskFamily | str, steps: int = 2000, seed: int = 0, **params: Any) -> dict:
    """Step one env of ``family`` (playing its first train task) ``steps`` times with uniform random
    actions, resetting when a path ends; resets are included in the time, as in collection."""
    fam = make_family(family, **params) if isinstance(family, str) else family
    env = fam.make_env(seed=seed)
    fam.apply(env, fam.split(seed)[0][0])
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, *env.action_space.shape)).astype(np.float32)
    resets = 0
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
            resets += 1
    seconds = time.perf_counter() - start
    env.close()
    return {
        "family": fam.name,
        "steps": steps,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "us_per_step": seconds / steps * 1e6,
        "resets": resets,
    }
