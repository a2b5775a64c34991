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
from typing import TYPE_CHECKING

# light imports only: `--help` must not load torch (the policy) or h5py and matplotlib (the outputs)
from pearl_robot.adapt.store import SessionData, SessionStore, SessionStoreError, is_partial
from pearl_robot.cli.main import add_robot_arguments
from pearl_robot.control.loop import RateLoop
from pearl_robot.control.realtime import add_cpu_argument, pin_cpus
from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.registry import open_robot
from pearl_robot.teleop.options import add_teleop_arguments, check_context_option, open_teleop, takeover_for
from pearl_robot.viz.sink import add_viz_arguments, open_telemetry, parse_viz, require_viz

if TYPE_CHECKING:
    from pearl_robot.adapt.session import AdaptationSession


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
    add_cpu_argument(parser)
    add_viz_arguments(parser)
    add_teleop_arguments(parser)
    parser.set_defaults(func=run_adapt, robot=None)


ROBOT_OPTIONS = ("robot", "hardware", "calibration")


def run_adapt(args: argparse.Namespace) -> int:
    from pearl_robot.adapt.policy import check_matches, family_for, load_run
    from pearl_robot.adapt.report import HEADER, format_returns, format_row
    from pearl_robot.adapt.session import AdaptationSession, SessionAborted, SessionConfig

    if (args.out is None) == (args.resume is None):
        raise PearlRobotError("give either --out SESSION (a new session) or --resume SESSION")
    viz = parse_viz(args.viz, args.viz_memory)
    require_viz(viz)
    if args.cpu is not None:
        print(f"control thread pinned to CPU {pin_cpus(args.cpu)}")
    store = SessionStore(args.resume or args.out)
    if args.calibration is not None and Path(args.calibration).is_file():
        args.calibration = str(Path(args.calibration).resolve())
    resumed = None
    if args.resume is not None:
        # a resumed session keeps its settings, but drives the robot as this command line says
        resumed = store.resume()
        meta = resumed.meta
        checkpoint = Path(meta["checkpoint"])
        _honour_robot_options(args, _stored_robot_options(resumed))
        args.episodes = args.episodes or meta["episodes"]
        for key in ("task", "seed", "dry_run", "prior_episodes", "same_goal", "context_includes_interventions"):
            setattr(args, key, meta.get(key))
    else:
        args.robot = args.robot or "sim"
        args.episodes = args.episodes or 5
        if args.checkpoint is None:
            raise PearlRobotError("--checkpoint RUN is required for a new session")
        checkpoint = args.checkpoint
    teleop = open_teleop(args)  # --teleop: a missing terminal or gamepad is said before anything slow
    cfg, policy = load_run(checkpoint)
    prior_episodes = args.prior_episodes

    family = family_for(cfg, hardware=args.hardware)
    if not hasattr(family, "goal_pool") and not cfg.family.startswith("arm-"):
        raise PearlRobotError(f"{checkpoint} was trained on '{cfg.family}'; adapting on a robot needs an arm family")
    robot = open_robot(args.robot, args.hardware, calibration=args.calibration)
    takeover = takeover_for(args, robot, teleop)  # --teleop: the env drives the arm through it
    loop = RateLoop(robot.spec.period_s, realtime=robot.realtime or not args.fast)
    env = family.make_env(seed=args.seed, robot=takeover or robot, loop=loop, dry_run=args.dry_run)
    check_context_option(args, env)
    check_matches(policy, env.observation_space.shape[0], env.action_space.shape[0], f"robot '{args.robot}'")
    if args.task is not None:
        _, test_tasks = family.split(cfg.seed)
        if not 0 <= args.task < len(test_tasks):
            raise PearlRobotError(f"--task must be in 0..{len(test_tasks) - 1}")
        family.apply(env, test_tasks[args.task])

    options = {key: getattr(args, key) for key in ROBOT_OPTIONS}
    config = SessionConfig(
        args.episodes, prior_episodes, seed=args.seed, dry_run=args.dry_run, same_start=args.same_goal,
        robot_options=options, context_includes_interventions=bool(args.context_includes_interventions),
    )  # fmt: skip
    telemetry = open_telemetry(viz, robot.spec, str(store.folder), len(resumed.steps()) if resumed else 0)
    session = AdaptationSession(
        env, policy, store, config, report=lambda s: print(format_row(s), flush=True), telemetry=telemetry,
        teleop=takeover,
    )  # fmt: skip
    start, steps_before = 0, 0
    if resumed is not None:
        start, steps_before = session.restore(resumed), len(resumed.steps())
        print(f"resuming {store.folder}: {start} episodes on disk, {len(session.context)} transitions of context")
    aborted = None
    try:
        with _stop_on_signals(session), robot:
            if resumed is None:
                meta = {"checkpoint": str(Path(checkpoint).resolve()), "family": cfg.family, **options}
                meta.update(task=args.task, seed=args.seed, episodes=args.episodes, prior_episodes=prior_episodes)
                meta.update(dry_run=args.dry_run, same_goal=args.same_goal, robot_id=robot.spec.robot_id)
                meta.update(context_includes_interventions=bool(args.context_includes_interventions))
                store.create({**meta, "joint_names": list(robot.spec.joint_names)})
            print(
                f"adapting {checkpoint} on '{args.robot}' ({robot.spec.robot_id}): {args.episodes} episodes, "
                f"{prior_episodes} with z from the prior{' [dry run: nothing is sent]' if args.dry_run else ''}"
            )
            print(HEADER, flush=True)
            session.run(start)
    except (SessionAborted, PearlRobotError) as exc:
        aborted = exc
    finally:
        store.close()
        telemetry.close()
        if takeover is not None:
            takeover.source.close()  # a terminal back in its own mode
    if isinstance(aborted, SessionStoreError):  # the log cannot take more: report it, write nothing else
        raise aborted
    data = store.load() if store.exists() else None
    if data is None or not data.steps() or (aborted is not None and len(data.steps()) == steps_before):
        return _nothing_recorded(store, aborted, new=resumed is None)
    written = _write_outputs(store, data, f"adaptation on {args.robot}: return per episode")
    if aborted is not None:
        print(f"stopped safely: {aborted}. Continue with --resume {store.folder}", file=sys.stderr)
        return 1
    ends = data.episode_ends()
    if ends:
        print(f"returns per episode: {format_returns([e['episode_return'] for e in ends], _partial(ends))}")
    return 0 if written else 1


