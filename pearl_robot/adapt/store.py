"""Session data written as it happens: an append-only JSON-lines log, one record per line, handed to the
OS with one unbuffered write per record. A crash or ``kill -9`` at any moment loses at most the record
being written (a torn last line is detected and dropped on reading); episode ends are fsynced to survive
power loss, and after each one ``meta.json`` notes how long the log is (``log``: bytes and records).

The log is never rewritten in place: a torn tail is dropped by writing the good part aside, fsyncing it
and renaming it over the log (``recovered.json`` says what was dropped, written before the rename); a
resume also removes the temporary files of atomic writes a crash cut short. A log
shorter than meta.json or recovered.json say it was is an error (:class:`SessionStoreError`), never a
fresh start.

Records (``kind``): ``episode_start`` (z, its source, the posterior it came from, the robot options),
``step`` (measured timestamp, observation, requested action, sent target, robot state, reward, next
observation, faults, ``intervention``: an operator drove it, and then ``requested_action`` is the action that
commands what was sent and ``policy_action`` the policy's proposal; older logs have no ``intervention``:
read it as false), ``episode_end`` (return, safety events, loop timing, whether it was aborted and
whether it is ``partial``: cut short, so its return is not comparable with full episodes').
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from pearl_robot.errors import PearlRobotError
from pearl_robot.io import atomic_write, atomic_write_json

LOG_NAME = "session.jsonl"
META_NAME = "meta.json"
RECOVERED_NAME = "recovered.json"

T = TypeVar("T")


class SessionStoreError(PearlRobotError):
    """The session folder cannot be written (disk full, permissions) or read, or its log was cut short."""


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


def is_partial(end: dict[str, Any]) -> bool:
    """An episode cut short (stop, fault, crash): its return is not comparable with full episodes'."""
    return bool(end.get("partial", end.get("aborted", False)))


