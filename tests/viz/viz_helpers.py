"""Shared by the telemetry tests: reading an .rrd back with rerun's own reader, and running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INDEXES = ("step", "wall_time", "episode", "log_time")

CLI = "import sys\nfrom pearl_robot.cli.main import main\nsys.exit(main(sys.argv[1:]))"
# `pearl-robot` with rerun made unimportable: what a machine without the `viz` extra sees
WITHOUT_RERUN = (
    "import sys; sys.modules['rerun'] = None; sys.modules['rerun_bindings'] = None\n"
    "from pearl_robot.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))"
)


@dataclass
class Entity:
    static: dict[str, Any] = field(default_factory=dict)  # component -> value
    rows: list[dict[str, Any]] = field(default_factory=list)  # temporal rows: indexes and components, by step

    def values(self, component: str = "Scalars:scalars") -> list[Any]:
        return [row[component] for row in self.rows if row.get(component) is not None]

    def steps(self) -> list[int]:
        return [row["step"] for row in self.rows if "step" in row]


def read_rrd(path: str | os.PathLike[str]) -> dict[str, Entity]:
    """Every entity of the first recording in ``path`` (paths without the leading '/')."""
    import rerun as rr

    entities: dict[str, Entity] = {}
    for chunk in rr.chunk.RrdReader(path).stream():
        batch = chunk.to_record_batch()
        entity = entities.setdefault(chunk.entity_path.lstrip("/"), Entity())
        names = [name for name in batch.schema.names if name != "rerun.controls.RowId"]
        columns = {name: _plain(batch.column(name)) for name in names}
        if chunk.is_static:
            for name, values in columns.items():
                entity.static[name] = values[-1]
            continue
        for i in range(chunk.num_rows):
            entity.rows.append({name: values[i] for name, values in columns.items()})
    for entity in entities.values():
        entity.rows.sort(key=lambda row: (row.get("step", -1), row.get("log_time")))
    return entities


def _plain(column: Any) -> list[Any]:
    """Python values; timestamps (wall_time, log_time) as float seconds."""
    import pyarrow as pa

    if pa.types.is_timestamp(column.type):
        return [None if v is None else v / 1e9 for v in column.cast(pa.int64()).to_pylist()]
    return column.to_pylist()


def run_cli(*args: str | Path, timeout: float = 180, code: str = CLI, env: dict | None = None):
    """`pearl-robot ARGS` in a fresh interpreter (``code``: the entry point), headless and without a terminal."""
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
        env={**os.environ, "CI": "true", **(env or {})},
    )  # fmt: skip
