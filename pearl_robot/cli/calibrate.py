"""``pearl-robot calibrate joints|sysid``: make the simulator match the arm."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path

import numpy as np

from pearl_robot.calibrate.joints import JointCalibrationProcedure, JointCalibrationSettings
from pearl_robot.calibrate.model import Calibration, default_path, load_calibration
from pearl_robot.calibrate.sysid import excitation, fit_dynamics, plot_fit, record
from pearl_robot.cli.main import add_robot_arguments
from pearl_robot.errors import PearlRobotError
from pearl_robot.io import atomic_path
from pearl_robot.robot.registry import backend_class, open_robot, parse_robot_name
from pearl_robot.robot.spec import load_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="joint offsets/ranges and system identification", description=__doc__
    )
    sub = parser.add_subparsers(dest="what", metavar="WHAT")

    joints = sub.add_parser(
        "joints",
        help="homing offset, direction and range of every joint (torque off, the operator moves the arm)",
        description="Walks you through the joint calibration with torque off and writes calibration/<robot-id>.yaml.",
    )
    add_robot_arguments(joints, default_robot="mock", calibration=False)
    joints.add_argument("--out", type=Path, default=None, help="calibration file (default calibration/<robot-id>.yaml)")
    joints.add_argument(
        "--non-interactive",
        action="store_true",
        help="no prompts to confirm: the pose is taken as the arm rests, each move ends when the joint comes to rest",
    )
    joints.add_argument(
        "--range-seconds", type=float, default=10.0, help="length of the range sweep (default %(default)s)"
    )
    joints.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each move (default %(default)s)"
    )
    joints.set_defaults(func=run_joints)

    sysid = sub.add_parser(
        "sysid",
        help="fit the simulator's damping, friction loss, armature, gain and payload to recorded motion",
        description="Excites each joint with safe chirps and steps, fits the MuJoCo model, writes the fitted "
        "parameters to the calibration file (--calibration, default calibration/<robot-id>.yaml: the one the "
        "arm runs on) and plots recorded vs simulated trajectories.",
    )
    add_robot_arguments(sysid)
    sysid.add_argument("--out", type=Path, default=Path("runs/sysid"), help="folder for the plot and the recording")
    sysid.add_argument("--seconds-per-joint", type=float, default=6.0, help="excitation length (default %(default)s)")
    sysid.add_argument("--latency-ms", type=float, default=0.0, help="known control latency to simulate")
    sysid.set_defaults(func=run_sysid)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


class TerminalOperator:
    """Prints each instruction; confirmation is Enter on the terminal, read in a thread by the CLI."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def instruct(self, message: str):
        if not self.interactive:
            print(f"  -> {message}", flush=True)
            return None
        confirmed = threading.Event()

        def ask() -> None:
            with contextlib.suppress(EOFError):
                input(f"  -> {message} [Enter when done] ")
            confirmed.set()

        threading.Thread(target=ask, daemon=True).start()
        return confirmed.is_set


def run_joints(args: argparse.Namespace) -> int:
    spec = load_spec(args.hardware)
    scheme, address = parse_robot_name(args.robot)
    interactive = not args.non_interactive
    if interactive and not sys.stdin.isatty():
        raise PearlRobotError("no terminal to answer prompts on; run with --non-interactive for scripted setups")
    raw = backend_class(scheme).from_address(address, spec)  # raw angles, no calibration, torque stays off
    settings = JointCalibrationSettings(range_sweep_s=args.range_seconds, step_timeout_s=args.timeout)
    print(f"Calibrating {spec.robot_id} on {args.robot} ({spec.num_joints} joints). Torque stays off throughout.")
    with raw:
        calibration = JointCalibrationProcedure(raw, spec, TerminalOperator(interactive), settings).run()
    path = calibration.save(args.out or default_path(spec.robot_id))
    for name, cal in calibration.joints.items():
        print(
            f"  {name:10s} offset {cal.offset_rad:+.4f} rad  direction {cal.direction:+d}  "
            f"range [{cal.min_rad:+.3f}, {cal.max_rad:+.3f}] rad"
        )
    print(f"wrote {path}")
    hardware = f" --hardware {args.hardware}" if args.hardware else ""
    print(f"next: pearl-robot calibrate sysid --robot {args.robot}{hardware} --calibration {path}")
    return 0


def run_sysid(args: argparse.Namespace) -> int:
    spec = load_spec(args.hardware)
    calibration_path = args.calibration
    robot = open_robot(args.robot, spec, calibration=calibration_path)
    targets, excited = excitation(spec, args.seconds_per_joint)
    print(
        f"system identification on {args.robot}: {len(targets)} steps ({len(targets) * spec.period_s:.0f} s) of "
        "chirps and steps, one joint at a time"
    )
    with robot:
        robot.enable()
        recording = record(robot, targets, on_step=_progress(len(targets)))
        robot.write(robot.read().position)
    fit = fit_dynamics(spec, recording, excited, latency_s=args.latency_ms / 1000)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "recording.npz") as tmp:
        np.savez(tmp.open("wb"), sent=recording.sent, position=recording.position, velocity=recording.velocity)
    plot_fit(recording, fit, spec, str(args.out / "sysid.png"))
    target = calibration_path or default_path(spec.robot_id)
    calibration = load_calibration(target) if Path(target).exists() else Calibration.identity(spec)
    calibration.dynamics = fit.dynamics
    calibration.fit = {
        "rms_before_rad": fit.rms_before_rad,
        "rms_after_rad": fit.rms_after_rad,
        "steps": len(targets),
        "evaluations": fit.evaluations,
    }
    calibration.save(target)
    print(
        f"trajectory RMS error: {fit.rms_before_rad * 1e3:.2f} mrad (nominal model) -> "
        f"{fit.rms_after_rad * 1e3:.2f} mrad (fitted)"
    )
    for field in ("gain_scale", "damping_scale", "frictionloss_scale", "armature_scale"):
        values = np.asarray(getattr(fit.dynamics, field))[spec.arm_joint_indices]
        print(f"  {field:20s} {np.round(values, 3).tolist()}")
    print(f"  payload_mass_kg      {fit.dynamics.payload_mass_kg:.3f}")
    print(f"wrote {target} and {args.out / 'sysid.png'}")
    return 0


def _progress(total: int):
    def show(i: int, n: int) -> None:
        if (i + 1) % max(1, total // 10) == 0:
            print(f"  recorded {i + 1}/{n} steps", flush=True)

    return show
