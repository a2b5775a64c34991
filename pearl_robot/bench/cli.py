"""`--help` of every command (and every benchmark) in a fresh interpreter vs `python -c pass` in the same run.

Each command runs as the console script does (``from pearl_robot.cli.main import main``) in its own
process, ``--runs`` times; the commands and the bare interpreter start are timed in turn, so a
neighbour's burst on a shared machine hits them alike, and medians are reported. Peak memory is the
child's own maximum resident set (VmHWM, which it reports at exit; 0 where the OS has no /proc).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time

from pearl_robot.bench.common import machine

# the child reports its own peak resident set at exit (a parent's wait4 would count the forked copy of the parent)
_PEAK = (
    "import atexit, sys\n"
    "def _peak():\n"
    "    with open('/proc/self/status') as f:\n"
    "        sys.stderr.write(next((l for l in f if l.startswith('VmHWM:')), ''))\n"
    "atexit.register(_peak)\n"
)
BASELINE = _PEAK + "pass"
ENTRY = _PEAK + "from pearl_robot.cli.main import main\nsys.exit(main())"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5, help="runs of each command; medians (default %(default)s)")


def commands() -> list[list[str]]:
    """Every command line whose help is timed: the top level, each subcommand, each benchmark."""
    from pearl_robot.cli.main import build_parser

    lines: list[list[str]] = [[]]
    for name, sub in _choices(build_parser()).items():
        lines.append([name])
        lines += [[name, inner] for inner in _choices(sub)] if name == "bench" else []
    return lines


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def time_process(argv: list[str]) -> tuple[float, float | None]:
    """Wall time (s) and peak resident memory (MB, where the OS says) of one child process; it must exit 0."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        returncode = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=err, check=False).returncode
        elapsed = time.perf_counter() - start
        err.seek(0)
        text = err.read().decode(errors="replace")
    if returncode:
        raise RuntimeError(f"{' '.join(argv[3:])}: exit status {returncode}: {text[-500:]}")
    peak = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return elapsed, int(peak.group(1)) / 1024 if peak else None


def run(args: argparse.Namespace) -> dict[str, object]:
    runs = max(1, args.runs)
    lines = {" ".join(["pearl-robot", *line, "--help"]): line for line in commands()}
    wall: dict[str, list[float]] = {key: [] for key in lines}
    rss = dict.fromkeys(lines, 0.0)
    start_s: list[float] = []
    start_rss = 0.0
    for _ in range(runs):
        seconds, start_mb = time_process([sys.executable, "-c", BASELINE])
        start_s.append(seconds)
        start_rss = max(start_rss, start_mb or 0.0)
        for key, line in lines.items():
            seconds, mb = time_process([sys.executable, "-c", ENTRY, *line, "--help"])
            wall[key].append(seconds)
            rss[key] = max(rss[key], mb or 0.0)
    help_s = {key: statistics.median(v) for key, v in wall.items()}
    python_start_s = statistics.median(start_s)
    slowest = max(help_s, key=help_s.__getitem__)
    help_s_max = help_s[slowest]
    return {
        "benchmark": "cli",
        "machine": machine(),
        "runs": runs,
        "commands": len(help_s),
        "python_start_s": python_start_s,
        "python_start_rss_mb": start_rss,
        "help_s": help_s,
        "help_s_max": help_s_max,
        "help_s_median": statistics.median(help_s.values()),
        "slowest": slowest,
        "help_rss_mb_max": max(rss.values()),
        "ratio": help_s_max / python_start_s,
        "targets": {"help_s_max<1": help_s_max < 1.0},
    }
