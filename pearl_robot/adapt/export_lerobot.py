"""Export sessions as a LeRobotDataset in the v3.0 layout, written with pyarrow (no torch, no lerobot):

    data/chunk-000/file-000.parquet             one row per frame (control step), all episodes
    meta/info.json                              codebase_version "v3.0", fps, features, totals, paths
    meta/stats.json                             min, max, mean, std, count per feature
    meta/tasks.parquet                          the task of each session (index: task, column task_index)
    meta/episodes/chunk-000/file-000.parquet    per episode: its rows, task, stats, and where it came from
    meta/pearl_robot.json                       the sessions and their meta.json

No videos (the arm records no camera). Features, named after the arm's joints: ``observation.state``
(arm joint positions, rad), ``observation.velocity`` (rad/s), ``observation.environment_state`` (the
policy's RobotEnv observation, one name per value), ``action`` (the joint targets sent, rad, every joint),
``policy_action`` (the policy's output: target increments in units of the env's action scale, or on a
controller-action family the scripted controller's gain, blend and residuals),
``next.reward``, ``next.done`` (the episode's last frame), ``z``, ``posterior_mean``, ``posterior_std``,
``complementary_info.is_intervention`` (1.0 on the frames an operator drove, LeRobot's HIL-SERL name), and
LeRobot's ``timestamp``, ``frame_index``, ``episode_index``, ``index``, ``task_index``. The episodes table
adds ``session``, ``session_episode``, ``partial`` (cut short: not a complete episode), ``end_reason``,
``z_source``, ``episode_return`` and ``intervention_steps``. Written to a temporary folder beside OUT, then
renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pearl_robot.adapt.export_episodes import ExportError, Sources, episode_metadata, require
from pearl_robot.envs.robot_env import REACH_ERROR_UNIT_M

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
STATS = ("min", "max", "mean", "std", "count")
INTERVENTION = "complementary_info.is_intervention"


def export_lerobot(sources: Sources, out: str | os.PathLike[str]) -> Path:
    """Write the dataset to the folder ``out`` (which must not exist, or be empty); returns it."""
    pa = require("pyarrow", "lerobot")
    pq = require("pyarrow.parquet", "lerobot")
    out = Path(out)
    if any(s.get("sent_target") is None for e in sources.episodes for s in e.steps):
        raise ExportError("a dry run sent no joint targets, and a LeRobot action is one: use --format minari or hdf5")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} already exists: give --out a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write(pa, pq, sources, tmp)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def features(sources: Sources) -> dict[str, dict[str, Any]]:
    """The dataset's features (``info.json``): dtype, shape, names and, where one applies, the unit."""
    arm, joints = sources.arm_joint_names, list(sources.spec.joint_names)
    latent = [f"z{i}" for i in range(sources.latent_size)]

    def vector(names: list[str], unit: str) -> dict[str, Any]:
        return {"dtype": "float32", "shape": [len(names)], "names": names, "unit": unit}

    def scalar(dtype: str, unit: str | None = None) -> dict[str, Any]:
        return {"dtype": dtype, "shape": [1], "names": None, **({"unit": unit} if unit else {})}

    return {
        "observation.state": vector(arm, "rad"),
        "observation.velocity": vector(arm, "rad/s"),
        "observation.environment_state": vector(
            observation_names(sources),
            "by name: position rad, velocity rad/s, target_offset action scales, "
            f"end_effector and goal m, reach_error {REACH_ERROR_UNIT_M:g} m",
        ),
        "action": vector(joints, "rad"),
        "policy_action": vector(
            sources.action_names,
            "action scale (target increment / action_scale_rad)"
            if sources.action_names == arm
            else "[-1, 1]: the scripted controller's gain (log scale), blend, residuals (tasks.arm_control)",
        ),
        "next.reward": scalar("float32"),
        "next.done": scalar("bool"),
        "z": vector(latent, "latent"),
        "posterior_mean": vector(latent, "latent"),
        "posterior_std": vector(latent, "latent"),
        INTERVENTION: scalar("float32"),
        "timestamp": scalar("float32", "s"),
        "frame_index": scalar("int64"),
        "episode_index": scalar("int64"),
        "index": scalar("int64"),
        "task_index": scalar("int64"),
    }


def observation_names(sources: Sources) -> list[str]:
    """One name per value of the RobotEnv observation, in its layout (see ``RobotEnv``)."""
    arm = sources.arm_joint_names
    names = [f"{j}.position" for j in arm] + [f"{j}.velocity" for j in arm] + [f"{j}.target_offset" for j in arm]
    names += [f"end_effector.{a}" for a in "xyz"]
    if sources.env.task.goal_observed:
        names += [f"reach_error.{a}" for a in "xyz"] + [f"goal.{a}" for a in "xyz"]
    return names


def _task(meta: dict[str, Any]) -> str:
    task = f", test task {meta['task']}" if meta.get("task") is not None else ""
    return f"reach the goal ({meta.get('family') or 'arm'}{task}) adapting by PEARL posterior sampling"


