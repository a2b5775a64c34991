"""Log lines that a peer can trigger at will (refusals), at most one per kind per interval."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """``warning(kind, msg, *args)`` logs the first line of each kind at once, then at most one per
    ``interval_s``, saying how many of that kind went unlogged in between."""

    def __init__(
        self, logger: logging.Logger, interval_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self._next: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warning(self, kind: str, msg: str, *args: object) -> None:
        now = self.clock()
        if now < self._next.get(kind, float("-inf")):
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return
        self._next[kind] = now + self.interval_s
        skipped = self._skipped.pop(kind, 0)
        if skipped:
            msg += f" ({skipped} more like it since the last such line)"
        self.logger.warning(msg, *args)
