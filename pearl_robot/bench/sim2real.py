"""Calibration, system identification and the sim-to-real gap on a realistic virtual arm.

The arm is the demo's held-out one (test task ``--task`` of arm-dynamics-small, plus the serial link's
latency), its servos mounted at offsets the software is not told (one of them reversed), with
``--noise-ticks`` of encoder noise, behind a stock USB adapter (16 ms) with factory Return Delay
Times, and a scripted operator's hand that follows the calibration procedure. Everything goes through
the real serial stack on a pty, with the commands a user runs:

1. ``calibrate joints --non-interactive``: offset error per joint in ticks (goal <= 1), direction
   errors (goal 0);
2. ``calibrate sysid``: per-parameter error against the arm's true dynamics (identified / true),
   latency error against the hidden latency plus the adapter's (goal <= 10 ms; see
   ``parameter_errors``), validation RMS as a multiple of the encoder-noise floor (goal <= 2x);
3. a recorded session (a scripted excitation, so no training is needed) replayed on the simulator
   with the identified dynamics and, as the baseline, with the nominal model: tracking RMS per joint
   and their ratio (the share of the sim-to-real gap the identification leaves).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from pearl_robot.bench.common import machine
from pearl_robot.dynamixel.control_table import RAD_PER_TICK

HIDDEN_OFFSETS_TICKS = (300, -700, 150, 0, 40)
HIDDEN_DIRECTIONS = (1, -1, 1, 1, 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", type=int, default=0, help="held-out test task of arm-dynamics-small (default 0)")
    parser.add_argument("--noise-ticks", type=float, default=2.0, help="encoder noise std (default %(default)s)")
    parser.add_argument("--adapter-latency-ms", type=float, default=16.0, help="USB adapter (default %(default)s)")
    parser.add_argument("--seconds-per-joint", type=float, default=6.0, help="sysid excitation (default 6)")
    parser.add_argument("--range-seconds", type=float, default=5.0, help="calibration sweep (default 5)")
    parser.add_argument("--episodes", type=int, default=2, help="episodes in the replayed session (default 2)")
    parser.add_argument("--hardware", default=None, help="hardware YAML (default: the shipped arm)")


class ExcitationPolicy:
    """A scripted policy for recording a session without training: every arm joint's target swings
    at its own frequency (the AdaptationSession policy interface; z is unused)."""

    latent_size = 2

    def __init__(self, amplitude: float = 0.6) -> None:
        self.amplitude = amplitude
        self.t = 0

    def act(self, obs, z, deterministic=True):
        self.t += 1
        return self.amplitude * np.sin(0.25 * self.t * (1.0 + 0.3 * np.arange(4)))

    def context_reward(self, reward, info):
        return reward

    def context_row(self, obs, action, reward, next_obs):
        return np.zeros(1)

    def posterior(self, context):
        return np.zeros(2), np.ones(2)

    def prior(self):
        return np.zeros(2), np.ones(2)


def _quietly(argv: list[str]) -> None:
    """Run a pearl-robot command in-process, its report on stderr (stdout is the benchmark's JSON)."""
    from pearl_robot.cli.main import main

    with contextlib.redirect_stdout(sys.stderr):
        code = main(argv)
    if code != 0:
        raise RuntimeError(f"pearl-robot {' '.join(argv[:2])} exited with {code}")


def calibration_errors(calibration, spec) -> dict[str, object]:
    """Offset error in ticks and direction errors against the hidden mounting."""
    offsets, directions = calibration.arrays(spec)
    truth = np.array(HIDDEN_OFFSETS_TICKS) * RAD_PER_TICK
    errors = (offsets - truth) / RAD_PER_TICK
    return {
        "offset_error_ticks": dict(zip(spec.joint_names, np.round(errors, 3).tolist())),
        "offset_error_ticks_max": float(np.abs(errors).max()),
        "direction_errors": int(np.sum(directions != np.array(HIDDEN_DIRECTIONS))),
    }


def parameter_errors(identified, truth, arm: list[int], adapter_latency_s: float) -> dict[str, object]:
    """Identified / true for each scaled parameter (per arm joint), payload and latency differences.

    The latency to compare with is the arm's hidden one plus the adapter's: the control loop reads a
    state (its reply handed over one adapter latency late) and only then sends the next target, so
    every target reaches the servos that much after the state it answers. That is the delay a
    simulator has to reproduce, and the one sysid should find."""
    out: dict[str, object] = {}
    for name in ("damping_scale", "frictionloss_scale", "armature_scale", "gain_scale"):
        fitted = np.broadcast_to(np.asarray(getattr(identified, name), dtype=float), (len(arm) + 1,))
        true = np.broadcast_to(np.asarray(getattr(truth, name), dtype=float), (len(arm) + 1,))
        out[f"{name}_ratio"] = np.round(fitted[arm] / true[arm], 3).tolist()
    out["payload_error_kg"] = float(identified.payload_mass_kg - truth.payload_mass_kg)
    out["latency_true_ms"] = float((truth.latency_s + adapter_latency_s) * 1e3)
    out["latency_identified_ms"] = float(identified.latency_s * 1e3)
    out["latency_error_ms"] = out["latency_identified_ms"] - out["latency_true_ms"]
    return out


def record_session(address: str, spec, calibration: Path, folder: Path, episodes: int) -> None:
    from pearl_robot.adapt.session import AdaptationSession, SessionConfig
    from pearl_robot.adapt.store import SessionStore
    from pearl_robot.control.loop import RateLoop
    from pearl_robot.envs.robot_env import RobotEnv
    from pearl_robot.robot.registry import open_robot
    from pearl_robot.tasks.reach import ReachTask

    robot = open_robot(address, spec, calibration=calibration)
    loop = RateLoop(spec.period_s)  # the arm's control rate, as `pearl-robot adapt` runs it
    env = RobotEnv(robot, ReachTask(goal=np.array([0.2, 0.0, 0.15]), horizon=40), loop=loop)
    store = SessionStore(folder)
    store.create({"robot": address, "hardware": None, "robot_id": spec.robot_id, "joint_names": list(spec.joint_names)})
    with robot, contextlib.redirect_stdout(sys.stderr):
        AdaptationSession(env, ExcitationPolicy(), store, SessionConfig(episodes, seed=1)).run()


def replay_gap(folder: Path, spec, identified) -> dict[str, object]:
    from pearl_robot.adapt.replay import load_session, replay
    from pearl_robot.robot.dynamics import ArmDynamics

    data = load_session(folder)
    arm = list(spec.arm_joint_indices)
    out: dict[str, object] = {}
    for label, dynamics in (("identified", identified), ("nominal", ArmDynamics())):
        overall = replay(data, spec, dynamics, label).summary()["overall"]
        rms = np.asarray(overall["rms_rad"])[arm]
        out[f"replay_rms_rad_{label}"] = dict(zip([spec.joint_names[i] for i in arm], np.round(rms, 5).tolist()))
        out[f"replay_rms_rad_{label}_mean"] = float(rms.mean())
    out["replay_ratio"] = out["replay_rms_rad_identified_mean"] / out["replay_rms_rad_nominal_mean"]
    return out


def run(args: argparse.Namespace) -> dict[str, object]:
    from pearl_robot.calibrate.model import load_calibration
    from pearl_robot.cli.virtual_bus import held_out_dynamics
    from pearl_robot.pearl.config import load_config
    from pearl_robot.robot.spec import load_spec
    from pearl_robot.virtual import VirtualOperator, virtual_bus_from_spec

    spec = load_spec(args.hardware)
    truth = held_out_dynamics(load_config("arm-dynamics-small"), args.task, hardware=args.hardware)
    result: dict[str, object] = {"benchmark": "sim2real", "machine": machine(), "task": args.task}
    result["true_dynamics"] = truth.to_dict()
    bus = virtual_bus_from_spec(
        spec,
        dynamics=truth,
        initial_position_rad=np.zeros(spec.num_joints),
        hidden_offsets_ticks=HIDDEN_OFFSETS_TICKS,
        hidden_directions=HIDDEN_DIRECTIONS,
        sensor_noise_ticks=args.noise_ticks,
        adapter_latency_ms=args.adapter_latency_ms,
        return_delay_time=None,  # the factory 500 us
    )
    with tempfile.TemporaryDirectory() as tmp, bus:
        hand = VirtualOperator(bus, spec).start()
        try:
            cal = Path(tmp) / "calibration.yaml"
            robot = ["--robot", bus.address] + (["--hardware", args.hardware] if args.hardware else [])
            _quietly(["calibrate", "joints", *robot, "--non-interactive", "--out", str(cal),
                      "--range-seconds", str(args.range_seconds)])  # fmt: skip
            result.update(calibration_errors(load_calibration(cal), spec))
            _quietly(["calibrate", "sysid", *robot, "--calibration", str(cal), "--out", str(Path(tmp) / "sysid"),
                      "--seconds-per-joint", str(args.seconds_per_joint)])  # fmt: skip
            sysid = json.loads((Path(tmp) / "sysid" / "sysid.json").read_text())
            identified = load_calibration(cal).dynamics
            result["sysid"] = {
                key: sysid[key]
                for key in ("validation_rms_rad", "noise_floor_rad", "validation_ratio", "rms_before_rad",
                            "rms_after_rad", "at_bounds", "evaluations", "warnings")
            }  # fmt: skip
            result["identified_dynamics"] = identified.to_dict()
            arm = list(spec.arm_joint_indices)
            result.update(parameter_errors(identified, truth, arm, args.adapter_latency_ms / 1e3))
            session = Path(tmp) / "session"
            record_session(bus.address, spec, cal, session, args.episodes)
            result.update(replay_gap(session, spec, identified))
        finally:
            hand.stop()
    result["targets"] = {
        "offset_error<=1_tick": result["offset_error_ticks_max"] <= 1.0,
        "direction_errors==0": result["direction_errors"] == 0,
        "latency_error<=10_ms": abs(result["latency_error_ms"]) <= 10.0,
        "validation_rms<=2x_noise": result["sysid"]["validation_ratio"] <= 2.0,
        "replay_identified<nominal": result["replay_ratio"] < 1.0,
    }
    return result
