"""What a training run writes and shows: ``progress.csv`` (deterministic numbers only, one row per
iteration), ``timing.csv`` (wall-clock times, kept apart so two runs with one seed give identical
progress files), TensorBoard event files, and a progress bar that degrades to plain lines when stdout is
not a terminal or ``CI`` is set."""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from pearl_robot.io import atomic_path


def read_progress(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


class CsvLog:
    """An append-only CSV with a fixed header; ``truncate_after`` drops rows past an iteration (resume)."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path, self.columns = path, columns
        if not path.exists():
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(columns)

    def truncate_to(self, iterations: int) -> None:
        """Keep the rows of iterations ``< iterations``."""
        rows = [r for r in read_progress(self.path) if int(r["iteration"]) < iterations]
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([_format(row.get(c)) for c in self.columns])


class TensorBoardLog:
    """Scalars to TensorBoard (``torch.utils.tensorboard``); a no-op if disabled."""

    def __init__(self, log_dir: Path | None, purge_step: int | None = None) -> None:
        self.writer = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def scalars(self, row: dict[str, Any], step: int, prefix: str = "") -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def interactive(stream: IO[str]) -> bool:
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return not ci and hasattr(stream, "isatty") and stream.isatty()


class ProgressBar:
    """``[####----] it 12/500  env 24,000  return -8.31  1.9 s/it  260.4 grad steps/s``; plain lines when
    stdout is not a TTY or CI is set."""

    def __init__(self, total: int, stream: IO[str] | None = None, width: int = 24, quiet: bool = False) -> None:
        self.total, self.width, self.quiet = total, width, quiet
        self.stream = stream or sys.stdout
        self.tty = interactive(self.stream)
        self.start = time.monotonic()
        self._last_len = 0

    def update(self, iteration: int, env_steps: int, recent_return: float | None, sec_per_it: float,
               grad_steps_per_s: float, extra: str = "") -> None:  # fmt: skip
        if self.quiet:
            return
        done = iteration + 1
        ret = "  n/a" if recent_return is None or not math.isfinite(recent_return) else f"{recent_return:8.2f}"
        text = (
            f"it {done}/{self.total}  env {env_steps:,}  return {ret}  {sec_per_it:.2f} s/it  "
            f"{grad_steps_per_s:,.1f} grad steps/s"
        )
        if extra:
            text += f"  {extra}"
        if self.tty:
            filled = int(self.width * done / max(self.total, 1))
            line = f"[{'#' * filled}{'-' * (self.width - filled)}] {text}"
            pad = " " * max(self._last_len - len(line), 0)
            self.stream.write("\r" + line + pad)
            self._last_len = len(line)
            if done >= self.total:
                self.stream.write("\n")
                self._last_len = 0
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self.tty and self._last_len:
            self.stream.write("\n")
            self._last_len = 0
        self.stream.write(text + "\n")
        self.stream.flush()
