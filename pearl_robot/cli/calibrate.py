"""``pearl-robot calibrate joints|sysid``: make the simulator match the arm."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path

# the procedures (MuJoCo, SciPy, matplotlib) are imported by the commands that run them: `--help` stays light
from pearl_robot.cli.main import add_robot_arguments
from pearl_robot.errors import PearlRobotError
from pearl_robot.io import atomic_path, atomic_write_json
from pearl_robot.robot.registry import open_robot
from pearl_robot.robot.spec import load_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="joint offsets/ranges and system identification", description=__doc__
    )
    sub = parser.add_subparsers(dest="what", metavar="WHAT")

    joints = sub.add_parser(
        "joints",
        help="homing offset, direction and range of every joint (torque off, the operator moves the arm)",
        description="Walks you through the joint calibration with torque off and writes calibration/<robot-id>.yaml. "
        "The servos' LEDs show each step: all lit, the calibration pose; one lit, move that joint; all blinking, "
        "sweep every joint. Backend options go in the robot name (serial:/dev/ttyUSB0?timeout_margin_ms=50). "
        "Rehearse it on `pearl-robot virtual-bus --operator`.",
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
    joints.add_argument(
        "--pose",
        default=None,
        help="the calibration pose: comma-separated joint angles in radians, one per joint (default all zeros)",
    )
    joints.add_argument(
        "--cue-file",
        type=Path,
        default=None,
        help='show each step\'s cue in this file (JSON {"lit": [joints]}) instead of the servo LEDs: for arms '
        "without LEDs (Feetech), a second screen, or `virtual-bus --operator --operator-cues FILE`",
    )
    joints.set_defaults(func=run_joints)

    sysid = sub.add_parser(
        "sysid",
        help="fit the simulator's damping, friction loss, armature, gain, payload and latency to recorded motion",
        description="Holds the arm still (the encoder noise floor), excites each joint with safe chirps and steps "
        "(the fit), then all joints at once (held out: the validation), fits the MuJoCo model and the command "
        "latency, writes the fitted parameters to the calibration file (--calibration, default "
        "calibration/<robot-id>.yaml: the one the arm runs on), a report (sysid.png), the figures (sysid.json) and "
        "the recording. See docs/servo_model.md.",
    )
    add_robot_arguments(sysid)
    sysid.add_argument("--out", type=Path, default=Path("runs/sysid"), help="folder for the plot and the recording")
    sysid.add_argument("--seconds-per-joint", type=float, default=6.0, help="excitation length (default %(default)s)")
    sysid.add_argument(
        "--validation-seconds", type=float, default=None, help="held-out excitation (default 2x --seconds-per-joint)"
    )
    sysid.add_argument(
        "--latency-ms", type=float, default=None, help="a known command latency, kept fixed (default: estimated)"
    )
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
    from pearl_robot.calibrate.joints import (
        CueFile,
        JointCalibrationProcedure,
        JointCalibrationSettings,
        led_indicator,
        parse_pose,
    )
    from pearl_robot.calibrate.model import Calibration, default_path

    spec = load_spec(args.hardware)
    pose = parse_pose(args.pose, spec)
    interactive = not args.non_interactive
    if interactive and not sys.stdin.isatty():
        raise PearlRobotError("no terminal to answer prompts on; run with --non-interactive for scripted setups")
    # the identity calibration: raw angles (no offsets, no reversal), backend options from the robot name
    raw = open_robot(args.robot, spec, calibration=Calibration.identity(spec), safe=False)
    settings = JointCalibrationSettings(range_sweep_s=args.range_seconds, step_timeout_s=args.timeout)
    print(f"Calibrating {spec.robot_id} on {args.robot} ({spec.num_joints} joints). Torque stays off throughout.")
    with raw:
        cues = CueFile(args.cue_file) if args.cue_file is not None else led_indicator(raw)
        if cues is not None:
            where = f"The cue file {args.cue_file}" if args.cue_file is not None else "The servo LEDs"
            print(f"{where} shows each step: all lit = the calibration pose, one lit = move that joint, all")
            print("blinking = sweep every joint through its range.")
        procedure = JointCalibrationProcedure(raw, spec, TerminalOperator(interactive), settings, pose, cues)
        calibration = procedure.run()
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
    import numpy as np

    from pearl_robot.calibrate.model import Calibration, default_path, load_calibration
    from pearl_robot.calibrate.sysid import identify
    from pearl_robot.calibrate.sysid_report import write_report

    spec = load_spec(args.hardware)
    calibration_path = args.calibration
    robot = open_robot(args.robot, spec, calibration=calibration_path)
    print(
        f"system identification on {args.robot}: a still hold, {args.seconds_per_joint:g} s of chirps and steps per "
        "joint (fitted), then all joints at once (held out)"
    )
    latency_s = None if args.latency_ms is None else args.latency_ms / 1000
    with robot:
        robot.enable()
        result = identify(
            robot,
            spec,
            seconds_per_joint=args.seconds_per_joint,
            validation_s=args.validation_seconds,
            latency_s=latency_s,
            on_step=_progress(),
        )
    args.out.mkdir(parents=True, exist_ok=True)
    fitted = result.fit_recording
    with atomic_path(args.out / "recording.npz") as tmp:
        np.savez(tmp.open("wb"), sent=fitted.sent, position=fitted.position, velocity=fitted.velocity)
    whole = result.recording
    with atomic_path(args.out / "validation.npz") as tmp:
        np.savez(
            tmp.open("wb"), sent=whole.sent, position=whole.position, velocity=whole.velocity,
            validation_from_row=result.fit_periods + 1,
        )  # fmt: skip
    atomic_write_json(args.out / "sysid.json", result.to_dict())
    write_report(result, spec, str(args.out / "sysid.png"))
    target = calibration_path or default_path(spec.robot_id)
    calibration = load_calibration(target) if Path(target).exists() else Calibration.identity(spec)
    calibration.dynamics = result.dynamics
    figures = result.to_dict()
    keys = ("rms_before_rad", "rms_after_rad", "validation_rms_rad", "noise_floor_rad", "validation_ratio")
    calibration.fit = {key: figures[key] for key in (*keys, "latency_s", "latency_estimated", "at_bounds")}
    calibration.fit.update(steps=len(whole.sent), evaluations=result.evaluations)
    calibration.save(target)
    for line in result.summary():
        print(line)
    for warning in result.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {target}, {args.out / 'sysid.png'} and {args.out / 'sysid.json'}")
    return 0


def _progress():
    def show(i: int, n: int) -> None:
        if (i + 1) % max(1, n // 10) == 0:
            print(f"  recorded {i + 1}/{n} steps", flush=True)

    return show
