"""``pearl-robot demo``: the main job on the embedded default (no robot, no server to install)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from pearl_robot.cli.main import add_robot_arguments
from pearl_robot.control.loop import RateLoop
from pearl_robot.control.scripted import ScriptedReacher
from pearl_robot.envs import RobotEnv
from pearl_robot.robot.registry import open_robot
from pearl_robot.tasks.reach import ReachTask, sample_reachable_goals


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="drive the simulated arm through a scripted reach at 20 Hz and print loop statistics",
        description=__doc__,
    )
    add_robot_arguments(parser)
    parser.add_argument("--goals", type=int, default=3, help="number of reach goals (default %(default)s)")
    parser.add_argument("--steps", type=int, default=60, help="control steps per goal (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="run as fast as possible instead of real time")
    parser.set_defaults(func=run_scripted_reach)


def run_scripted_reach(args: argparse.Namespace) -> int:
    robot = open_robot(args.robot, args.hardware, calibration=args.calibration)
    rng = np.random.default_rng(args.seed)
    goals = sample_reachable_goals(robot.spec, args.goals, rng)
    loop = RateLoop(robot.spec.period_s, realtime=not args.fast)
    with robot:
        env = RobotEnv(robot, ReachTask(goal=goals[0], horizon=args.steps), loop=loop)
        reacher = ScriptedReacher(env.kinematics, env.arm, env.action_scale_rad)
        rate = robot.spec.control_rate_hz
        print(f"pearl-robot demo: scripted reach on '{args.robot}' ({robot.spec.robot_id}) at {rate:g} Hz")
        for i, goal in enumerate(goals):
            env.set_task(ReachTask(goal=goal, horizon=args.steps))
            env.reset(seed=args.seed + i)
            total = 0.0
            truncated = False
            while not truncated:
                action = reacher.act(env.last_state.position, goal)
                _, reward, _, truncated, info = env.step(action)
                total += reward
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
