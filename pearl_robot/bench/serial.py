"""Serial control cycle over a pty: SerialRobot read + write vs a raw pty exchange of the same bytes.

On a Feetech arm (``--hardware so101``) the transaction of ``FeetechRobot`` against its raw baseline
(``serial_feetech``); on a Dynamixel arm, parts:

1. Transaction: one control cycle of the real ``SerialRobot`` (``read()`` = the state read of every
   joint, a FAST SYNC READ where the servos have it, ``write()`` = SYNC WRITE of goal positions)
   against ``pearl-robot virtual-bus`` running as its own process, as hardware would be. The baseline
   is a raw exchange of the same bytes with an echo process on another pty: the client writes the
   state read's bytes, the echo answers with as many bytes as the reply takes, the client writes the
   SYNC WRITE's bytes; no protocol work on either side. Blocks of both alternate so they share the
   machine's conditions. ``client_*``: the same robot with its port moved to a process that answers
   at once with valid status packets (our client stack without the Python device model);
   ``breakdown``: where the client's time goes (``serial_cost``: encode, CRC, parse, decode, system
   calls, and ``cycle_cpu_us``, the whole cycle's CPU without the port), with ``*_vs_raw_p50`` ratios
   to the raw baseline of the same run. ``wire_time_us`` is what those bytes take on a 1 Mbps bus.
   ``sync_read``: the same figures with the plain SYNC READ (the fallback for older firmware). The
   servos' Bus Watchdog is set to its longest (2.54 s): armed, as in use, yet a raw block never lets
   it fire (at the default 200 ms it did, and the transaction measured a stopped arm).
2. Episode: a ``cycles``-long 20 Hz run through ``open_robot`` (SafeRobot on SerialRobot) against
   an in-process virtual bus that corrupts a fraction of its status packets: it must finish without
   a safe stop, and the client must have counted every corrupted packet the bus sent.
3. Late replies (``late_replies``): a 20 Hz run on a virtual bus behind a stock USB adapter (every
   reply handed over ``--adapter-latency-ms`` late, 16 ms: an FTDI/U2D2 at its factory latency
   timer) with ideal servos, commanding a different goal every cycle, so every state says which
   cycle it answers. ``stale_unflagged``: states older than their cycle without a ``stale_read``
   flag (must be 0); ``eeprom_writes``: EEPROM writes of a connect when the servos already hold the
   configured values (must be 0); ``state_age_ms_*``: how old a state's data can be when ``read()``
   returns it (since its instruction went out); the cycle time against the same run on an adapter
   without latency (``cycle_ratio``).
4. Rate (``rate_500hz``, ``serial_rate``): ``--rate-cycles`` cycles at ``--rate-loop-hz`` against a
   virtual bus paced at the wire time of ``--rate-baud`` (4 Mbps): cycles missed, cycle p50/p99, the
   wire's share of a cycle; where over 1% are missed, ``variant``: the same at ``--rate-variant-hz``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import time
from collections.abc import Callable, Iterator

import numpy as np

from pearl_robot.bench.common import machine, percentiles_us
from pearl_robot.bench.serial_cost import breakdown, read_request, reply_bytes, state_blocks, syscalls_per_cycle_us
from pearl_robot.bench.serial_devices import echo_device, virtual_bus_device
from pearl_robot.bench.serial_rate import rate_run
from pearl_robot.dynamixel.bus import SerialTransport, SyncWriteTemplate, wire_time_s
from pearl_robot.errors import PearlRobotError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cycles", type=int, default=2000, help="timed cycles per method (default %(default)s)")
    parser.add_argument("--block", type=int, default=100, help="cycles per alternating block (default %(default)s)")
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=2.0,
        help="idle time between timed cycles, as a control loop has (default %(default)s; 0: back to back)",
    )
    parser.add_argument("--episode-cycles", type=int, default=200, help="episode cycles (default %(default)s)")
    parser.add_argument("--corrupt-rate", type=float, default=0.01, help="status packets corrupted in the episode")
    parser.add_argument("--rate-hz", type=float, default=None, help="episode rate (default: the arm's control rate)")
    parser.add_argument(
        "--hardware",
        default=None,
        help="hardware YAML (default: the shipped arm); its bus.protocol picks the scenarios: a Feetech arm "
        "(so101) runs the transaction against its own raw baseline only",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--adapter-latency-ms", type=float, default=16.0, help="late_replies: adapter latency (default %(default)s)"
    )
    parser.add_argument("--late-cycles", type=int, default=200, help="late_replies: cycles a run (default %(default)s)")
    parser.add_argument(
        "--rate-cycles", type=int, default=10_000, help="rate_500hz: cycles (default %(default)s; 0 skips it)"
    )
    parser.add_argument("--rate-loop-hz", type=float, default=500.0, help="rate_500hz: loop rate (default %(default)s)")
    parser.add_argument(
        "--rate-baud", type=int, default=4_000_000, help="rate_500hz: the servos' baud rate (default %(default)s)"
    )
    parser.add_argument(
        "--rate-no-physics", action="store_true", help="rate_500hz: ideal servos (no MuJoCo thread in the bus)"
    )
    parser.add_argument(
        "--rate-no-rt",
        action="store_true",
        help="rate_500hz: without real-time scheduling (the loop and the bus's serving thread at SCHED_OTHER, the "
        "collector running)",
    )
    parser.add_argument(
        "--rate-variant-hz",
        type=float,
        default=250.0,
        help="rate_500hz: when over 1%% of its cycles are missed, 2000 more cycles at this rate show what this "
        "machine sustains (default %(default)s; 0: none)",
    )


def _raw_cycle(fd: int, tx_read: bytes, tx_write: bytes, rx: int) -> None:
    os.write(fd, tx_read)
    got = 0
    deadline = time.monotonic() + 1.0
    while got < rx:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise PearlRobotError("raw pty exchange timed out")
        got += len(os.read(fd, 4096))
    os.write(fd, tx_write)


def _pause(seconds: float) -> None:
    """Idle between cycles (the device finishes the SYNC WRITE, as it does in a 50 ms control period)."""
    if seconds > 0:
        time.sleep(seconds)


def alternate(
    cycle: Callable[[], object], raw: Callable[[], object], cycles: int, block: int, gap_s: float
) -> tuple[list[float], list[float]]:
    """``cycles`` timed runs of ``cycle`` and of ``raw`` (seconds each), in alternating blocks of
    ``block`` so that both share the machine's conditions, after 50 untimed runs of each."""
    clock = time.perf_counter
    for _ in range(50):  # warm both paths up
        cycle()
        raw()
    timed: tuple[list[float], list[float]] = ([], [])
    while len(timed[0]) < cycles:
        for action, samples in ((cycle, timed[0]), (raw, timed[1])):
            for _ in range(min(block, cycles - len(samples))):
                t0 = clock()
                action()
                samples.append(clock() - t0)
                _pause(gap_s)
    return timed


