"""A benchmark's progress line on stderr (stdout stays the JSON): rewritten in place on a terminal; under
CI=true, a pipe or a log file, a plain line every ``every_s`` seconds and no carriage returns."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

from pearl_robot.pearl.run_log import interactive


class Progress:
    """``bench loop: hog, loop  34 of ~60 s (57%)``; call ``advance`` between measurements, never inside."""

    def __init__(
        self,
        label: str,
        total_s: float,
        stream: IO[str] | None = None,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ) -> None:
        self.label, self.total_s, self.every_s, self.clock = label, max(total_s, 1e-9), every_s, clock
        self.stream = stream or sys.stderr
        self.tty = interactive(self.stream) if tty is None else tty
        self.done_s = 0.0
        self._last_print: float | None = None
        self._last_len = 0

    def advance(self, seconds: float, note: str = "") -> None:
        """``seconds`` more of the planned run are done (now at ``note``)."""
        self.done_s += seconds
        now = self.clock()
        if not self.tty and self._last_print is not None and now - self._last_print < self.every_s:
            return
        self._last_print = now
        self._write(self._text(note))

    def close(self, note: str = "done") -> None:
        self.done_s = self.total_s
        self._write(self._text(note))
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
            self._last_len = 0

    def _text(self, note: str) -> str:
        percent = min(100.0, 100.0 * self.done_s / self.total_s)
        where = f"{note}  " if note else ""
        return f"{self.label}: {where}{self.done_s:.0f} of ~{self.total_s:.0f} s ({percent:.0f}%)"

    def _write(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + text + " " * max(self._last_len - len(text), 0))
            self._last_len = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
