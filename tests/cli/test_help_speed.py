"""`--help` of every command stays light: building the parser and printing any command's help never
imports torch, SciPy, MuJoCo or matplotlib (those load inside the commands that use them). A check of
where the imports are, not a stopwatch: `pearl-robot bench cli` times them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "scipy", "mujoco", "matplotlib")

# in a fresh interpreter: build the parser, then print every command's help in turn, noting after each
# which heavy modules are loaded (the first command that shows one is the one that imported it)
PROBE = r"""
import argparse, contextlib, io, json, sys

HEAVY = %r

def heavy():
    return [m for m in HEAVY if m in sys.modules]

def choices(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}

from pearl_robot.cli.main import build_parser, main

parser = build_parser()
report = {"after_build": heavy(), "commands": []}
lines = [[]]
for name, sub in choices(parser).items():
    lines += [[name]] + [[name, inner] for inner in choices(sub)]
for line in lines:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main([*line, "--help"])
        except SystemExit as exc:
            code = exc.code
    report["commands"].append({"line": line, "code": code, "help": out.getvalue(), "heavy": heavy()})
print(json.dumps(report))
"""


def probe() -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_help_of_every_command_exits_0_without_heavy_imports():
    report = probe()
    assert report["after_build"] == [], f"building the parser imports {report['after_build']}"
    lines = {" ".join(c["line"]) for c in report["commands"]}
    assert {"", "demo", "bench", "adapt", "serve", "calibrate", "bench loop", "bench adapt", "bench cli"} <= lines
    for command in report["commands"]:
        name = " ".join(["pearl-robot", *command["line"], "--help"])
        assert command["code"] == 0, name
        assert "usage: pearl-robot" in command["help"], name
        assert command["heavy"] == [], f"{name} imports {command['heavy']}"


def test_a_benchmark_loads_its_arguments_when_chosen():
    from pearl_robot.cli.main import build_parser

    args = build_parser().parse_args(["bench", "cli", "--runs", "2", "--json"])
    assert args.runs == 2 and args.json and args.bench_module.__name__ == "pearl_robot.bench.cli"
