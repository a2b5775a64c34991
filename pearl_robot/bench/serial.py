"""Serial control cycle over a pty: SerialRobot read + write vs a raw pty exchange of the same bytes.

Two parts:

1. Transaction: one control cycle of the real ``SerialRobot`` (``read()`` = SYNC READ of present
   current/velocity/position of every joint, ``write()`` = SYNC WRITE of goal positions) against
   ``pearl-robot virtual-bus`` running as its own process, as hardware would be. The baseline is a
   raw exchange of the same byte counts with an echo process on another pty: the client writes the
   SYNC READ's bytes, the echo answers with as many bytes as the status packets take, the client
   writes the SYNC WRITE's bytes; no protocol work on either side. Blocks of both alternate so
   they share the machine's conditions. ``client_*``: the same robot with its port moved to a device
   that answers at once with valid status packets (our client stack without the Python device model).
   ``wire_time_us`` is what those bytes take on a 1 Mbps bus.
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
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import time

import numpy as np

from pearl_robot.bench.common import machine, percentiles_us
from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import SerialTransport, wire_time_s
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
    parser.add_argument("--hardware", default=None, help="hardware YAML (default: the shipped arm)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--adapter-latency-ms", type=float, default=16.0, help="late_replies: adapter latency (default %(default)s)"
    )
    parser.add_argument("--late-cycles", type=int, default=200, help="late_replies: cycles a run (default %(default)s)")


# The baseline device: a pty whose far end answers every REQUEST bytes with REPLY bytes and swallows
# the TRAILER bytes that follow (the SYNC WRITE). Prints its path, runs until SIGTERM.
ECHO_SCRIPT = """
import os, select, signal, sys, tty
request, trailer = int(sys.argv[1]), int(sys.argv[3])
# one reply, or several (comma-separated hex) answered in turn
replies = [bytes.fromhex(r) for r in sys.argv[2].split(",")] if not sys.argv[2].isdigit() else [bytes(int(sys.argv[2]))]
master, slave = os.openpty()
tty.setraw(slave)
print(os.ttyname(slave), flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
cycle = request + trailer
received = 0
answered = 0
while True:
    select.select([master], [], [])
    before = received
    received += len(os.read(master, 65536))
    for k in range(before // cycle, received // cycle + 1):
        if before < k * cycle + request <= received:
            os.write(master, replies[answered % len(replies)])
            answered += 1
"""


class _Device:
    """A child process that serves a pty and prints its path on the first line."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30.0)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line:
            self.close()
            raise PearlRobotError(f"device process {argv[:4]} did not print its path")
        self.path = line

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()


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


def measure_transaction(spec, hardware: str | None, cycles: int, block: int, gap_s: float) -> dict[str, object]:
    import serial

    from pearl_robot.robot.serial_robot import SerialRobot

    ids = [j.servo_id for j in spec.joints]
    n = len(ids)
    bus_argv = [sys.executable, "-m", "pearl_robot.cli.main", "virtual-bus", "--return-delay-time", "0"]
    if hardware:
        bus_argv += ["--hardware", str(hardware)]
    vbus = _Device(bus_argv)
    echo = raw_port = None
    try:
        robot = SerialRobot(spec, vbus.path, timeout_margin_ms=50.0)
        with robot:
            robot.enable()
            address, length = robot._state_block
            tx_read = proto.encode_instruction(
                proto.BROADCAST_ID, proto.Instruction.SYNC_READ, proto.sync_read_params(address, length, ids)
            )
            goal = robot.tables[0]["goal_position"]
            tx_write = proto.encode_instruction(
                proto.BROADCAST_ID,
                proto.Instruction.SYNC_WRITE,
                proto.sync_write_params(goal.address, goal.size, {i: proto.to_bytes(2048, 4) for i in ids}),
            )
            rx = n * proto.status_packet_size(length)
            echo = _Device([sys.executable, "-c", ECHO_SCRIPT, str(len(tx_read)), str(rx), str(len(tx_write))])
            raw_port = serial.Serial(echo.path, spec.bus.baudrate, timeout=0)
            fd = raw_port.fileno()
            hold = robot.read().position
            for _ in range(50):  # warm both paths up
                robot.read()
                robot.write(hold)
                _raw_cycle(fd, tx_read, tx_write, rx)
            transaction: list[float] = []
            raw: list[float] = []
            clock = time.perf_counter
            while len(transaction) < cycles:
                for _ in range(min(block, cycles - len(transaction))):
                    t0 = clock()
                    robot.read()
                    robot.write(hold)
                    transaction.append(clock() - t0)
                    _pause(gap_s)
                for _ in range(min(block, cycles - len(raw))):
                    t0 = clock()
                    _raw_cycle(fd, tx_read, tx_write, rx)
                    raw.append(clock() - t0)
                    _pause(gap_s)
            # the same robot, its port moved to a device that answers at once with valid status packets:
            # what our client stack costs without the Python device model behind the pty
            # status packets as the servos send them, each with its Realtime Tick 1 s later than the last
            # (SerialRobot checks that a reply was sampled after its instruction went out)
            replies = [
                b"".join(
                    proto.encode_status(
                        i,
                        0,
                        bytes((2, robot.bus_watchdog_units))
                        + proto.to_bytes(1000 * k % 32768, 2)
                        + proto.to_bytes(0, 2)
                        + proto.to_bytes(0, 4)
                        + proto.to_bytes(2048, 4),
                    )
                    for i in ids
                )
                for k in range(1, 33)
            ]
            hexes = ",".join(r.hex() for r in replies)
            replay = _Device([sys.executable, "-c", ECHO_SCRIPT, str(len(tx_read)), hexes, str(len(tx_write))])
            own_transport = robot.bus.transport
            robot.bus.transport = SerialTransport(replay.path, spec.bus.baudrate)
            client: list[float] = []
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
            finally:
                robot.bus.transport.close()
                robot.bus.transport = own_transport
                replay.close()
            stats = robot.stats_dict()
    finally:
        if raw_port is not None:
            raw_port.close()
        if echo is not None:
            echo.close()
        vbus.close()
    t = percentiles_us(transaction, "transaction_")
    r = percentiles_us(raw, "raw_")
    c = percentiles_us(client, "client_")
    return {
        "gap_between_cycles_ms": gap_s * 1e3,
        "joints": n,
        "tx_bytes": len(tx_read) + len(tx_write),
        "rx_bytes": rx,
        "wire_time_us": wire_time_s(len(tx_read) + len(tx_write) + rx, 1_000_000) * 1e6,
        **t,
        **r,
        **c,
        "ratio": t["transaction_p50_us"] / r["raw_p50_us"],
        "ratio_p99": t["transaction_p99_us"] / r["raw_p99_us"],
        "client_ratio": c["client_p50_us"] / r["raw_p50_us"],
        "transaction_retries": stats.get("bus_retries", 0),
        "transaction_timeouts": stats.get("bus_timeouts", 0),
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
    from pearl_robot.robot.spec import load_spec

    spec = load_spec(args.hardware)
    result: dict[str, object] = {"benchmark": "serial", "machine": machine()}
    result.update(measure_transaction(spec, args.hardware, args.cycles, args.block, args.gap_ms / 1e3))
    result.update(run_episode(spec, args.episode_cycles, args.corrupt_rate, args.rate_hz, args.seed))
    result["late_replies"] = late = late_replies(spec, args.late_cycles, args.adapter_latency_ms, args.rate_hz)
    result["targets"] = {
        "late_replies_stale_unflagged==0": late["stale_unflagged"] == 0,
        "late_replies_eeprom_writes==0": late["eeprom_writes"] == 0,
        "ratio<=2": result["ratio"] <= 2.0,
        "episode_completed_without_safe_stop": result["episode_cycles_done"] == args.episode_cycles
        and result["episode_safe_stops"] == 0
        and result["episode_error"] is None,
        "every_corruption_counted": result["episode_crc_errors_counted"] == result["episode_replies_corrupted"],
    }
    return result
