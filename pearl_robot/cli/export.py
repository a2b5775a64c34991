"""``pearl-robot export``: turn recorded sessions into a dataset other tools open.

    pearl-robot export sessions/s1 sessions/s2 --format minari --out datasets
    pearl-robot export sessions/s1 --format lerobot --out datasets/s1-lerobot
    pearl-robot export sessions/s1 --format hdf5

Formats:
  minari   a Minari dataset (minari.load_dataset(ID) with MINARI_DATASETS_PATH=OUT); ID from --name
           (namespace/name-vN; default pearl-robot/<first session>-v0); OUT default: Minari's own folder
  lerobot  a LeRobotDataset, v3.0 layout (parquet and meta/, no video) in the folder OUT
           (default $HF_LEROBOT_HOME/NAME, HF_LEROBOT_HOME defaults to ~/.cache/huggingface/lerobot;
           NAME from --name, default pearl-robot/<first session>)
  hdf5     one session as OUT/NAME.hdf5 (what `adapt` writes; default SESSION/session.hdf5)

Several sessions are merged into one dataset: episodes renumbered in the order given, each keeping its
session and its index there. Episodes cut short (an operator or safety stop, a fault, a crash) are
exported as truncated and marked partial, never as complete ones. minari and lerobot need the optional
extra: pip install 'pearl-robot[export]'. The session's session.jsonl stays the primary record.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

FORMATS = ("minari", "lerobot", "hdf5")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export sessions as a Minari or LeRobot dataset (or HDF5)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sessions", nargs="+", type=Path, metavar="SESSION", help="session folders to export")
    parser.add_argument("--format", required=True, choices=FORMATS, help="dataset format")
    parser.add_argument("--out", type=Path, default=None, help="where to write (see the formats above)")
    parser.add_argument("--name", default=None, help="dataset name (minari: an id namespace/name-vN)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pearl_robot.adapt.export import export_hdf5  # h5py, and the tasks (MuJoCo): not for `--help`
    from pearl_robot.adapt.export_episodes import ExportError, load_sources

    sources = load_sources(args.sessions)
    if args.format == "hdf5":
        if len(args.sessions) > 1:
            raise ExportError("--format hdf5 writes one session; merge several with --format minari or lerobot")
        path = export_hdf5(args.sessions[0], (args.out or args.sessions[0]) / f"{args.name or 'session'}.hdf5")
    elif args.format == "minari":
        from pearl_robot.adapt.export_minari import export_minari

        ident, path = export_minari(sources, args.name, args.out)
        path = f"{ident} in {path}"
    else:
        from pearl_robot.adapt.export_lerobot import export_lerobot

        path = export_lerobot(sources, args.out or _lerobot_home() / (args.name or sources.default_name))
    partial = sum(e.partial for e in sources.episodes)
    print(
        f"exported {len(sources.episodes)} episodes ({partial} partial), {sources.total_steps} steps from "
        f"{len(sources.sessions)} session(s) as {args.format}: {path}"
    )
    return 0


def _lerobot_home() -> Path:
    return Path(os.environ.get("HF_LEROBOT_HOME", Path.home() / ".cache" / "huggingface" / "lerobot"))