@contextlib.contextmanager
def raw_exchange(path: str, baudrate: int, tx_read: bytes, tx_write: bytes, rx: int) -> Iterator[Callable[[], None]]:
    """A raw cycle on the echo device at ``path``: write ``tx_read``, take ``rx`` bytes, write ``tx_write``."""
    import serial

    port = serial.Serial(path, baudrate, timeout=0)
    try:
        fd = port.fileno()
        yield lambda: _raw_cycle(fd, tx_read, tx_write, rx)
    finally:
        port.close()


def robot_cycle(robot, hold: np.ndarray) -> Callable[[], None]:
    """One control cycle of ``robot``: read the state, write ``hold``."""

    def cycle() -> None:
        robot.read()
        robot.write(hold)

    return cycle


def measure_transaction(
    spec,
    hardware: str | None,
    cycles: int,
    block: int,
    gap_s: float,
    *,
    fast_sync_read: bool = True,
) -> dict[str, object]:
    from pearl_robot.robot.serial_robot import SerialRobot

    n = spec.num_joints
    clock = time.perf_counter
    with virtual_bus_device(hardware, "--return-delay-time", "0") as vbus:
        robot = SerialRobot(
            spec, vbus.path, timeout_margin_ms=50.0, bus_watchdog_ms=2540.0, fast_sync_read=fast_sync_read
        )
        with robot:
            robot.enable()
            hold = robot.read().position
            goal = robot.tables[0]["goal_position"]
            tx_read = read_request(robot)
            tx_write = SyncWriteTemplate(goal.address, goal.size, robot.ids, goal.signed).encode(
                robot._goal_ticks(hold)
            )
            replies = [reply_bytes(robot, parts) for parts in state_blocks(robot)]
            rx = len(replies[0])
            with (
                echo_device(tx_read, [bytes(rx)]) as echo,
                raw_exchange(echo.path, spec.bus.baudrate, tx_read, tx_write, rx) as exchange,
            ):
                transaction, raw = alternate(robot_cycle(robot, hold), exchange, cycles, block, gap_s)
            stats = robot.stats_dict()
            # the same robot, its port moved to a process that answers at once with valid status packets
            # (each with a Realtime Tick 1 s later than the last: SerialRobot checks that a reply was
            # sampled after its instruction went out): our client stack without the Python device model
            client: list[float] = []
            with echo_device(tx_read, replies) as instant:
                own = robot.bus.transport
                robot.bus.transport = transport = SerialTransport(instant.path, spec.bus.baudrate)
                try:
                    for _ in range(50):
                        robot.read()
                        robot.write(hold)
                    for _ in range(cycles):
                        t0 = clock()
                        robot.read()
                        robot.write(hold)
                        client.append(clock() - t0)
                        _pause(gap_s)
                    robot.bus.transport = own
                    syscalls_us = syscalls_per_cycle_us(robot, hold, transport, cycles, gap_s)
                finally:
                    robot.bus.transport = own
                    transport.close()
            cost = breakdown(robot, hold)
            state_read = robot.state_read
    t = percentiles_us(transaction, "transaction_")
    r = percentiles_us(raw, "raw_")
    c = percentiles_us(client, "client_")
    raw_p50 = r["raw_p50_us"]
    cost["syscalls_us"] = syscalls_us
    return {
        "state_read": state_read,
        "gap_between_cycles_ms": gap_s * 1e3,
        "joints": n,
        "tx_bytes": len(tx_read) + len(tx_write),
        "rx_bytes": rx,
        "wire_time_us": wire_time_s(len(tx_read) + len(tx_write) + rx, 1_000_000) * 1e6,
        "wire_time_4mbps_us": wire_time_s(len(tx_read) + len(tx_write) + rx, 4_000_000) * 1e6,
        **t,
        **r,
        **c,
        "ratio": t["transaction_p50_us"] / raw_p50,
        "ratio_p99": t["transaction_p99_us"] / r["raw_p99_us"],
        "client_ratio": c["client_p50_us"] / raw_p50,
        "transaction_vs_raw_p50": t["transaction_p50_us"] / raw_p50,
        "client_vs_raw_p50": c["client_p50_us"] / raw_p50,
        "cycle_cpu_vs_raw_p50": cost["cycle_cpu_us"] / raw_p50,
        "breakdown": cost,
        "breakdown_vs_raw_p50": {k.replace("_us", ""): v / raw_p50 for k, v in cost.items()},
        "transaction_retries": stats.get("bus_retries", 0),
        "transaction_timeouts": stats.get("bus_timeouts", 0),
        "transaction_stale_reads": stats.get("stale_reads", 0),
    }


