"""Export sessions as a Minari dataset (Farama's offline-RL format), written with minari's own
``create_dataset_from_buffers`` in RobotEnv's observation and action spaces, so ``minari.load_dataset(ID)``
opens it (with ``MINARI_DATASETS_PATH`` set to the folder it was written to).

Per episode: ``observations`` (T+1), ``actions`` (the policy's actions as recorded), ``rewards``,
``terminations`` (all false: a reach never terminates) and ``truncations`` (true at the last step: every
episode ends without a terminal state, at its horizon or cut short). ``infos`` follow Minari's layout of
T+1 rows, row 0 for the reset and row t+1 for step t: ``z``, ``posterior_mean`` and ``posterior_std`` (the
episode's latent and the posterior it was drawn from, on every row), and the step's measured
``timestamp``, ``sent_target``, ``position``, ``velocity``, ``effort`` (NaN on row 0) and ``intervention``
(the step was an operator's; false on row 0). Episode metadata (``dataset.storage.get_episode_metadata``):
``session``, ``session_episode``, ``partial``, ``end_reason``, ``z_source``, ``episode_return``,
``intervention_steps``; a partial episode is one cut short, never a complete one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pearl_robot.adapt.export_episodes import Episode, ExportError, Sources, episode_metadata, require


def dataset_id(minari: Any, name: str) -> str:
    """A Minari dataset id (``namespace/name-vN``) from ``name``: ``-v0`` is added when it has no version."""
    full = name if re.search(r"-v\d+$", name) else f"{name}-v0"
    try:
        minari.dataset.minari_dataset.parse_dataset_id(full)
    except (ValueError, TypeError):
        raise ExportError(
            f"'{name}' is not a Minari dataset id: (namespace/)name(-vN), letters, digits, - and _"
        ) from None
    return full


def export_minari(
    sources: Sources, name: str | None = None, root: str | os.PathLike[str] | None = None
) -> tuple[str, Path]:
    """Write the dataset; returns its id and folder. ``name``: its id (default ``sources.default_name``, with
    ``-v0``); ``root``: the Minari datasets folder (default Minari's own: ``MINARI_DATASETS_PATH`` or
    ``~/.minari/datasets``)."""
    minari = require("minari", "minari")
    ident = dataset_id(minari, name or sources.default_name)
    with _datasets_root(root):
        path = Path(minari.storage.get_dataset_path(ident))
        if path.exists():
            raise ExportError(f"a Minari dataset {ident} already exists ({path}): give --name with a new version")
        try:
            _create(minari, ident, sources)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
    return ident, path


def _create(minari: Any, ident: str, sources: Sources) -> None:
    with warnings.catch_warnings():
        # minari's reminders that no author, code link or gymnasium env id is given
        warnings.filterwarnings("ignore", category=UserWarning, module="minari")
        dataset = minari.create_dataset_from_buffers(
            ident,
            [_buffer(minari, i, e, sources.latent_size) for i, e in enumerate(sources.episodes)],
            observation_space=sources.env.observation_space,
            action_space=sources.env.action_space,
            algorithm_name="PEARL posterior sampling (pearl-robot adapt)",
            description=_description(sources),
            data_format="hdf5",
        )
    dataset.storage.update_episode_metadata([episode_metadata(e) for e in sources.episodes])
    dataset.storage.update_metadata({"pearl_robot": {"sessions": sources.sessions, "meta": sources.metas}})


@contextlib.contextmanager
def _datasets_root(root: str | os.PathLike[str] | None) -> Iterator[None]:
    if root is None:
        yield
        return
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())
    try:
        yield
    finally:
        if previous is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def _buffer(minari: Any, index: int, episode: Episode, latent_size: int) -> Any:
    steps = len(episode.steps)
    width = len(episode.steps[0]["position"])
    truncations = np.zeros(steps, dtype=bool)
    truncations[-1] = True
    infos = {key: np.repeat(value[None], steps + 1, axis=0) for key, value in episode.latents(latent_size).items()}
    infos["timestamp"] = np.concatenate([[np.nan], [s["timestamp"] for s in episode.steps]])
    for key in ("sent_target", "position", "velocity", "effort"):
        infos[key] = np.concatenate([np.full((1, width), np.nan), episode.column(key, width)])
    infos["intervention"] = np.concatenate([[False], episode.interventions])
    return minari.data_collector.EpisodeBuffer(
        id=index,
        observations=episode.observations,
        actions=episode.actions,
        rewards=episode.rewards,
        terminations=np.zeros(steps, dtype=bool),
        truncations=truncations,
        infos=infos,
    )


def _description(sources: Sources) -> str:
    partial = sum(e.partial for e in sources.episodes)
    return (
        f"pearl-robot adaptation on {sources.spec.robot_id}: {len(sources.episodes)} episodes "
        f"({partial} partial) from {len(sources.sessions)} session(s): {', '.join(sources.sessions)}. "
        "infos: z, posterior_mean, posterior_std, and the measured robot state; episode metadata: session, "
        "session_episode, partial, end_reason."
    )
