"""``pearl-robot replay``: replay a recorded session on the simulator; the sim-to-real gap per joint.

    pearl-robot replay sessions/s1 --robot sim --calibration calibration/openmanipulator_x.yaml

Every episode of SESSION starts from its recorded initial joint state and the simulator is sent the
targets the arm was sent, one recorded control period each (the median of the measured timestamps; the
hardware file's period for an unpaced simulated session). The simulated arm has the identified dynamics
of the calibration file (`pearl-robot calibrate sysid`): --calibration, else the session's own
calibration file, else calibration/<robot-id>.yaml; with none of them, or a file without identified
dynamics, the nominal model (and the report says so). Writes OUT/replay.json (tracking error per joint:
RMS and max in rad, per episode and overall) and OUT/replay.png (recorded vs simulated joint
trajectories, and their difference).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from pearl_robot.io import atomic_write_json
from pearl_robot.robot.spec import RobotSpec, load_spec

if TYPE_CHECKING:  # the simulator (MuJoCo) is imported by the command, not by `--help`
    from pearl_robot.adapt.replay import Replay
    from pearl_robot.robot.dynamics import ArmDynamics


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay a recorded session on the simulator: the sim-to-real tracking error per joint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("session", type=Path, metavar="SESSION", help="a session folder (`pearl-robot adapt --out`)")
    parser.add_argument("--robot", default="sim", help="where to replay: sim (the only choice; default)")
    parser.add_argument(
        "--calibration",
        default=None,
        metavar="FILE",
        help="calibration file whose identified dynamics the simulator uses (default: the session's, else "
        "calibration/<robot-id>.yaml; none: the nominal model)",
    )
    parser.add_argument(
        "--hardware", default=None, help="the arm's hardware YAML (default: the session's, else the shipped arm)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for replay.json and replay.png (default: SESSION)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pearl_robot.adapt.replay import ReplayError, load_session, replay

    if args.robot != "sim":
        raise ReplayError(f"replay runs on the simulator: --robot sim (got '{args.robot}')")
    data = load_session(args.session)
    spec = load_spec(args.hardware or data.meta.get("hardware"))
    dynamics, source = _dynamics(args.calibration, data.meta.get("calibration"), spec)
    result = replay(data, spec, dynamics, source, where=str(args.session))
    out = args.out or args.session
    out.mkdir(parents=True, exist_ok=True)
    summary = {"session": str(args.session), **result.summary()}
    atomic_write_json(out / "replay.json", summary)
    plot_replay(result, out / "replay.png", f"replay of {args.session} on sim")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_report(summary))
        print(f"wrote {out / 'replay.json'} and {out / 'replay.png'}")
    return 0


def _dynamics(explicit: str | None, recorded: str | None, spec: RobotSpec) -> tuple[ArmDynamics, str]:
    """The identified dynamics to replay with, and where they came from."""
    from pearl_robot.calibrate.model import default_path, load_calibration
    from pearl_robot.robot.dynamics import ArmDynamics

    path = explicit
    if path is None:
        candidates = [c for c in (recorded, default_path(spec.robot_id)) if c is not None]
        path = next((str(c) for c in candidates if Path(c).is_file()), None)
    if path is None:
        return ArmDynamics(), "nominal model (no calibration file; give --calibration FILE)"
    calibration = load_calibration(path)
    calibration.check_matches(spec)
    if calibration.dynamics is None:
        return ArmDynamics(), f"nominal model ({path} has no identified dynamics: run `pearl-robot calibrate sysid`)"
    return calibration.dynamics, f"identified dynamics from {path}"


def format_report(summary: dict) -> str:
    joints = summary["joint_names"]
    rows = [(f"{e['episode']}", e) for e in summary["episodes"]] + [("all", summary["overall"])]
    width = 17
    lines = [
        f"replay of {summary['session']}: {len(summary['episodes'])} episodes, {summary['overall']['steps']} steps "
        f"at {summary['period_s'] * 1e3:.1f} ms ({summary['period_source']})",
        f"simulator: {summary['dynamics_source']}",
        "tracking error, simulated - recorded joint position (rad): RMS / max",
        f"{'episode':>7} " + "".join(f"{name:>{width}}" for name in joints),
    ]
    for label, stats in rows:
        cells = "".join(f"{f'{r:.4f} / {m:.4f}':>{width}}" for r, m in zip(stats["rms_rad"], stats["max_rad"]))
        lines.append(f"{label:>7} {cells}")
    return "\n".join(lines)


def plot_replay(result: Replay, path: Path, title: str) -> Path:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.joint_names)
    fig, axes = plt.subplots(n, 2, figsize=(10, 1.7 * n + 0.8), sharex=True, squeeze=False)
    offset = 0.0
    for k, track in enumerate(result.episodes):
        t = track.time_s + offset
        for j in range(n):
            axes[j, 0].plot(t, track.recorded[:, j], color="C0", label="recorded" if k == 0 else None)
            axes[j, 0].plot(t, track.simulated[:, j], color="C1", ls="--", label="simulated" if k == 0 else None)
            axes[j, 1].plot(t, track.error[:, j] * 1e3, color="C3")
            if k:
                for ax in axes[j]:
                    ax.axvline(offset, color="0.7", lw=0.8)
        offset = float(t[-1]) + result.period_s
    for j, name in enumerate(result.joint_names):
        axes[j, 0].set_ylabel(f"{name}\n(rad)", fontsize=8)
        axes[j, 1].set_ylabel("sim - rec\n(mrad)", fontsize=8)
        for ax in axes[j]:
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    axes[-1, 0].set_xlabel("time (s; episodes back to back)")
    axes[-1, 1].set_xlabel("time (s)")
    overall = np.sqrt(np.mean(np.concatenate([t.error[1:] for t in result.episodes]) ** 2))
    fig.suptitle(f"{title}: overall RMS {overall * 1e3:.2f} mrad\n{result.dynamics_source}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