def _frames(sources: Sources, fps: int, task_of: dict[str, int]) -> dict[str, np.ndarray]:
    n_arm, n_joints = len(sources.arm_joint_names), len(sources.spec.joint_names)
    parts: dict[str, list[np.ndarray]] = {}
    for index, episode in enumerate(sources.episodes):
        steps = len(episode.steps)
        obs = episode.observations[:-1]
        done = np.zeros(steps, dtype=bool)
        done[-1] = True
        columns = {
            "observation.state": obs[:, :n_arm],
            "observation.velocity": obs[:, n_arm : 2 * n_arm],
            "observation.environment_state": obs,
            "action": episode.column("sent_target", n_joints).astype(np.float32),
            "policy_action": episode.actions,
            "next.reward": episode.rewards.astype(np.float32),
            "next.done": done,
            **{k: np.repeat(v[None], steps, axis=0) for k, v in episode.latents(sources.latent_size).items()},
            INTERVENTION: episode.interventions.astype(np.float32),
            "timestamp": (np.arange(steps) / fps).astype(np.float32),
            "frame_index": np.arange(steps, dtype=np.int64),
            "episode_index": np.full(steps, index, dtype=np.int64),
            "task_index": np.full(steps, task_of[episode.session], dtype=np.int64),
        }
        for key, value in columns.items():
            parts.setdefault(key, []).append(value)
    frames = {key: np.concatenate(values) for key, values in parts.items()}
    frames["index"] = np.arange(sources.total_steps, dtype=np.int64)
    return frames


def _stats(values: np.ndarray) -> dict[str, list]:
    column = values.reshape(len(values), -1).astype(np.float64)
    return {
        "min": np.min(column, axis=0).tolist(),
        "max": np.max(column, axis=0).tolist(),
        "mean": np.mean(column, axis=0).tolist(),
        "std": np.std(column, axis=0).tolist(),
        "count": [len(values)],
    }


def _arrow_table(pa: Any, frames: dict[str, np.ndarray], spec: dict[str, dict[str, Any]]) -> Any:
    columns = {}
    for key, feature in spec.items():
        values = frames[key]
        if feature["shape"] == [1]:
            columns[key] = pa.array(values)
        else:
            columns[key] = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), feature["shape"][0])
    return pa.table(columns)


def _tasks_table(pa: Any, tasks: list[str]) -> Any:
    """``meta/tasks.parquet`` as pandas writes it (LeRobot reads it with ``pandas.read_parquet``): column
    ``task_index``, index ``task``."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    column = {"metadata": None}
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", **column},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", **column},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.0.0",
    }
    return table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)})


def _episodes_table(pa: Any, sources: Sources, frames: dict[str, np.ndarray], tasks: list[str]) -> Any:
    rows: dict[str, list] = {}
    start = 0
    for index, episode in enumerate(sources.episodes):
        stop = start + len(episode.steps)
        row = {
            "episode_index": index,
            "tasks": [tasks[int(frames["task_index"][start])]],
            "length": stop - start,
            "data/chunk_index": 0,
            "data/file_index": 0,
            "dataset_from_index": start,
            "dataset_to_index": stop,
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
            **episode_metadata(episode),
        }
        for key, values in frames.items():
            for stat, value in _stats(values[start:stop]).items():
                row[f"stats/{key}/{stat}"] = value
        for key, value in row.items():
            rows.setdefault(key, []).append(value)
        start = stop
    return pa.Table.from_pydict(rows)


def _write(pa: Any, pq: Any, sources: Sources, root: Path) -> None:
    fps = int(round(sources.spec.control_rate_hz))
    tasks = list(dict.fromkeys(_task(meta) for meta in sources.metas))
    task_of = {name: tasks.index(_task(meta)) for name, meta in zip(sources.sessions, sources.metas)}
    spec = features(sources)
    frames = _frames(sources, fps, task_of)
    for relative, table in (
        (DATA_PATH.format(chunk_index=0, file_index=0), _arrow_table(pa, frames, spec)),
        (EPISODES_PATH.format(chunk_index=0, file_index=0), _episodes_table(pa, sources, frames, tasks)),
        ("meta/tasks.parquet", _tasks_table(pa, tasks)),
    ):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / relative)
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": sources.spec.robot_id,
        "total_episodes": len(sources.episodes),
        "total_frames": sources.total_steps,
        "total_tasks": len(tasks),
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500,
        "fps": fps,
        "splits": {"train": f"0:{len(sources.episodes)}"},
        "data_path": DATA_PATH,
        "video_path": None,
        "features": spec,
    }
    meta = {"sessions": sources.sessions, "meta": sources.metas, "observation_names": observation_names(sources)}
    for name, content in (("info.json", info), ("stats.json", {k: _stats(v) for k, v in frames.items()})):
        (root / "meta" / name).write_text(json.dumps(content, indent=4) + "\n")
    (root / "meta" / "pearl_robot.json").write_text(json.dumps(meta, indent=2) + "\n")
