"""``pearl-robot demo``: the main job on the embedded default, no hardware needed.

1. meta-train PEARL on the ``arm-fleet`` family in simulation (a small config: minutes here);
2. start a virtual arm -- a Dynamixel servo bus on a pseudo-terminal -- whose physics are held-out
   dynamics (a test arm of the family, never trained on) plus control latency and encoder noise;
3. adapt on it through the real serial path (``serial:/dev/pts/N``) by posterior sampling, printing a
   table per episode and writing the session data, its HDF5 export and a PNG of return per episode;
4. drive the same arm, from the same start to the same goal, with the scripted controller tuned once for
   the whole fleet (what a practitioner would use instead), and print both side by side.

``--scripted`` runs the foundation's quick check instead: a scripted reach at 20 Hz with loop statistics.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from pearl_robot.cli.main import add_robot_arguments
from pearl_robot.control.loop import RateLoop
from pearl_robot.control.scripted import ScriptedReacher
from pearl_robot.envs import RobotEnv
from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.registry import open_robot
from pearl_robot.tasks.reach import ReachTask, sample_reachable_goals
from pearl_robot.viz.sink import add_viz_arguments, open_telemetry, parse_viz, require_viz

DEMO_CONFIG = "arm-fleet-small"


def demo_config(robot_id: str) -> str:
    """The shipped config for this arm: ``<robot_id>-fleet-small`` when there is one (so101-fleet-small), else
    arm-fleet-small (trained on the given hardware through ``family_params.hardware``)."""
    from pearl_robot.pearl.config import shipped_configs

    own = f"{robot_id}-fleet-small"
    return own if own in shipped_configs() else DEMO_CONFIG


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="meta-train in simulation, then adapt on a virtual arm with different dynamics (no hardware)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_robot_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="demo folder (default %(default)s)")
    parser.add_argument("--episodes", type=int, default=6, help="adaptation episodes (default %(default)s)")
    parser.add_argument("--task", type=int, default=0, help="held-out test task for the virtual arm")
    parser.add_argument(
        "--scripted-episodes", type=int, default=3, help="episodes of the scripted controller (0: skip step 4)"
    )
    parser.add_argument("--retrain", action="store_true", help="train again even if the demo run exists")
    parser.add_argument(
        "--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", help="training config overrides"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scripted", action="store_true", help="only the scripted reach on --robot (quick check)")
    parser.add_argument("--goals", type=int, default=3, help="--scripted: number of reach goals")
    parser.add_argument("--steps", type=int, default=60, help="--scripted: control steps per goal")
    parser.add_argument("--fast", action="store_true", help="--scripted: as fast as possible, not real time")
    add_viz_arguments(parser)
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    require_viz(parse_viz(args.viz, args.viz_memory))  # before minutes of training, not after
    return run_scripted_reach(args) if args.scripted else run_sim_to_real(args)


# ---- the main job ------------------------------------------------------------------------------------
def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def reusable_run(run: Path, robot_id: str | None = None) -> bool:
    """A trained demo run whose policy fits this version's observations (an older run is trained again), and
    that was trained on the arm ``robot_id`` when given."""
    from pearl_robot.adapt.policy import CheckpointMismatch, check_matches, family_for, load_run

    if not (run / "policy.npz").exists():
        return False
    cfg, policy = load_run(run)
    family = family_for(cfg)
    if robot_id is not None and family.spec.robot_id != robot_id:
        print(f"not reusing {run}: it was trained on {family.spec.robot_id}, not {robot_id}; training again")
        return False
    env = family.make_env(seed=0)
    try:
        check_matches(policy, env.observation_space.shape[0], env.action_space.shape[0], "this version's arm env")
    except CheckpointMismatch as exc:
        print(f"not reusing {run}: {exc}; training again")
        return False
    finally:
        env.close()
    return True


def run_sim_to_real(args: argparse.Namespace) -> int:
    from pearl_robot.calibrate.model import Calibration
    from pearl_robot.cli.main import main as cli
    from pearl_robot.cli.virtual_bus import held_out_dynamics
    from pearl_robot.pearl.config import load_config
    from pearl_robot.robot.spec import load_spec

    started = time.monotonic()
    out = args.out
    run = out / "train"
    spec = load_spec(args.hardware)
    steps = 4 if args.scripted_episodes > 0 else 3
    config = demo_config(spec.robot_id)
    _step(f"1/{steps} meta-training PEARL on {config} ({spec.robot_id}) in simulation -> {run}")
    if not args.retrain and reusable_run(run, spec.robot_id):
        print(f"reusing the trained run in {run} (--retrain to train again)")
    else:
        if run.exists():
            shutil.rmtree(run)
        train_args = ["train", "--config", config, "--out", str(run), "--seed", str(args.seed)]
        for item in args.set:
            train_args += ["--set", item]
        if args.hardware:
            train_args += ["--set", f"family_params.hardware={args.hardware}"]
        if cli(train_args) != 0:
            raise PearlRobotError("meta-training failed")

    cfg = load_config(run / "config.yaml")
    held_out = held_out_dynamics(cfg, args.task).to_dict()  # + the serial link's own delay
    dynamics_file = out / "virtual_arm_dynamics.yaml"
    dynamics_file.write_text(yaml.safe_dump(held_out, sort_keys=False))
    calibration = Calibration.identity(spec).save(out / "virtual_arm_calibration.yaml")
    kind = held_out.get("extra", {}).get("kind")
    arm = f"held-out dynamics (a {kind} arm)" if kind else "held-out dynamics"
    _step(f"2/{steps} starting a virtual arm on a pseudo-terminal: {arm}, +20 ms latency, 2-tick encoder noise")
    print("hidden dynamics: " + json.dumps({k: v for k, v in held_out.items() if k != "extra"}))
    bus_args = [
        sys.executable,
        "-m",
        "pearl_robot.cli.main",
        "virtual-bus",
        "--dynamics",
        str(dynamics_file),
        "--sensor-noise-ticks",
        "2",
        "--return-delay-time",
        "0",
    ]
    if args.hardware:
        bus_args += ["--hardware", str(args.hardware)]
    bus_log = out / "virtual_bus.log"
    with bus_log.open("w") as log:
        bus = subprocess.Popen(bus_args, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        device = bus.stdout.readline().strip()
        if not device:
            with contextlib.suppress(subprocess.TimeoutExpired):
                bus.wait(timeout=5)
            last = bus_log.read_text().strip().splitlines()[-1:] or ["no output"]
            raise PearlRobotError(f"the virtual servo bus did not start: {last[0]} (log: {bus_log})")
        print(f"virtual arm on {device}")
        session = out / f"session-{time.strftime('%Y%m%d-%H%M%S')}"
        serial_options = "timeout_margin_ms=30&retries=5"  # generous: the virtual arm shares the CPU
        _step(f"3/{steps} adapting on serial:{device} by posterior sampling ({args.episodes} episodes at 20 Hz)")
        adapt_args = [
            "adapt",
            "--checkpoint",
            str(run),
            "--robot",
            f"serial:{device}?{serial_options}",
            "--calibration",
            str(calibration),
            "--episodes",
            str(args.episodes),
            "--out",
            str(session),
            "--seed",
            str(args.seed),
            "--same-goal",
        ]
        if args.hardware:
            adapt_args += ["--hardware", str(args.hardware)]
        if args.viz:
            adapt_args += ["--viz", args.viz, "--viz-memory", args.viz_memory]
        code = cli(adapt_args)
        if code == 0 and args.scripted_episodes > 0:
            from pearl_robot.cli.demo_compare import compare

            _step(f"4/4 the scripted controller tuned for the whole fleet, on the same arm ({serial_options})")
            print(
                compare(
                    cfg,
                    device,
                    serial_options,
                    args.hardware,
                    str(calibration),
                    session,
                    args.scripted_episodes,
                    args.seed,
                )  # fmt: skip
            )
    finally:
        bus.terminate()
        try:
            bus.wait(timeout=10)
        except subprocess.TimeoutExpired:
            bus.kill()
    print(
        f"\ndemo finished in {time.monotonic() - started:.0f} s: run {run}, session {session} "
        f"(session.jsonl, session.hdf5, returns.png)"
    )
    return code


# ---- the foundation's quick check -------------------------------------------------------------------------
def run_scripted_reach(args: argparse.Namespace) -> int:
    robot = open_robot(args.robot, args.hardware, calibration=args.calibration)
    rng = np.random.default_rng(args.seed)
    goals = sample_reachable_goals(robot.spec, args.goals, rng)
    loop = RateLoop(robot.spec.period_s, realtime=not args.fast)
    telemetry = open_telemetry(parse_viz(args.viz, args.viz_memory), robot.spec, name="demo --scripted")
    with robot, telemetry:
        env = RobotEnv(robot, ReachTask(goal=goals[0], horizon=args.steps), loop=loop)
        reacher = ScriptedReacher(env.kinematics, env.arm, env.action_scale_rad)
        rate = robot.spec.control_rate_hz
        print(f"pearl-robot demo: scripted reach on '{args.robot}' ({robot.spec.robot_id}) at {rate:g} Hz")
        for i, goal in enumerate(goals):
            env.set_task(ReachTask(goal=goal, horizon=args.steps))
            env.reset(seed=args.seed + i)
            total, steps = 0.0, 0
            truncated = False
            telemetry.on_episode_start({"episode": i, "goal": goal})
            while not truncated:
                action = reacher.act(env.last_state.position, goal)
                _, reward, _, truncated, info = env.step(action)
                telemetry.on_env_step(env, i, steps, reward, info)
                total, steps = total + reward, steps + 1
            telemetry.on_episode_end({"episode": i, "episode_return": total, "steps": steps})
            print(
                f"  goal {i + 1}/{len(goals)} at {np.round(goal, 3).tolist()} m: "
                f"final distance {info['distance_m'] * 1000:.1f} mm, return {total:.2f}"
            )
        events = dict(getattr(robot, "events", {}))
    stats = loop.stats.summary()
    print("loop statistics (ms):")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()}, indent=2))
    print(f"safety events: {events or 'none'}")
    return 0
