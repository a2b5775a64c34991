"""The demo's last step: what a practitioner would have run instead, on the same virtual arm.

The scripted reaching controller is tuned once for the whole fleet (the grid point with the best mean
return over the family's training arms in simulation: ``bench adapt``'s "best single scripted
controller"), then driven on the held-out virtual arm through the same serial path, goal and start as the
PEARL session. The table puts PEARL's prior-z episode, its posterior episodes and the scripted controller's
episodes side by side, with the episode-to-episode spread of each, so a gap can be told from noise.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pearl_robot.adapt.policy import family_for
from pearl_robot.adapt.session import AdaptationSession, SessionConfig
from pearl_robot.adapt.store import SessionStore
from pearl_robot.bench.adapt_baselines import Grid, ScriptedPolicy, scripted_config, tune_best_single
from pearl_robot.control.loop import RateLoop
from pearl_robot.pearl.config import PEARLConfig
from pearl_robot.robot.registry import open_robot


def tune_scripted(cfg: PEARLConfig, hardware: str | None) -> dict[str, float]:
    family = family_for(scripted_config(cfg), hardware=hardware)
    train_tasks, _ = family.split(cfg.seed)
    return tune_best_single(family, train_tasks, Grid())


def run_scripted_session(
    cfg: PEARLConfig,
    robot_address: str,
    hardware: str | None,
    calibration: str,
    params: dict[str, float],
    episodes: int,
    seed: int,
    out: Path,
) -> list[float]:
    """Returns per episode of the scripted controller on the robot, recorded in ``out`` like a session."""
    family = family_for(scripted_config(cfg), hardware=hardware)
    robot = open_robot(robot_address, hardware, calibration=calibration)
    env = family.make_env(robot=robot, loop=RateLoop(robot.spec.period_s, realtime=robot.realtime))
    policy = ScriptedPolicy(env, params["gain"], params["blend"])
    store = SessionStore(out)
    with robot:
        store.create({"controller": "scripted", **params, "robot": robot_address, "seed": seed})
        try:
            session = AdaptationSession(
                env, policy, store, SessionConfig(episodes, episodes, seed=seed, same_start=True)
            )
            returns = [s.episode_return for s in session.run()]
        finally:
            store.close()
    return returns


def _level(values: list[float]) -> str:
    if not values:
        return "-"
    spread = f" +- {np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
    return f"{np.mean(values):7.2f}{spread}"


def side_by_side(session: Path, scripted: list[float], params: dict[str, float]) -> str:
    """The comparison table: PEARL's episodes (from the session on disk) beside the scripted controller's."""
    ends = SessionStore(session).load().episode_ends()
    prior = [e["episode_return"] for e in ends if e.get("z_source") == "prior" and not e.get("partial")]
    posterior = [e["episode_return"] for e in ends if e.get("z_source") == "posterior" and not e.get("partial")]
    rows = [
        "",
        "same virtual arm, same goal and start (return per episode; mean +- spread over episodes):",
        f"  PEARL, z from the prior       {_level(prior)}   ({', '.join(f'{v:.2f}' for v in prior)})",
        f"  PEARL, posterior sampling     {_level(posterior)}   ({', '.join(f'{v:.2f}' for v in posterior)})",
        f"  scripted, tuned for the fleet {_level(scripted)}   ({', '.join(f'{v:.2f}' for v in scripted)};"
        f" gain {params['gain']}, blend {params['blend']})",
    ]
    if posterior and scripted:
        gap = float(np.mean(posterior) - np.mean(scripted))
        noise = max(
            float(np.std(posterior, ddof=1)) if len(posterior) > 1 else 0.0,
            float(np.std(scripted, ddof=1)) if len(scripted) > 1 else 0.0,
        )
        verdict = "above" if abs(gap) > 2 * noise else "within"
        rows.append(
            f"  posterior minus scripted: {gap:+.2f} ({verdict} twice the episode-to-episode spread, {noise:.2f})"
        )
    return "\n".join(rows)


def compare(
    cfg: PEARLConfig,
    device: str,
    robot_options: str,
    hardware: str | None,
    calibration: str,
    session: Path,
    episodes: int,
    seed: int,
) -> str:
    started = time.monotonic()
    params = tune_scripted(cfg, hardware)
    print(
        f"scripted controller tuned on the {cfg.family} training arms in simulation: gain {params['gain']}, "
        f"blend {params['blend']} ({time.monotonic() - started:.0f} s)",
        flush=True,
    )
    out = session.parent / f"{session.name}-scripted"
    scripted = run_scripted_session(
        cfg, f"serial:{device}?{robot_options}", hardware, calibration, params, episodes, seed, out
    )
    return side_by_side(session, scripted, params)
