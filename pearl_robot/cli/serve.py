"""``pearl-robot serve``: expose a robot over ZeroMQ for a RemoteRobot (``--robot tcp://HOST:PORT``) elsewhere.

Run it on the computer next to the servos. It binds loopback unless told otherwise; binding any other
address needs CurveZMQ keys (``pearl-robot keys``): ``--server-key`` is this server's NAME.key_secret,
``--allow`` the public .key files (or folders of them) of the clients it accepts.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys

from pearl_robot.cli.main import add_robot_arguments
from pearl_robot.control.realtime import add_cpu_argument, pin_cpus
from pearl_robot.robot.registry import open_robot
from pearl_robot.server.security import CurveConfig
from pearl_robot.server.server import DEFAULT_ENDPOINT, DEFAULT_HEARTBEAT_TIMEOUT_S, RobotServer, check_bind_allowed
from pearl_robot.viz.sink import add_viz_arguments, open_telemetry, parse_viz, require_viz


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="expose a robot over ZeroMQ (the robot computer's side)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_robot_arguments(parser, default_robot="sim")
    parser.add_argument(
        "--bind",
        action="append",
        metavar="ENDPOINT",
        help=f"endpoint to serve on, repeatable: tcp://HOST:PORT (port * or 0: any free one) or ipc://PATH "
        f"(default: {DEFAULT_ENDPOINT})",
    )
    parser.add_argument("--server-key", metavar="FILE", help="CurveZMQ: this server's NAME.key_secret")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="FILE_OR_DIR",
        help="CurveZMQ: a client public key (NAME.key) or a folder of them; repeatable",
    )
    parser.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=DEFAULT_HEARTBEAT_TIMEOUT_S,
        metavar="S",
        help="disable the arm when the client is silent this long (default: %(default)s s)",
    )
    parser.add_argument(
        "--watchdog-periods",
        type=int,
        default=None,
        metavar="N",
        help="hold position after N control periods without a command (default: the hardware file's)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log sessions, holds and refusals")
    add_cpu_argument(parser)
    add_viz_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    endpoints = args.bind or [DEFAULT_ENDPOINT]
    curve = None
    if args.server_key or args.allow:
        if not (args.server_key and args.allow):
            print("pearl-robot serve: error: CurveZMQ needs both --server-key and --allow", file=sys.stderr)
            return 2
        curve = CurveConfig.from_files(args.server_key, args.allow)
    for endpoint in endpoints:  # refuse before touching the hardware
        check_bind_allowed(endpoint, curve)
    viz = parse_viz(args.viz, args.viz_memory)
    require_viz(viz)
    if args.robot.startswith(("tcp://", "ipc://")):
        print("pearl-robot serve: note: serving a remote robot (a relay)", file=sys.stderr)
    if args.cpu is not None:  # before the robot and the server start their threads: they inherit it
        print(f"pearl-robot serve: pinned to CPU {pin_cpus(args.cpu)}", file=sys.stderr)

    robot = open_robot(args.robot, args.hardware, calibration=args.calibration)
    telemetry = open_telemetry(viz, robot.spec, name=f"serve {args.robot}")
    server = RobotServer(
        robot,
        endpoints,
        curve=curve,
        heartbeat_timeout_s=args.heartbeat_timeout,
        watchdog_periods=args.watchdog_periods,
        telemetry=telemetry,
    )

    def on_signal(signum: int, frame: object) -> None:
        server.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with robot:
            server.open()
            # everything loaded so far lives as long as the process: keep the collector from walking it
            # (a full collection over the imports stalls the loop for tens of ms, on every peer's account)
            gc.collect()
            gc.freeze()
            auth = f"CurveZMQ, {len(curve.allowed_clients)} client key(s)" if curve else "no auth, local only"
            for endpoint in server.endpoints:
                print(f"serving {args.robot} ({robot.spec.robot_id}) on {endpoint} [{auth}]", flush=True)
            server.serve_forever()
    finally:
        server.close()
        telemetry.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = ", ".join(f"{k}={v}" for k, v in sorted(server.events.items()))
    print(f"stopped: the arm was disabled and the robot closed ({summary or 'no traffic'})", flush=True)
    return 0