def run_episode(spec, cycles: int, corrupt_rate: float, rate_hz: float | None, seed: int) -> dict[str, object]:
    from pearl_robot.calibrate.model import Calibration
    from pearl_robot.control.loop import RateLoop
    from pearl_robot.robot.registry import open_robot
    from pearl_robot.virtual import BusFaults, VirtualServoBus

    faults = BusFaults(corrupt_rate=corrupt_rate, seed=seed)
    period = 1.0 / (rate_hz or spec.control_rate_hz)
    error: str | None = None
    done = 0
    with VirtualServoBus.from_spec(spec, faults=faults) as vbus:
        # the virtual servos are mounted as the joints are: the identity calibration
        robot = open_robot(
            vbus.address, spec, calibration=Calibration.identity(spec), safe=True, timeout_margin_ms=20.0
        )
        backend = robot.unwrapped()
        try:
            with robot:
                robot.enable()
                start = robot.read().position.copy()
                arm = spec.arm_joint_indices
                loop = RateLoop(period)
                loop.start()
                for k in range(cycles):
                    target = start.copy()
                    target[arm] += 0.2 * np.sin(2 * np.pi * k * period / 4.0)
                    robot.read()
                    robot.write(target)
                    loop.wait()
                    done += 1
        except PearlRobotError as exc:
            error = str(exc)
        stats = backend.stats_dict()
        events = dict(getattr(robot, "events", {}))
        bus_stats = dict(vbus.stats)
    return {
        "episode_cycles": cycles,
        "episode_cycles_done": done,
        "episode_corrupt_rate": corrupt_rate,
        "episode_replies": bus_stats["replies"],
        "episode_replies_corrupted": bus_stats["replies_corrupted"],
        "episode_crc_errors_counted": stats.get("bus_crc_errors", 0),
        "episode_retries": stats.get("bus_retries", 0),
        "episode_timeouts": stats.get("bus_timeouts", 0),
        "episode_safe_stops": stats.get("safe_stops", 0) + events.get("estop", 0),
        "episode_error": error,
    }