@dataclass
class SessionData:
    meta: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    torn_records: int = 0
    log_bytes: int = 0  # the log up to its last complete line

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
        self._handle: IO[bytes] | None = None
        self._meta: dict[str, Any] = {}
        self._log = {"bytes": 0, "records": 0}

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
        created = not self.folder.exists()
        self._guard(lambda: self.folder.mkdir(parents=True, exist_ok=True))
        self._meta = {**_jsonable(meta), "log": dict(self._log)}
        try:
            self._guard(lambda: atomic_write_json(self.meta_path, self._meta))
            self._open()
        except SessionStoreError:
            if created:
                self._remove()
            raise

    def discard(self) -> None:
        """Remove a session that recorded nothing (a refused start): the folder is as if never created."""
        data = self.load()
        if data.records or data.torn_records:
            raise SessionStoreError(f"{self.folder} holds records; it is not discarded")
        self._remove()

    def _remove(self) -> None:
        self.close()
        for path in (self.log_path, self.meta_path):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only if nothing else is there

    def resume(self) -> SessionData:
        data = self.load()
        self._remove_stale_temporaries()
        size = self.log_path.stat().st_size if self.log_path.exists() else 0
        if size > data.log_bytes:
            recoveries = self._recoveries()
            recoveries.append(
                {"torn_records": data.torn_records, "dropped_bytes": size - data.log_bytes,
                 "kept_bytes": data.log_bytes, "kept_records": len(data.records), "wall_time": time.time()}
            )  # fmt: skip
            self._guard(lambda: atomic_write_json(self.folder / RECOVERED_NAME, {"recoveries": recoveries}))
            self._drop_torn_tail(data.log_bytes)
        self._meta = data.meta
        self._log = {"bytes": data.log_bytes, "records": len(data.records)}
        self._open()
        return data

    def load(self) -> SessionData:
        if not self.exists():
            raise SessionStoreError(f"{self.folder} holds no session (no {META_NAME})")
        meta = json.loads(self.meta_path.read_text())
        data = SessionData(meta)
        raw = self.log_path.read_bytes() if self.log_path.exists() else b""
        data.log_bytes = raw.rfind(b"\n") + 1
        data.torn_records = int(data.log_bytes < len(raw))
        for line in raw[: data.log_bytes].split(b"\n")[:-1]:
            try:
                record = json.loads(line.decode("utf-8", errors="replace"))
            except json.JSONDecodeError:
                data.torn_records += 1
                continue
            if isinstance(record, dict) and "kind" in record:
                data.records.append(record)
        self._check_length(data, len(raw))
        return data

    def append(self, kind: str, sync: bool = False, **fields: Any) -> None:
        if self._handle is None:
            raise SessionStoreError("the session store is not open")
        line = (json.dumps({"kind": kind, **_jsonable(fields)}, separators=(",", ":"), allow_nan=True) + "\n").encode()

        def write() -> None:
            view = memoryview(line)
            while view:
                view = view[self._handle.write(view) :]
            if sync:
                os.fsync(self._handle.fileno())

        self._guard(write)
        self._log["bytes"] += len(line)
        self._log["records"] += 1
        if sync:  # what is fsynced may be promised: a shorter log later is an error, not a fresh start
            self._meta["log"] = dict(self._log)
            self._guard(lambda: atomic_write_json(self.meta_path, self._meta))

    def close(self) -> None:
        """Sync and close; never raises (a full disk has already been reported by the write that hit it)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                os.fsync(handle.fileno())
            except OSError:
                pass
            finally:
                handle.close()  # unbuffered: nothing left to flush, so closing cannot fail again

    def _open(self) -> None:
        self._handle = self._guard(lambda: self.log_path.open("ab", buffering=0))

    def _remove_stale_temporaries(self) -> None:
        """Atomic writes cut short by a crash (``.NAME.XXXX.tmp``, see pearl_robot.io) in the session folder."""
        for path in self.folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                path.unlink()

    def _recoveries(self) -> list[dict[str, Any]]:
        path = self.folder / RECOVERED_NAME
        return json.loads(path.read_text()).get("recoveries", []) if path.exists() else []

    def _drop_torn_tail(self, keep: int) -> None:
        with self.log_path.open("rb") as source:
            good = source.read(keep)
        self._guard(lambda: atomic_write(self.log_path, lambda handle: handle.write(good)))

    def _check_length(self, data: SessionData, size: int) -> None:
        promised = data.meta.get("log", {})
        recoveries = self._recoveries()
        floor = max([promised.get("bytes", 0), *(r["kept_bytes"] for r in recoveries[-1:])])
        if size < floor:
            records = max([promised.get("records", 0), *(r["kept_records"] for r in recoveries[-1:])])
            raise SessionStoreError(
                f"{self.log_path} holds {size} bytes but the session had written {floor} ({records} records, per "
                f"{META_NAME} and {RECOVERED_NAME}): the log was cut short or replaced; nothing was changed "
                f"(restore it from a copy, or start a new session with --out)"
            )

    def _guard(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                message = f"disk full while writing {self.folder}; the data before it is intact"
                raise SessionStoreError(message) from None
            raise SessionStoreError(f"cannot write session data in {self.folder}: {exc.strerror or exc}") from None


def read_session(folder: str | os.PathLike[str], required: tuple[str, ...] = ()) -> SessionData:
    """A session's records for a reader (replay, export): a missing folder, corrupt metadata, no steps or
    a step record without one of ``required`` is a ``SessionStoreError`` naming the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SessionStoreError(f"{folder}: no such session folder")
    try:
        data = SessionStore(folder).load()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SessionStoreError(f"{folder}: corrupt session (meta.json: {exc})") from None
    if not isinstance(data.meta, dict):
        raise SessionStoreError(f"{folder}: corrupt session (meta.json is not a mapping)")
    steps = data.steps()
    if not steps:
        raise SessionStoreError(f"{folder}: the session has no recorded steps")
    for i, step in enumerate(steps):
        missing = [key for key in required if step.get(key) is None]
        if missing:
            raise SessionStoreError(f"{folder}: corrupt session (step record {i} has no {', '.join(missing)})")
    return data