def _stored_robot_options(data: SessionData) -> dict[str, str | None]:
    """The robot options of the session's last recorded episode (or of its start)."""
    recorded = [s["robot_options"] for s in data.episode_starts() if s.get("robot_options")]
    return recorded[-1] if recorded else {key: data.meta.get(key) for key in ROBOT_OPTIONS}


def _honour_robot_options(args: argparse.Namespace, stored: dict[str, str | None]) -> None:
    """Options given on the command line win; the others are the session's. One line says what changed."""
    changed = []
    for key in ROBOT_OPTIONS:
        given = getattr(args, key)
        if given is None:
            setattr(args, key, stored.get(key))
        elif given != stored.get(key):
            changed.append(f"--{key} {given} (was {stored.get(key) or 'none'})")
    if changed:
        print(f"robot options differ from the session's; using {', '.join(changed)}")


def _partial(ends: list[dict]) -> list[bool]:
    return [is_partial(e) for e in ends]


def _write_outputs(store: SessionStore, data: SessionData, title: str) -> bool:
    """session.hdf5 and returns.png; a full disk or a read-only folder is one line (the log is the record)."""
    from pearl_robot.adapt.export import ExportWriteError, export_hdf5
    from pearl_robot.adapt.report import plot_returns

    ends = data.episode_ends()
    try:
        export_hdf5(data, store.folder / "session.hdf5")
        plot_returns([e["episode_return"] for e in ends], store.folder / "returns.png", title, partial=_partial(ends))
    except (ExportWriteError, OSError) as exc:
        print(f"pearl-robot adapt: error: {exc}", file=sys.stderr)
        return False
    print(
        f"session data: {store.folder}/session.jsonl, exported to {store.folder}/session.hdf5; "
        f"plot {store.folder}/returns.png"
    )
    return True


def _nothing_recorded(store: SessionStore, aborted: BaseException | None, new: bool) -> int:
    """A start that never reached its first step leaves no trace: a new session's folder is removed."""
    if new and store.exists():
        store.discard()
    where = f"{store.folder} was not created" if new else f"continue with --resume {store.folder}"
    print(f"pearl-robot adapt: error: {aborted or 'no episode to run'}; no step recorded ({where})", file=sys.stderr)
    return 1


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
