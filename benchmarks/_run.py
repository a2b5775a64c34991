"""Run one `pearl-robot bench` benchmark from a script and print its JSON."""

from __future__ import annotations

import json
import sys

from pearl_robot.cli.bench import BENCHMARKS
from pearl_robot.cli.main import build_parser


def run_benchmark(name: str, argv: list[str] | None = None) -> dict:
    assert name in BENCHMARKS, name
    parser = build_parser()
    args = parser.parse_args(["bench", name, "--json", *(argv if argv is not None else sys.argv[1:])])
    result = args.bench_module.run(args)
    print(json.dumps(result))
    return result
