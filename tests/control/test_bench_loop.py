"""`bench loop`: a short run by default (the long one behind --long), a progress line on stderr, and the
loop's worst period error beside the host's own noise measured in the same run."""

from __future__ import annotations

import gc
import io

from pearl_robot.bench.loop import LONG_CYCLES, RATIO_FLOOR_MS, cycles_per_phase
from pearl_robot.bench.progress import Progress
from pearl_robot.cli.main import build_parser


def bench_args(*extra: str):
    return build_parser().parse_args(["bench", "loop", "--json", *extra])


def test_a_short_run_reports_the_loop_beside_the_host_noise(capsys):
    args = bench_args("--seconds", "1", "--no-hog", "--no-rt")
    result = args.bench_module.run(args)
    quiet = result["quiet"]
    assert result["cycles_per_phase"] == 10 and quiet["cycles"] == 10 and quiet["host_noise_cycles"] == 10
    for key in ("period_error_p99_ms", "period_error_max_ms", "missed_deadlines", "host_noise_p99_ms"):
        assert quiet[key] >= 0, key
    assert quiet["host_noise_max_ms"] > 0
    ratio = max(quiet["period_error_max_ms"], RATIO_FLOOR_MS) / max(quiet["host_noise_max_ms"], RATIO_FLOOR_MS)
    assert abs(quiet["period_error_max_vs_host_noise"] - ratio) < 1e-9 and result["ratio"] == ratio
    assert quiet["gc_frozen"] and quiet["realtime_priority"] is False and "hog" not in result
    assert set(result["targets"]) == {"period_error_p99_ms<=0.5", "period_error_max_ms<=5", "missed_deadlines==0"}
    assert gc.isenabled()  # the episode's settings are undone after the run
    err = capsys.readouterr().err
    assert "bench loop:" in err and "\r" not in err  # not a terminal (CI=true): plain lines


def test_the_length_of_a_run():
    assert cycles_per_phase(bench_args(), 0.05, phases=2) == 300  # about a minute: 2 phases x (loop + idle)
    assert cycles_per_phase(bench_args("--long"), 0.05, phases=2) == LONG_CYCLES
    assert cycles_per_phase(bench_args("--long", "--cycles", "7"), 0.05, phases=2) == 7
    assert bench_args("--cpu", "0").cpu == {0}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_progress_on_a_terminal_rewrites_one_line():
    out, clock = io.StringIO(), Clock()
    progress = Progress("bench loop", total_s=60, stream=out, clock=clock, tty=True)
    for _ in range(3):
        clock.t += 2
        progress.advance(2, "quiet, loop")
    progress.close()
    text = out.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert text.rstrip().endswith("done  60 of ~60 s (100%)")  # padded over the longer line before it
    assert "quiet, loop  4 of ~60 s (7%)" in text


def test_progress_without_a_terminal_is_a_plain_line_every_ten_seconds():
    out, clock = io.StringIO(), Clock()
    progress = Progress("bench loop", total_s=60, stream=out, clock=clock, tty=False)
    for _ in range(30):  # 60 s in 2 s blocks
        clock.t += 2
        progress.advance(2, "hog, loop")
    progress.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 6 <= len(lines) <= 8 and lines[-1] == "bench loop: done  60 of ~60 s (100%)"
