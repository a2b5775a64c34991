"""``bench serial``'s ``rate_500hz`` scenario: a fast control loop on a bus paced like a real one.

``SerialRobot`` read + write at ``rate_hz`` for ``cycles`` cycles against ``pearl-robot virtual-bus
--pace-wire-time`` running as its own process, the servos at ``baudrate`` (an XM430 goes to 4.5 Mbps)
with Return Delay Time 0: every instruction and reply takes its bytes' wire time there, so a cycle
cannot be shorter than the wire allows. The loop keeps ``RateLoop``'s policy: absolute deadlines,
sleep to half a millisecond before the next start and spin the rest, and a cycle that overruns skips
the periods it missed (``periods_skipped``) instead of bursting to catch up. The robot connects with
the hardware file as it is (its control rate sets the connect-time lateness check and the retry
budget: on a loaded machine one slow ping of the fifteen at connect would refuse a 500 Hz arm
outright; the loop's own figures are what this measures). A cycle is *missed* when its read + write
has not completed by the end of its period. Every ``IDLE_BLOCK`` cycles, as many idle periods: the
host's own wake-up lateness in the same run (``host_would_miss``: idle periods woken later than the
slack a median cycle leaves, so a cycle there would have been missed whatever the loop did; ``steal_s``:
what the hypervisor took meanwhile). ``wire_share``: the cycle's wire time over the median
cycle time. ``realtime`` (the default) runs the scenario at SCHED_FIFO where permitted (the connect
too) and the loop as ``adapt`` runs a paced episode (the garbage collector frozen, memory locked where
permitted), and the virtual bus with ``--realtime`` (its threads at SCHED_FIFO: a servo's
microcontroller is not time-shared); ``rt_granted`` says what the OS gave.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from pearl_robot.bench.common import percentiles_us
from pearl_robot.bench.serial_devices import virtual_bus_device
from pearl_robot.dynamixel import fast_sync
from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import wire_time_s

SPIN_S = 0.0005  # as RateLoop: sleep to this much before a deadline, then spin
IDLE_BLOCK = 500  # cycles between blocks of as many idle periods (the host's own noise, same run)


def _steal_s() -> float | None:
    """CPU time the hypervisor took from this machine so far (/proc/stat's steal), None where unknown."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _wait_until(deadline: float, clock) -> None:
    ahead = deadline - clock() - SPIN_S
    if ahead > 0:
        time.sleep(ahead)
    while clock() < deadline:
        pass


def cycle_bytes(robot) -> int:
    """Bytes on the wire in one cycle: the state read, its reply(ies), the goal SYNC WRITE."""
    n = len(robot.ids)
    _, length = robot._state_block
    tx_read = proto.instruction_packet_size(4 + n)
    if robot.state_read == "fast_sync_read":
        rx = fast_sync.status_size(n, length)
    else:
        rx = n * proto.status_packet_size(length)
    tx_write = proto.instruction_packet_size(4 + n * 5)
    return tx_read + rx + tx_write


def rate_run(
    spec,
    hardware: str | None,
    *,
    rate_hz: float = 500.0,
    baudrate: int = 4_000_000,
    cycles: int = 10_000,
    physics: bool = True,
    fast_sync_read: bool = True,
    realtime: bool = True,
    idle_block: int = IDLE_BLOCK,
) -> dict[str, object]:
    from pearl_robot.control.realtime import realtime_episode, realtime_priority
    from pearl_robot.robot.serial_robot import SerialRobot

    period = 1.0 / rate_hz
    options = ["--return-delay-time", "0", "--servo-baud-rates", str(baudrate), "--pace-wire-time"]
    if not physics:
        options.append("--no-physics")
    if realtime:
        options.append("--realtime")
    late: list[float] = []
    missed = 0
    with realtime_priority(realtime) as rt_granted, virtual_bus_device(hardware, *options) as vbus:
        # the Bus Watchdog at its longest (2.54 s): armed, yet the idle blocks (1 s at 500 Hz) never fire it
        robot = SerialRobot(spec, vbus.path, baudrate=baudrate, fast_sync_read=fast_sync_read, bus_watchdog_ms=2540.0)
        with robot:
            robot.enable()
            hold = robot.read().position
            for _ in range(200):  # warm up
                robot.read()
                robot.write(hold)
            clock = time.perf_counter
            skipped = 0
            times = [0.0] * cycles  # allocated before the loop: nothing grows in it
            idle = [0.0] * cycles  # the host's own wake-up lateness, as many idle periods in between
            steal_before = _steal_s()
            with realtime_episode(realtime) as grant:
                start = clock() + period
                for i in range(cycles):
                    if i and i % idle_block == 0:  # a block of idle periods: what the host alone does
                        for k in range(i - idle_block, i):
                            _wait_until(start, clock)
                            idle[k] = clock() - start
                            start += period
                    _wait_until(start, clock)
                    t0 = clock()
                    robot.read()
                    robot.write(hold)
                    t1 = clock()
                    times[i] = t1 - t0
                    end = start + period
                    if t1 > end:
                        missed += 1
                        late.append(t1 - end)
                        behind = math.ceil((t1 - start) / period)  # the periods this cycle took
                        skipped += behind - 1
                        start += behind * period
                    else:
                        start = end
                idled = idle_block * ((cycles - 1) // idle_block)
            steal = _steal_s() - steal_before if steal_before is not None else None
            stats = robot.stats_dict()
            wire_s = wire_time_s(cycle_bytes(robot), baudrate)
            state_read = robot.state_read
    t = percentiles_us(times, "cycle_")
    # an idle period whose wake-up came later than the slack a median cycle leaves would have been missed
    slack = period - t["cycle_p50_us"] * 1e-6
    host = np.asarray(idle[:idled])
    return {
        "rate_hz": rate_hz,
        "baudrate": baudrate,
        "cycles": cycles,
        "physics": physics,
        "realtime": realtime,
        "rt_granted": rt_granted,
        "gc_frozen": grant.gc_frozen,
        "memory_locked": grant.memory_locked,
        "state_read": state_read,
        "cycles_missed": missed,
        "periods_skipped": skipped,
        "missed_share": missed / cycles,
        "late_by_us_p50": float(np.median(late)) * 1e6 if late else 0.0,
        "cycle_p50_us": t["cycle_p50_us"],
        "cycle_p99_us": t["cycle_p99_us"],
        "cycle_max_us": t["cycle_max_us"],
        "wire_time_us": wire_s * 1e6,
        "wire_share": wire_s * 1e6 / t["cycle_p50_us"],
        "period_us": period * 1e6,
        "host_idle_periods": int(host.size),
        "host_wake_late_max_us": float(host.max()) * 1e6 if host.size else None,
        "host_would_miss": int((host > slack).sum()),
        "host_would_miss_share": float((host > slack).mean()) if host.size else None,
        "steal_s": steal,
        "stale_reads": stats.get("stale_reads", 0),
        "retries": stats.get("bus_retries", 0),
        "timeouts": stats.get("bus_timeouts", 0),
    }
