"""A recorded session (session.jsonl) played into a telemetry sink: the view a live session had.

Records go in their logged order, through the same calls the session makes live. What the log does not
hold is derived: wall time from each episode's start (``wall_time``) plus the recorded state timestamps
(monotonic), and the period error from the interval between consecutive steps' timestamps less one
period (the loop's own figure per episode, ``period_error_p99_ms``, is in the episode's end record); an
unpaced run (``--fast``: steps closer than half a period) has no period to miss and logs none.
Safety events are known per episode (``safety_events``), so they appear at each episode's end.
"""

from __future__ import annotations

from typing import Any

from pearl_robot.adapt.store import SessionData
from pearl_robot.viz.sink import Telemetry


def replay_session(data: SessionData, telemetry: Telemetry, period_s: float) -> int:
    """Feed every record of ``data`` to ``telemetry``; returns the number of steps played."""
    steps = 0
    start_wall: float | None = None
    first_ts: float | None = None
    last_ts: float | None = None
    wall: float | None = None
    goal: Any = None
    for record in data.records:
        kind = record["kind"]
        if kind == "episode_start":
            start_wall = record.get("wall_time")
            first_ts = last_ts = None
            goal = record.get("goal")
            telemetry.on_episode_start(record)
        elif kind == "step":
            ts = record.get("timestamp")
            period_error_ms = None
            if ts is not None:
                if first_ts is None:
                    first_ts = ts - period_s  # the first step comes one period after the reset
                elif last_ts is not None and ts - last_ts >= period_s / 2:  # shorter: an unpaced (--fast) run
                    period_error_ms = (ts - last_ts - period_s) * 1e3
                last_ts = ts
            wall = None if start_wall is None or ts is None else start_wall + (ts - first_ts)
            telemetry.on_step(
                record["episode"], record["t"], record["position"], record.get("sent_target"), record.get("reward"),
                goal=goal, faults=record.get("faults") or (), period_error_ms=period_error_ms, wall_time=wall,
                intervention=bool(record.get("intervention", False)),
            )  # fmt: skip
            steps += 1
        elif kind == "episode_end":
            telemetry.on_episode_end({**record, "wall_time": wall if wall is not None else start_wall})
    return steps
