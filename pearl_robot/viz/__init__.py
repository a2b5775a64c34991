"""Live telemetry of a session (optional extra ``viz``: rerun-sdk) and replays of recorded ones.

Importing this package loads neither rerun nor MuJoCo: a sink is opened with ``open_telemetry`` (which
imports them), and without ``--viz`` the loops talk to ``NullTelemetry``.
"""

from pearl_robot.viz.sink import (
    INSTALL_HINT,
    NullTelemetry,
    Telemetry,
    VizTarget,
    VizUnavailable,
    add_viz_arguments,
    open_telemetry,
    parse_viz,
)

__all__ = [
    "INSTALL_HINT",
    "NullTelemetry",
    "Telemetry",
    "VizTarget",
    "VizUnavailable",
    "add_viz_arguments",
    "open_telemetry",
    "parse_viz",
]
