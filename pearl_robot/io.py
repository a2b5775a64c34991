"""Atomic file writes: write a temporary file in the same folder, fsync, then rename over the target,
so a crash leaves either the old file or the new one, never half of one. The file gets the mode a plain
``open()`` would give it (0666 less the umask), not the 0600 of a temporary file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp_name)
        os.chmod(tmp_name, 0o666 & ~current_umask())
        fd = os.open(tmp_name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(target.parent)


def current_umask() -> int:
    """The process umask (read from /proc where it can be, so no other thread sees it change)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        write(handle)
    return Path(path)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_write_yaml(path: str | os.PathLike[str], data: Any) -> Path:
    return atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(path: str | os.PathLike[str], files: list[Path], **info: Any) -> Path:
    """Name ``files`` (all in the manifest's folder) with their sha256, atomically: written after them, the
    manifest is what makes them one set; a reader checks it with :func:`manifest_mismatches`."""
    listed = {Path(f).name: {"sha256": file_sha256(f), "bytes": Path(f).stat().st_size} for f in files}
    return atomic_write_json(path, {**info, "files": listed})


def manifest_mismatches(path: str | os.PathLike[str]) -> list[str] | None:
    """None where there is no manifest; else the listed files that are missing or differ from it."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        listed = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return [path.name]
    return [
        name
        for name, entry in listed.items()
        if not (path.parent / name).is_file()
        or (path.parent / name).stat().st_size != entry["bytes"]
        or file_sha256(path.parent / name) != entry["sha256"]
    ]
