"""Export a session to HDF5 in the Minari layout (the Gymnasium project's offline-RL format, which
robomimic-style HDF5 readers also open with h5py): one group per episode with ``observations`` (T+1 rows),
``actions``, ``rewards``, ``terminations``, ``truncations`` and ``infos/`` (timestamps, requested and
sent targets, joint state, z, ``intervention``: the steps an operator drove; their count in
``attrs["interventions"]``). HDF5 because it needs only h5py (already a dependency), keeps every
episode's arrays typed and sliceable, and is what D4RL, Minari and robomimic users already load.

A partial episode (cut short by a stop, a fault or a crash) is truncated at its last step like every
episode that ends without a terminal state, and marked ``attrs["partial"]`` (as the Minari and LeRobot
exports mark it), so it is never taken for a complete one. The file is built in memory and written
atomically once its size is known to fit, so a full disk or a read-only folder is one clear error and
leaves no temporary file and no torn HDF5 behind."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np

from pearl_robot.adapt.store import SessionData, SessionStore, is_partial
from pearl_robot.errors import PearlRobotError
from pearl_robot.io import atomic_write


class ExportWriteError(PearlRobotError):
    """The export could not be written (disk full, read-only folder); the session log is untouched."""


def _stack(rows: list, dtype=np.float64) -> np.ndarray:
    filled = [np.nan if r is None else r for r in rows]
    return np.asarray(filled, dtype=dtype)


def export_hdf5(session: str | os.PathLike[str] | SessionData, out: str | os.PathLike[str]) -> Path:
    data = session if isinstance(session, SessionData) else SessionStore(session).load()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        _fill(h5, data)
    return _write(buffer.getbuffer(), Path(out))


def _write(content: memoryview, out: Path) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(out.parent).free
        if free < len(content):
            raise OSError(errno.ENOSPC, f"{len(content)} bytes needed, {free} free")
        atomic_write(out, lambda handle: handle.write(content))
    except OSError as exc:
        reason = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "cannot write there"
        raise ExportWriteError(
            f"{out} not written ({reason}: {exc.strerror or exc}); the session log is intact, export it again with "
            "`pearl-robot export SESSION --format hdf5 --out DIR`"
        ) from None
    return out


def _fill(h5: h5py.File, data: SessionData) -> None:
    starts = {r["episode"]: r for r in data.episode_starts()}
    ends = {r["episode"]: r for r in data.episode_ends()}
    episodes = sorted({r["episode"] for r in data.steps()})
    partial = {e for e in episodes if e not in ends or is_partial(ends[e])}
    h5.attrs["format"] = "minari-style"
    h5.attrs["total_episodes"] = len(episodes)
    h5.attrs["partial_episodes"] = len(partial)
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
        group.attrs["partial"] = episode in partial
        interventions = np.array([bool(s.get("intervention", False)) for s in steps])
        group.attrs["interventions"] = int(interventions.sum())
        obs = [s["obs"] for s in steps] + [steps[-1]["next_obs"]]
        group["observations"] = _stack(obs, np.float32)
        group["actions"] = _stack([s["requested_action"] for s in steps], np.float32)
        group["rewards"] = _stack([s["reward"] for s in steps])
        group["terminations"] = np.zeros(len(steps), dtype=bool)
        truncations = np.zeros(len(steps), dtype=bool)
        truncations[-1] = True  # no episode here ends in a terminal state; partial ones say so in attrs
        group["truncations"] = truncations
        infos = group.create_group("infos")
        infos["timestamp"] = _stack([s["timestamp"] for s in steps])
        n_joints = len(steps[0]["position"])
        infos["sent_target"] = _stack([s["sent_target"] or [None] * n_joints for s in steps])
        infos["position"] = _stack([s["position"] for s in steps])
        infos["velocity"] = _stack([s["velocity"] for s in steps])
        infos["sparse_reward"] = _stack([s.get("sparse_reward", np.nan) for s in steps])
        infos["intervention"] = interventions
        if start.get("z") is not None:
            infos["z"] = np.asarray(start["z"], dtype=np.float32)
            infos["posterior_mean"] = np.asarray(start["posterior_mean"], dtype=np.float32)
            infos["posterior_var"] = np.asarray(start["posterior_var"], dtype=np.float32)
