"""``pearl-robot adapt``: adapt a meta-trained policy on a robot by posterior sampling.

The first episode(s) act with z from the prior; each later episode samples z from the posterior
inferred from all context gathered on this robot. Every step is written to SESSION as it happens;
Ctrl-C (or a STOP file in SESSION) stops the arm safely within one control period and keeps the data.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path

import numpy as np

from pearl_robot.adapt.export import export_hdf5
from pearl_robot.adapt.policy import check_matches, family_for, load_run
from pearl_robot.adapt.report import HEADER, format_row, plot_returns
from pearl_robot.adapt.session import AdaptationSession, SessionAborted, SessionConfig
from pearl_robot.adapt.store import SessionStore
from pearl_robot.cli.main import add_robot_arguments
from pearl_robot.control.loop import RateLoop
from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.registry import open_robot


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "adapt",
        help="adapt a meta-trained policy on a robot (posterior sampling)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, help="the trained run folder (RUN from `pearl-robot train`)")
    add_robot_arguments(parser)
    parser.add_argument(
        "--task",
        type=int,
        default=None,
        help="test task index of the run's family to play (sim: its dynamics; arm-reach: its goal)",
    )
    parser.add_argument(
        "--episodes", type=int, default=None, help="adaptation episodes (default 5; on --resume: the session's)"
    )
    parser.add_argument(
        "--prior-episodes",
        type=int,
        default=1,
        help="episodes with z from the prior before posterior sampling (default %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=None, help="session folder to write (must not exist)")
    parser.add_argument("--resume", type=Path, default=None, help="continue the session in this folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--same-goal", action="store_true", help="every episode starts from the same seeded reset (same goal)"
    )
    parser.add_argument("--dry-run", action="store_true", help="compute actions but never enable or move the arm")
    parser.add_argument("--fast", action="store_true", help="simulated robots: run as fast as possible")
    parser.set_defaults(func=run_adapt, robot=None)


def run_adapt(args: argparse.Namespace) -> int:
    if (args.out is None) == (args.resume is None):
        raise PearlRobotError("give either --out SESSION (a new session) or --resume SESSION")
    store = SessionStore(args.resume or args.out)
    if args.resume is not None:
        # a resumed session keeps its settings; only the robot's address may change (a replugged device)
        meta = store.load().meta
        checkpoint = Path(meta["checkpoint"])
        args.robot = args.robot or meta["robot"]
        args.episodes = args.episodes or meta["episodes"]
        for key in ("hardware", "calibration", "task", "seed", "dry_run", "prior_episodes", "same_goal"):
            setattr(args, key, meta.get(key))
    else:
        args.robot = args.robot or "sim"
        args.episodes = args.episodes or 5
        if args.checkpoint is None:
            raise PearlRobotError("--checkpoint RUN is required for a new session")
        checkpoint = args.checkpoint
    cfg, policy = load_run(checkpoint)
    prior_episodes = args.prior_episodes

    family = family_for(cfg, hardware=args.hardware)
    if not hasattr(family, "goal_pool") and not cfg.family.startswith("arm-"):
        raise PearlRobotError(f"{checkpoint} was trained on '{cfg.family}'; adapting on a robot needs an arm family")
    robot = open_robot(args.robot, args.hardware, calibration=args.calibration)
    loop = RateLoop(robot.spec.period_s, realtime=robot.realtime or not args.fast)
    env = family.make_env(seed=args.seed, robot=robot, loop=loop, dry_run=args.dry_run)
    check_matches(policy, env.observation_space.shape[0], env.action_space.shape[0], f"robot '{args.robot}'")
    if args.task is not None:
        _, test_tasks = family.split(cfg.seed)
        if not 0 <= args.task < len(test_tasks):
            raise PearlRobotError(f"--task must be in 0..{len(test_tasks) - 1}")
        family.apply(env, test_tasks[args.task])

    session = AdaptationSession(
        env,
        policy,
        store,
        SessionConfig(args.episodes, prior_episodes, seed=args.seed, dry_run=args.dry_run, same_start=args.same_goal),
        report=lambda summary: print(format_row(summary), flush=True),
    )
    start = 0
    if args.resume is not None:
        start = session.restore(store.resume())
        print(f"resuming {store.folder}: {start} episodes on disk, {len(session.context)} transitions of context")
    else:
        store.create(
            {
                "checkpoint": str(Path(checkpoint).resolve()),
                "family": cfg.family,
                "robot": args.robot,
                "hardware": args.hardware,
                "calibration": args.calibration,
                "task": args.task,
                "seed": args.seed,
                "episodes": args.episodes,
                "prior_episodes": prior_episodes,
                "dry_run": args.dry_run,
                "same_goal": args.same_goal,
                "robot_id": robot.spec.robot_id,
                "joint_names": list(robot.spec.joint_names),
            }
        )
    print(
        f"adapting {checkpoint} on '{args.robot}' ({robot.spec.robot_id}): {args.episodes} episodes, "
        f"{prior_episodes} with z from the prior{' [dry run: nothing is sent]' if args.dry_run else ''}"
    )
    print(HEADER, flush=True)
    aborted = None
    with _stop_on_signals(session), robot:
        try:
            session.run(start)
        except (SessionAborted, PearlRobotError) as exc:
            aborted = exc
    data = store.load()
    ends = data.episode_ends()
    if data.steps():
        export_hdf5(data, store.folder / "session.hdf5")
        plot_returns(
            [e["episode_return"] for e in ends],
            store.folder / "returns.png",
            f"adaptation on {args.robot}: return per episode",
        )
        print(
            f"session data: {store.folder}/session.jsonl, exported to {store.folder}/session.hdf5; "
            f"plot {store.folder}/returns.png"
        )
    if aborted is not None:
        print(f"stopped safely: {aborted}. Continue with --resume {store.folder}", file=sys.stderr)
        return 1
    returns = np.array([e["episode_return"] for e in ends])
    if len(returns):
        print(f"returns per episode: {np.round(returns, 3).tolist()}")
    return 0


@contextlib.contextmanager
def _stop_on_signals(session: AdaptationSession):
    """Ctrl-C / SIGTERM ask the session to stop (safe stop within one period) instead of killing the loop."""
    previous = {}

    def handler(signum, frame):  # noqa: ARG001
        session.request_stop(f"signal {signal.Signals(signum).name}")

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
