"""Export a session to HDF5 in the Minari layout (the Gymnasium project's offline-RL format, which
robomimic-style HDF5 readers also open with h5py): one group per episode with ``observations`` (T+1 rows),
``actions``, ``rewards``, ``terminations``, ``truncations`` and ``infos/`` (timestamps, requested and
sent targets, joint state, z). HDF5 because it needs only h5py (already a dependency), keeps every
episode's arrays typed and sliceable, and is what D4RL, Minari and robomimic users already load."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from pearl_robot.adapt.store import SessionData, SessionStore
from pearl_robot.io import atomic_path


def _stack(rows: list, dtype=np.float64) -> np.ndarray:
    filled = [np.nan if r is None else r for r in rows]
    return np.asarray(filled, dtype=dtype)


def export_hdf5(session: str | os.PathLike[str] | SessionData, out: str | os.PathLike[str]) -> Path:
    data = session if isinstance(session, SessionData) else SessionStore(session).load()
    starts = {r["episode"]: r for r in data.episode_starts()}
    ends = {r["episode"]: r for r in data.episode_ends()}
    episodes = sorted({r["episode"] for r in data.steps()})

    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["format"] = "minari-style"
        h5.attrs["total_episodes"] = len(episodes)
        h5.attrs["total_steps"] = len(data.steps())
        h5.attrs["pearl_robot_meta"] = json.dumps(data.meta)
        for episode in episodes:
            steps = data.steps(episode)
            group = h5.create_group(f"episode_{episode}")
            group.attrs["id"] = episode
            start = starts.get(episode, {})
            group.attrs["z_source"] = start.get("z_source", "")
            group.attrs["return"] = float(ends.get(episode, {}).get("episode_return", np.nan))
            group.attrs["aborted"] = bool(ends.get(episode, {}).get("aborted", episode not in ends))
            obs = [s["obs"] for s in steps] + [steps[-1]["next_obs"]]
            group["observations"] = _stack(obs, np.float32)
            group["actions"] = _stack([s["requested_action"] for s in steps], np.float32)
            group["rewards"] = _stack([s["reward"] for s in steps])
            group["terminations"] = np.zeros(len(steps), dtype=bool)
            truncations = np.zeros(len(steps), dtype=bool)
            truncations[-1] = episode in ends and not ends[episode].get("aborted", False)
            group["truncations"] = truncations
            infos = group.create_group("infos")
            infos["timestamp"] = _stack([s["timestamp"] for s in steps])
            n_joints = len(steps[0]["position"])
            infos["sent_target"] = _stack([s["sent_target"] or [None] * n_joints for s in steps])
            infos["position"] = _stack([s["position"] for s in steps])
            infos["velocity"] = _stack([s["velocity"] for s in steps])
            infos["sparse_reward"] = _stack([s.get("sparse_reward", np.nan) for s in steps])
            if start.get("z") is not None:
                infos["z"] = np.asarray(start["z"], dtype=np.float32)
                infos["posterior_mean"] = np.asarray(start["posterior_mean"], dtype=np.float32)
                infos["posterior_var"] = np.asarray(start["posterior_var"], dtype=np.float32)
    return Path(out)
