"""``pearl-robot sweep``: whole experiments (seeds x a grid of config values) as Ray tasks, one summary.

Examples::

    pearl-robot sweep point-robot-small --seeds 5 --out runs/sweep-pr
    pearl-robot sweep cheetah-vel-small --seeds 3 --grid lr=0.001,0.0003 --grid meta_batch=4,8
    pearl-robot sweep point-robot-small --seeds 3 --grid config=point-robot-small,sparse-point-robot-small
    pearl-robot sweep cheetah-vel --seeds 5 --ray-address auto --cpus-per-run 2 --out /shared/runs/cv

Each run is an ordinary run folder ``OUT/<config>[_<key>-<value>...]-seed<N>`` (plot it with
``pearl-robot plot``); ``OUT/summary.csv`` and the printed table give, per grid point, the mean, standard
deviation, min and max across seeds of the final test return; ``OUT/summary.png`` the test return vs env
steps (mean across seeds, band of one standard deviation); ``OUT/runs.csv`` one row per run. Re-running a
sweep into the same OUT continues unfinished runs and keeps finished ones (resuming is exact).
Without Ray (or with ``--local``) the runs go one after the other in this process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pearl_robot.errors import PearlRobotError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run seeds x a grid of configs in parallel on Ray and summarize them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", metavar="CONFIG", help="a shipped config name or a YAML file")
    parser.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds per grid point (default: %(default)s)")
    parser.add_argument("--first-seed", type=int, default=0, metavar="S", help="seeds S..S+N-1 (default: 0)")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="values of a config field (or family_params.KEY, or config=NAME1,NAME2 for whole configs); "
        "repeatable: the runs are the product",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field in every run (value parsed as YAML); repeatable",
    )
    parser.add_argument("--out", help="sweep folder (default: runs/sweep-<config>-<time>)")
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="the Ray cluster: 'auto' or HOST:PORT of its head (default: a local Ray instance)",
    )
    parser.add_argument(
        "--cpus-per-run", type=int, default=1, metavar="C", help="CPUs (and torch threads) per run (default: 1)"
    )
    parser.add_argument(
        "--max-retries", type=int, default=2, help="times a run is retried when its worker dies (default: 2)"
    )
    parser.add_argument("--local", action="store_true", help="run one after the other in this process, no Ray")
    parser.add_argument("--quiet", action="store_true", help="print only the summary table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pearl_robot.distributed import INSTALL_HINT, ray_available
    from pearl_robot.distributed.sweep import expand, format_table, parse_grid, run_sweep, write_summary

    if args.seeds < 1:
        raise PearlRobotError("--seeds must be >= 1")
    if args.cpus_per_run < 1:
        raise PearlRobotError("--cpus-per-run must be >= 1")
    overrides = list(args.overrides)
    if not any(o.split("=", 1)[0].strip() == "torch_threads" for o in overrides):
        overrides.append(f"torch_threads={args.cpus_per_run}")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    specs = expand(args.config, seeds, parse_grid(args.grid), overrides)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{Path(args.config).stem}-{stamp}"
    local = args.local
    if not local and not ray_available():
        if args.ray_address:
            raise PearlRobotError(f"Ray is not installed: {INSTALL_HINT}")
        print(f"pearl-robot sweep: warning: Ray is not installed, running in process ({INSTALL_HINT})", file=sys.stderr)
        local = True

    def echo(text: str) -> None:
        if not args.quiet:
            print(text, flush=True)

    groups = len({s.group for s in specs})
    where = "in process" if local else f"as Ray tasks ({args.cpus_per_run} CPU each)"
    echo(f"sweep into {out}: {len(specs)} runs ({groups} grid points x {len(seeds)} seeds) {where}")
    results = run_sweep(
        specs,
        out,
        local=local,
        address=args.ray_address,
        cpus_per_run=args.cpus_per_run,
        max_retries=args.max_retries,
        echo=echo,
    )
    rows, written = write_summary(results, out)
    print(format_table(rows))
    echo("written: " + ", ".join(str(p) for p in written))
    failed = [r for r in results if r.error]
    return 1 if failed else 0
