"""``pearl-robot view SESSION``: replay a recorded adaptation session into the live telemetry view.

The same entities as ``pearl-robot adapt --viz`` (joints measured and sent, reward and reach error, the
posterior of z per episode, safety events, loop timing, the digital twin beside its target), from the
session's session.jsonl. ``--viz save:PATH.rrd`` writes the view to a file instead of opening a viewer;
``--viz serve`` serves a web viewer until Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from pearl_robot.errors import PearlRobotError
from pearl_robot.viz.sink import add_viz_arguments, open_telemetry, parse_viz


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "view",
        help="replay a recorded session into the telemetry view (Rerun: live viewer, .rrd file or web viewer)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("session", type=Path, metavar="SESSION", help="a session folder (from `pearl-robot adapt`)")
    parser.add_argument(
        "--hardware", default=None, help="the arm's hardware YAML for the digital twin (default: the session's)"
    )
    add_viz_arguments(parser, default="live")
    parser.set_defaults(func=run_view)


def run_view(args: argparse.Namespace) -> int:
    from pearl_robot.adapt.store import read_session
    from pearl_robot.robot.spec import load_spec
    from pearl_robot.viz.replay import replay_session

    target = parse_viz(args.viz, args.viz_memory)
    data = read_session(args.session, required=("position",))
    spec = load_spec(args.hardware or data.meta.get("hardware"))
    recorded = data.meta.get("joint_names")
    if recorded is not None and list(recorded) != list(spec.joint_names):
        raise PearlRobotError(
            f"{args.session} was recorded on joints {recorded}, but {spec.source.name} has {list(spec.joint_names)}; "
            f"give the session's arm with --hardware"
        )
    width = len(data.steps()[0]["position"])
    if width != spec.num_joints:
        raise PearlRobotError(f"{args.session} records {width} joints; {spec.source.name} has {spec.num_joints}")
    with open_telemetry(target, spec, name=f"{args.session.name} (replay)") as telemetry:
        steps = replay_session(data, telemetry, spec.period_s)
        episodes = len(data.episode_starts())
        where = {"save": f"to {target.path}", "serve": "to the server", "live": "to the viewer"}[target.mode]
        print(f"replayed {args.session}: {episodes} episodes, {steps} steps {where}", flush=True)
        if target.mode == "serve":
            _serve_until_signal()
    return 0


def _serve_until_signal() -> None:
    """Keep the in-process server up for viewers until Ctrl-C or SIGTERM."""
    done = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: done.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    print("serving the replay; Ctrl-C to stop", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
