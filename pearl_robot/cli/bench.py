"""``pearl-robot bench NAME --json``: every benchmark prints one JSON object (units in the names,
``ratio`` to a baseline measured in the same run)."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import sys
from pathlib import Path

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
    "cli": "pearl_robot.bench.cli",
}


class _BenchmarkParser(argparse.ArgumentParser):
    """A benchmark's parser, its module imported (and its arguments added) on first use: building the
    CLI, `bench --help` and every other command's help never import a benchmark (torch, MuJoCo, ZeroMQ)."""

    module_name: str | None = None

    def _load(self) -> None:
        if self.module_name is None:
            return
        module_name, self.module_name = self.module_name, None
        module = importlib.import_module(module_name)
        self.add_argument("--json", action="store_true", help="print only the JSON object")
        module.add_arguments(self)
        self.set_defaults(func=_run, bench_module=module)

    def parse_known_args(self, args=None, namespace=None):  # argparse's own signature
        self._load()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._load()
        return super().format_usage()

    def format_help(self) -> str:
        self._load()
        return super().format_help()


def _summary_line(module_name: str) -> str | None:
    """The first line of the module's docstring, read from its source without importing it; None when
    the module is not there (a benchmark not built yet)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin:
        return None
    doc = (ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8")), clean=False) or "").strip()
    return doc.splitlines()[0] if doc else ""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark and print its figures", description=__doc__)
    bench_sub = parser.add_subparsers(dest="benchmark", metavar="NAME", parser_class=_BenchmarkParser)
    for name, module_name in BENCHMARKS.items():
        summary = _summary_line(module_name)
        if summary is None:
            continue
        sub = bench_sub.add_parser(name, help=summary)
        sub.module_name = module_name
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _run(args: argparse.Namespace) -> int:
    result = args.bench_module.run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    sys.stdout.flush()
    return 0
