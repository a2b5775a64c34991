"""The telemetry interface the control loops call, its no-op sink, and the ``--viz`` option.

This module is light (no rerun, no MuJoCo): the loops import it unconditionally, and ``--help`` builds
the options. ``open_telemetry`` imports the rerun sink only when one is asked for.

Modes of ``--viz``:

- ``live``: a native viewer on this machine (spawned, or the one already listening on port 9876);
- ``live:URL``: a viewer or server elsewhere (``rerun+http://HOST:PORT/proxy``, or ``HOST:PORT``);
- ``save:PATH``: an .rrd file (headless; open it later with ``rerun PATH`` or ``pearl-robot view``);
- ``serve[:PORT]``: a Rerun server with a web viewer on PORT (default 9090), on loopback, in a child
  process (headless; open the printed URL, through an SSH tunnel from elsewhere); it ends with the command.

``--viz-memory SIZE`` bounds what telemetry may hold in memory: the viewer's limit (``live``: it drops the
oldest data beyond it), the server's buffer for late viewers (``serve``: the same); the SDK's
own batch is flushed at a sixteenth of it (at most 4 MiB) and at least four times a second.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pearl_robot.errors import PearlRobotError

INSTALL_HINT = "pip install 'pearl-robot[viz]'"
DEFAULT_MEMORY = "256MiB"
DEFAULT_LIVE_PORT = 9876
DEFAULT_WEB_PORT = 9090
MODES = ("live", "save", "serve")
ROUTINE_EVENTS = frozenset({"keepalive"})  # robot bookkeeping, not safety events

_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


class VizUnavailable(PearlRobotError):
    """--viz was given but rerun-sdk is not installed."""


@dataclass(frozen=True)
class VizTarget:
    mode: str  # one of MODES
    memory_limit: str = DEFAULT_MEMORY
    path: Path | None = None  # save
    url: str | None = None  # live:URL
    port: int | None = None  # serve:PORT

    @property
    def memory_bytes(self) -> int:
        return memory_bytes(self.memory_limit)


def memory_bytes(text: str) -> int:
    """``256MiB``, ``1GB``, ``800kb`` -> bytes (a percentage, which the viewer also takes, counts as 1 GiB here)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b|%)\s*", text.lower())
    if not match:
        raise PearlRobotError(f"--viz-memory: '{text}' is not a size (e.g. 256MiB, 1GB, 50%)")
    value, unit = float(match.group(1)), match.group(2)
    if unit == "%":
        if not 0 < value <= 100:
            raise PearlRobotError(f"--viz-memory: '{text}' must be a percentage in (0, 100]")
        return 2**30
    size = int(value * _UNITS[unit])
    if size < 2**20:
        raise PearlRobotError(f"--viz-memory: '{text}' is below 1 MiB, too little to hold the twin's geometry")
    return size


def parse_viz(text: str | None, memory: str = DEFAULT_MEMORY) -> VizTarget | None:
    """The ``--viz`` option's value -> a VizTarget (None: no telemetry); a bad value is one clear line."""
    if text is None:
        return None
    memory_bytes(memory)  # validate before anything starts
    mode, _, rest = text.partition(":")
    if mode == "live":
        if rest and "://" not in rest:
            rest = f"rerun+http://{rest}/proxy"
        return VizTarget("live", memory, url=rest or None)
    if mode == "save":
        if not rest:
            raise PearlRobotError("--viz save:PATH needs a file name (e.g. save:session.rrd)")
        path = Path(rest)
        if path.suffix != ".rrd":
            raise PearlRobotError(f"--viz save:{rest}: the file must end in .rrd")
        return VizTarget("save", memory, path=path)
    if mode == "serve":
        if rest and not (rest.isdigit() and 0 < int(rest) < 65536):
            raise PearlRobotError(f"--viz serve:{rest}: the port must be a number in 1..65535")
        return VizTarget("serve", memory, port=int(rest) if rest else None)
    raise PearlRobotError(f"--viz '{text}': expected live, live:URL, save:PATH.rrd or serve[:PORT]")


def add_viz_arguments(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument(
        "--viz",
        default=default,
        metavar="MODE",
        help="live telemetry and a digital twin in Rerun: live (a viewer here), live:URL, save:PATH.rrd (headless) "
        f"or serve[:PORT] (a web viewer); needs {INSTALL_HINT}" + (f" (default: {default})" if default else ""),
    )
    parser.add_argument(
        "--viz-memory",
        default=DEFAULT_MEMORY,
        metavar="SIZE",
        help="memory budget of the telemetry (viewer and server drop the oldest data beyond it; default %(default)s)",
    )


class Telemetry:
    """The no-op sink, and the interface every sink has. Methods take what the session records already hold
    (``episode_start`` and ``episode_end`` records as mappings), so a replay feeds a sink the same way."""

    enabled = False

    def on_episode_start(self, record: Mapping[str, Any]) -> None:
        """The episode's posterior (``posterior_mean``, ``posterior_var``), ``z_source`` and ``goal``."""

    def on_step(
        self,
        episode: int,
        t: int,
        position: np.ndarray,
        sent_target: np.ndarray | None = None,
        reward: float | None = None,
        *,
        goal: np.ndarray | None = None,
        faults: Sequence[str] = (),
        period_error_ms: float | None = None,
        wall_time: float | None = None,
        intervention: bool = False,
    ) -> None:
        """One control step: measured joint positions (rad, spec order) and what was sent."""

    def on_env_step(
        self, env: Any, episode: int, t: int, reward: float, info: Mapping[str, Any], intervention: bool = False
    ) -> None:
        """``on_step`` from a RobotEnv after ``env.step``, plus the safety events its robot counted since;
        ``intervention``: the operator drove this step (teleop take-over)."""

    def on_episode_end(self, record: Mapping[str, Any]) -> None:
        """Return, safety event counts, loop timing and how the episode ended."""

    def on_safety_event(self, kind: str, detail: str = "", count: int = 1) -> None:
        """A cap hit, a fault, an e-stop, a hold."""

    def close(self) -> None:
        """Flush and close; never raises."""

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullTelemetry(Telemetry):
    """No --viz: every call is a no-op."""


def require_viz(target: VizTarget | None) -> None:
    """Fail early, in one line, when telemetry is asked for and rerun-sdk is not installed."""
    if target is None:
        return
    try:
        import rerun  # noqa: F401 - the optional extra; imported here so that nothing else loads it
    except ImportError:
        raise VizUnavailable(f"--viz needs the optional extra 'viz' (rerun-sdk): {INSTALL_HINT}") from None


def open_telemetry(target: VizTarget | None, spec: Any, name: str = "pearl-robot", first_step: int = 0) -> Telemetry:
    """A sink for ``target`` on the arm ``spec`` (a RobotSpec); ``NullTelemetry`` when no target is given.
    Without rerun-sdk installed: ``VizUnavailable`` with the one line that says how to install it."""
    if target is None:
        return NullTelemetry()
    require_viz(target)
    from pearl_robot.viz.rerun_sink import RerunTelemetry

    return RerunTelemetry(target, spec, name=name, first_step=first_step)
