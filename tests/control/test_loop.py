import time

import pytest

from pearl_robot.control.loop import RateLoop


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def make_loop(period=0.05, realtime=True):
    clock = FakeClock()
    return RateLoop(period, clock=clock, sleep=clock.sleep, spin_s=0.0, realtime=realtime), clock


def test_absolute_deadlines_do_not_drift():
    loop, clock = make_loop()
    loop.start()
    wakes = []
    for _ in range(10):
        clock.now += 0.013  # work
        wakes.append(loop.wait())
    assert wakes == pytest.approx([100.0 + 0.05 * k for k in range(1, 11)])
    assert loop.stats.missed_deadlines == 0 and loop.stats.work_times_s == pytest.approx([0.013] * 10)


def test_overrun_skips_missed_periods_instead_of_bursting():
    loop, clock = make_loop()
    loop.start()
    clock.now += 0.01
    loop.wait()  # deadline 100.05
    clock.now += 0.12  # work overruns: now 100.17, deadlines 100.10 and 100.15 are gone
    woke = loop.wait()
    assert woke == pytest.approx(100.20)
    assert loop.stats.missed_deadlines == 2 and loop.stats.overruns == 1
    clock.now += 0.01
    assert loop.wait() == pytest.approx(100.25)  # back on the grid, no catch-up burst


def test_not_realtime_never_sleeps():
    loop, clock = make_loop(realtime=False)
    loop.start()
    for _ in range(5):
        clock.now += 0.001
        loop.wait()
    assert clock.now == pytest.approx(100.005)
    assert loop.stats.cycles == 5


def test_real_clock_period_error_small():
    loop = RateLoop(0.01)
    loop.start()
    start = time.monotonic()
    for _ in range(20):
        loop.wait()
    assert time.monotonic() - start == pytest.approx(0.2, abs=0.05)
    summary = loop.stats.summary()
    assert summary["cycles"] == 20 and summary["period_error_p50_ms"] < 5


def test_bad_period():
    with pytest.raises(ValueError):
        RateLoop(0)
