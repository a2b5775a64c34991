"""A session's delay baseline, learned from many messages so that no one message can move it.

Server and client clocks are never compared directly. For each message the server sees ``delay = receive
time - t`` (the client's send time): the one-way latency plus the unknown offset between the two clocks.
The baseline is the best the link has shown; a command's age is its own delay minus the baseline.

- Every ``WINDOW_S`` of server time keeps the smallest delay seen in it; the baseline is the upper median of
  the last ``WINDOWS`` window minima. A ``t`` that is too late or too early changes only the window it
  arrives in, so lowering the baseline takes the same skew in more than half of the windows kept (and in at
  least two): no single message, nor any burst inside one window, can make later commands look late.
- The baseline falls to that median at once (a shorter link, clock drift one way) but rises at most
  ``DRIFT_ALLOWANCE`` s per second (clock drift the other way): a link that becomes slow keeps its
  commands expired instead of teaching the server that late is normal.
"""

from __future__ import annotations

import collections

WINDOW_S = 0.25
WINDOWS = 8
DRIFT_ALLOWANCE = 1e-4  # s/s


class DelayBaseline:
    def __init__(self, delay_s: float, now: float) -> None:
        # the first message (the hello) is a window of its own: a skewed second message cannot outvote it
        self._minima: collections.deque[float] = collections.deque([delay_s], maxlen=WINDOWS)
        self._window_start = now - WINDOW_S
        self._median = delay_s
        self._updated = now
        self.value = delay_s

    def observe(self, delay_s: float, now: float) -> float:
        """Account for one message's delay; returns the baseline."""
        minima = self._minima
        if now - self._window_start >= WINDOW_S:
            self._window_start = now
            minima.append(delay_s)
            self._median = sorted(minima)[len(minima) // 2]
        elif delay_s < minima[-1]:
            minima[-1] = delay_s
            self._median = sorted(minima)[len(minima) // 2]
        if self._median < self.value:
            self.value = self._median
        elif now > self._updated:  # (messages that waited in the inbox may be seen after later ones)
            self.value = min(self._median, self.value + DRIFT_ALLOWANCE * (now - self._updated))
        self._updated = max(self._updated, now)
        return self.value