def late_replies_run(spec, cycles: int, adapter_latency_ms: float, rate_hz: float | None = None) -> dict[str, object]:
    """The late_replies scenario on one adapter latency: see the module docstring."""
    from pearl_robot.control.loop import RateLoop
    from pearl_robot.dynamixel.control_table import RAD_PER_TICK
    from pearl_robot.robot.serial_robot import SerialRobot
    from pearl_robot.virtual import VirtualServoBus

    period = 1.0 / (rate_hz or spec.control_rate_hz)
    stale_flagged = stale_unflagged = 0
    ages: list[float] = []
    cycle: list[float] = []
    vbus = VirtualServoBus.from_spec(spec, physics=False, adapter_latency_ms=adapter_latency_ms)  # factory RDT
    with vbus:
        robot = SerialRobot(spec, vbus.device_path)
        with robot:
            eeprom_first = robot.stats["eeprom_writes"]
        robot = SerialRobot(spec, vbus.device_path)  # again: every value already set
        with robot:
            eeprom = robot.stats["eeprom_writes"]
            robot.enable()
            home = robot.read().position.copy()
            loop = RateLoop(period)
            loop.start()
            fresh_call = time.monotonic()
            for k in range(cycles):
                goal = home.copy()
                goal[0] += (k % 8) * 4 * RAD_PER_TICK  # a goal of its own every cycle (ideal servos follow at once)
                t0 = time.monotonic()
                sent = robot.write(goal)
                state = robot.read()
                t1 = time.monotonic()
                cycle.append(t1 - t0)
                stale = any(f.kind == "stale_read" for f in state.faults)
                if abs(state.position[0] - sent[0]) > 0.5 * RAD_PER_TICK:  # it answers an older cycle
                    stale_flagged += stale
                    stale_unflagged += not stale
                if not stale:
                    fresh_call = t0
                ages.append(t1 - fresh_call)
                loop.wait()
            stats = robot.stats_dict()
    age = percentiles_us(ages, "age_")
    times = percentiles_us(cycle, "cycle_")
    return {
        "adapter_latency_ms": adapter_latency_ms,
        "cycles": cycles,
        "stale_unflagged": stale_unflagged,
        "stale_flagged": stale_flagged,
        "eeprom_writes_first_connect": eeprom_first,
        "eeprom_writes": eeprom,
        "state_age_ms_p50": age["age_p50_us"] / 1e3,
        "state_age_ms_p99": age["age_p99_us"] / 1e3,
        "cycle_ms_p50": times["cycle_p50_us"] / 1e3,
        "cycle_ms_p99": times["cycle_p99_us"] / 1e3,
        "late_replies": stats.get("bus_late_replies", 0),
        "timeouts": stats.get("bus_timeouts", 0),
        "stale_reads": stats.get("stale_reads", 0),
        "measured_lateness_ms": robot.bus_latency_ms,
    }


