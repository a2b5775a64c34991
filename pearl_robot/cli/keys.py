"""``pearl-robot keys``: CurveZMQ key pairs for a robot server and its clients.

Each NAME gets NAME.key (public: copy it to the other side) and NAME.key_secret (keep it; mode 0600).
The server runs with ``--server-key server.key_secret --allow client.key``; a client sets
PEARL_ROBOT_SERVER_KEY=server.key and PEARL_ROBOT_CLIENT_KEY=client.key_secret.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="generate CurveZMQ key pairs for `serve` and remote robots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names", nargs="*", default=["server", "client"], help="key pair names (default: server client)"
    )
    parser.add_argument("--out", default="keys", metavar="DIR", help="folder to write them into (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace existing key files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pearl_robot.server.security import create_key_pair  # ZeroMQ: not for `--help`

    for name in args.names:
        public, secret = create_key_pair(args.out, name, overwrite=args.force)
        print(f"{name}: public {public}  secret {secret}")
    return 0
