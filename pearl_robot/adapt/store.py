"""Session data written as it happens: an append-only JSON-lines log, one record per line, flushed to
the OS after every record. A crash or ``kill -9`` at any moment loses at most the record being written
(a torn last line is detected and dropped on reading); episode ends are fsynced to survive power loss.

Records (``kind``): ``episode_start`` (z, its source, the posterior it came from), ``step`` (measured
timestamp, observation, requested action, sent target, robot state, reward, next observation, faults),
``episode_end`` (return, safety events, loop timing, whether it was aborted).
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from pearl_robot.errors import PearlRobotError
from pearl_robot.io import atomic_write_json

LOG_NAME = "session.jsonl"
META_NAME = "meta.json"


class SessionStoreError(PearlRobotError):
    """The session folder cannot be written (disk full, permissions) or read."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class SessionData:
    meta: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    torn_records: int = 0

    def steps(self, episode: int | None = None) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == "step" and (episode is None or r["episode"] == episode)]

    def episode_ends(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == "episode_end"]

    def episode_starts(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == "episode_start"]

    @property
    def completed_episodes(self) -> int:
        """Episodes that ran to their end (an aborted one counts as done: it is not repeated)."""
        return len(self.episode_ends())


class SessionStore:
    """Appends records to ``SESSION/session.jsonl``; ``meta.json`` is written atomically."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._handle: IO[str] | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / LOG_NAME

    @property
    def meta_path(self) -> Path:
        return self.folder / META_NAME

    def exists(self) -> bool:
        return self.meta_path.exists()

    def create(self, meta: dict[str, Any]) -> None:
        if self.exists():
            raise SessionStoreError(f"{self.folder} already holds a session; use --resume to continue it")
        self._guard(lambda: self.folder.mkdir(parents=True, exist_ok=True))
        self._guard(lambda: atomic_write_json(self.meta_path, _jsonable(meta)))
        self._open()

    def resume(self) -> SessionData:
        data = self.load()
        if data.torn_records:
            # drop the torn tail so new records start on a line of their own
            good = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in data.records)
            self._guard(lambda: atomic_write_json(self.folder / "recovered.json", {"torn_records": data.torn_records}))
            self._guard(lambda: self.log_path.write_text(good))
        self._open()
        return data

    def load(self) -> SessionData:
        if not self.exists():
            raise SessionStoreError(f"{self.folder} holds no session (no {META_NAME})")
        meta = json.loads(self.meta_path.read_text())
        data = SessionData(meta)
        if not self.log_path.exists():
            return data
        with self.log_path.open("r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    data.torn_records += 1
                    break
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    data.torn_records += 1
                    continue
                if isinstance(record, dict) and "kind" in record:
                    data.records.append(record)
        return data

    def append(self, kind: str, sync: bool = False, **fields: Any) -> None:
        if self._handle is None:
            raise SessionStoreError("the session store is not open")
        line = json.dumps({"kind": kind, **_jsonable(fields)}, separators=(",", ":"), allow_nan=True) + "\n"

        def write() -> None:
            self._handle.write(line)
            self._handle.flush()
            if sync:
                os.fsync(self._handle.fileno())

        self._guard(write)

    def close(self) -> None:
        if self._handle is not None:
            try:
                self._handle.flush()
                os.fsync(self._handle.fileno())
            except OSError:
                pass
            finally:
                self._handle.close()
                self._handle = None

    def _open(self) -> None:
        self._handle = self._guard(lambda: self.log_path.open("a", encoding="utf-8"))

    def _guard(self, action):  # noqa: ANN001, ANN202 - small local helper
        try:
            return action()
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                message = f"disk full while writing {self.folder}; the data before it is intact"
                raise SessionStoreError(message) from None
            raise SessionStoreError(f"cannot write session data in {self.folder}: {exc.strerror or exc}") from None