def late_replies(spec, cycles: int, adapter_latency_ms: float, rate_hz: float | None) -> dict[str, object]:
    """The stock-adapter run and, as its baseline, the same run on an adapter without latency."""
    late = late_replies_run(spec, cycles, adapter_latency_ms, rate_hz)
    ideal = late_replies_run(spec, cycles, 0.0, rate_hz)
    return {
        **late,
        "baseline_cycle_ms_p50": ideal["cycle_ms_p50"],
        "baseline_stale_unflagged": ideal["stale_unflagged"],
        "cycle_ratio": late["cycle_ms_p50"] / ideal["cycle_ms_p50"],
    }


def run(args: argparse.Namespace) -> dict[str, object]:
    """The scenarios for the bus of ``--hardware``'s YAML (Feetech: ``serial_feetech``)."""
    from pearl_robot.bench import serial_feetech
    from pearl_robot.robot.spec import load_spec

    for name in ("cycles", "block", "episode_cycles", "late_cycles"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            raise PearlRobotError(f"{flag} must be at least 1, got {getattr(args, name)} (only --rate-cycles 0 skips)")
    if args.rate_cycles < 0:
        raise PearlRobotError(f"--rate-cycles must be 0 (skip) or more, got {args.rate_cycles}")
    spec = load_spec(args.hardware)
    runs = {"dynamixel": run_dynamixel, "feetech": serial_feetech.run}
    return runs[spec.bus.protocol](args, spec)


def run_dynamixel(args: argparse.Namespace, spec) -> dict[str, object]:
    result: dict[str, object] = {"benchmark": "serial", "machine": machine()}
    result.update(measure_transaction(spec, args.hardware, args.cycles, args.block, args.gap_ms / 1e3))
    result["sync_read"] = measure_transaction(
        spec, args.hardware, args.cycles, args.block, args.gap_ms / 1e3, fast_sync_read=False
    )
    result.update(run_episode(spec, args.episode_cycles, args.corrupt_rate, args.rate_hz, args.seed))
    result["late_replies"] = late = late_replies(spec, args.late_cycles, args.adapter_latency_ms, args.rate_hz)
    if args.rate_cycles:
        result["rate_500hz"] = rate = rate_run(
            spec,
            args.hardware,
            rate_hz=args.rate_loop_hz,
            baudrate=args.rate_baud,
            cycles=args.rate_cycles,
            physics=not args.rate_no_physics,
            realtime=not args.rate_no_rt,
        )
        if rate["missed_share"] > 0.01 and args.rate_variant_hz:
            rate["variant"] = rate_run(
                spec,
                args.hardware,
                rate_hz=args.rate_variant_hz,
                baudrate=args.rate_baud,
                cycles=2000,
                physics=not args.rate_no_physics,
                realtime=not args.rate_no_rt,
            )
    result["targets"] = {
        "late_replies_stale_unflagged==0": late["stale_unflagged"] == 0,
        "late_replies_eeprom_writes==0": late["eeprom_writes"] == 0,
        "ratio<=2": result["ratio"] <= 2.0,
        "cycle_cpu<=raw_p50": result["cycle_cpu_vs_raw_p50"] <= 1.0,
        "episode_completed_without_safe_stop": result["episode_cycles_done"] == args.episode_cycles
        and result["episode_safe_stops"] == 0
        and result["episode_error"] is None,
        "every_corruption_counted": result["episode_crc_errors_counted"] == result["episode_replies_corrupted"],
    }
    if args.rate_cycles:
        rate = result["rate_500hz"]
        result["targets"]["rate_500hz_missed==0"] = rate["cycles_missed"] == 0
        # the host's own stalls in as many idle periods of the same run: misses no loop could avoid
        result["targets"]["rate_500hz_missed<=host_would_miss"] = rate["cycles_missed"] <= rate["host_would_miss"]
    return result
