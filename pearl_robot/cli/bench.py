"""``pearl-robot bench NAME --json``: every benchmark prints one JSON object (units in the names,
``ratio`` to a baseline measured in the same run)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

# benchmark name -> module with ``add_arguments(parser)`` and ``run(args) -> dict``
BENCHMARKS: dict[str, str] = {
    "loop": "pearl_robot.bench.loop",
    "sim": "pearl_robot.bench.sim",
    "serial": "pearl_robot.bench.serial",
    "zmq": "pearl_robot.bench.zmq",
    "learner": "pearl_robot.bench.learner",
    "adapt": "pearl_robot.bench.adapt",
    "ray": "pearl_robot.bench.ray",
    "sim2real": "pearl_robot.bench.sim2real",
}


def _available() -> dict[str, object]:
    found = {}
    for name, module_name in BENCHMARKS.items():
        try:
            found[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
    return found


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark and print its figures", description=__doc__)
    bench_sub = parser.add_subparsers(dest="benchmark", metavar="NAME")
    for name, module in _available().items():
        sub = bench_sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        sub.add_argument("--json", action="store_true", help="print only the JSON object")
        module.add_arguments(sub)
        sub.set_defaults(func=_run, bench_module=module)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _run(args: argparse.Namespace) -> int:
    result = args.bench_module.run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    sys.stdout.flush()
    return 0
