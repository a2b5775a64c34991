"""The virtual bus's serving thread at real-time priority (``--realtime``), and the 500 Hz scenario of
``bench serial`` (``rate_run``) run as a paced episode runs: what the OS granted is reported, never
assumed, and the host's own wake-up noise is measured beside the loop in the same run."""

import threading

from pearl_robot.bench.serial_rate import rate_run
from pearl_robot.control.realtime import reset_priority, set_realtime_priority


def _fifo_permitted() -> bool:
    """Whether this process may give a thread SCHED_FIFO (tried in a thread of its own)."""
    result = []

    def probe() -> None:
        result.append(set_realtime_priority())
        reset_priority()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return result[0]


def test_the_serving_thread_asks_for_real_time_priority_only_when_told(make_bus, make_client):
    permitted = _fifo_permitted()
    fast = make_bus(physics=False, realtime=True)
    assert make_client(fast).ping(11)[0] > 0  # the serving thread is running
    assert fast.realtime_granted is permitted
    plain = make_bus(physics=False)
    assert make_client(plain).ping(11)[0] > 0
    assert plain.realtime_granted is False


def test_the_rate_scenario_reports_what_real_time_scheduling_it_got(spec):
    permitted = _fifo_permitted()
    result = rate_run(spec, None, rate_hz=100.0, baudrate=1_000_000, cycles=61, physics=False, idle_block=20)
    assert result["realtime"] is True and result["rt_granted"] is permitted
    assert result["gc_frozen"] is True
    assert result["cycles"] == 61 and result["cycle_p50_us"] > 0
    assert result["host_idle_periods"] == 60  # three blocks of 20 idle periods, between the cycles
    assert 0 <= result["host_would_miss"] <= 60 and result["host_wake_late_max_us"] >= 0
    assert result["missed_share"] < 0.5  # 10 ms periods for a cycle of about a millisecond
