"""Where a control cycle's client time goes (``bench serial``'s breakdown), medians per cycle in us.

- ``cycle_cpu_us``: ``SerialRobot.read()`` + ``write()`` against an in-memory device that answers at
  once (``InstantTransport``): the client's whole CPU cost of a cycle, no system calls;
- ``encode_us``: building the cycle's two instruction packets (the SYNC WRITE from its template, with
  its CRC; the state read's packet is encoded once and reused);
- ``parse_us``: the reply bytes to one status reply per servo (framing, every CRC, ids and errors);
- ``crc_us``: the CRC-16 part of encode and parse (the SYNC WRITE's and the reply's checks);
- ``decode_us``: the replies to joint state (freshness checks, alerts, faults);
- ``other_us``: the rest of the cycle (the Robot API's checks, goal limits, units, RobotState);
- ``syscalls_us``: time inside the port's calls (write, select, read) over a pty to an instant device
  process, which includes waiting for that process to answer, as the raw exchange does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from pearl_robot.dynamixel import fast_sync
from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import DynamixelBus, SyncWriteTemplate
from pearl_robot.dynamixel.crc import crc16, crc16_prefixes


class InstantTransport:
    """In memory: every write of ``request`` queues the next of ``replies`` (in turn), at once."""

    def __init__(self, request: bytes, replies: Sequence[bytes]) -> None:
        self.request = request
        self.replies = list(replies)
        self._next = 0
        self._pending = b""

    def write(self, data: bytes) -> None:
        if data == self.request:
            self._pending = self.replies[self._next % len(self.replies)]
            self._next += 1

    def read_some(self, timeout_s: float) -> bytes:
        data, self._pending = self._pending, b""
        return data

    def discard_input(self) -> None:
        self._pending = b""

    def close(self) -> None:
        pass


class TimedTransport:
    """Another transport, with the time spent inside its calls added up in ``spent_s``."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.spent_s = 0.0

    def write(self, data: bytes) -> None:
        t0 = time.perf_counter()
        try:
            self.inner.write(data)
        finally:
            self.spent_s += time.perf_counter() - t0

    def read_some(self, timeout_s: float) -> bytes:
        t0 = time.perf_counter()
        try:
            return self.inner.read_some(timeout_s)
        finally:
            self.spent_s += time.perf_counter() - t0

    def discard_input(self) -> None:
        self.inner.discard_input()

    def close(self) -> None:
        self.inner.close()


def median_us(action: Callable[[], object], repeats: int) -> float:
    samples = np.empty(repeats)
    clock = time.perf_counter_ns
    for k in range(repeats):
        t0 = clock()
        action()
        samples[k] = clock() - t0
    return float(np.median(samples)) / 1e3


def state_blocks(robot, cycles: int = 32) -> list[list[tuple[int, int, bytes]]]:
    """Per cycle, each servo's (id, error, state block) as the servos would send it: torque on, the
    Bus Watchdog as configured, a Realtime Tick 1 s later each cycle (so every reply is fresh)."""
    blocks = []
    for k in range(1, cycles + 1):
        block = bytes((2, robot.bus_watchdog_units)) + proto.to_bytes(1000 * k % 32768, 2) + bytes(2 + 4)
        blocks.append([(i, 0, block + proto.to_bytes(2048, 4)) for i in robot.ids])
    return blocks


def read_request(robot) -> bytes:
    """The state read's instruction packet, as the robot sends it."""
    address, length = robot._state_block
    if robot.state_read == "fast_sync_read":
        return fast_sync.encode_instruction(address, length, robot.ids)
    params = proto.sync_read_params(address, length, robot.ids)
    return proto.encode_instruction(proto.BROADCAST_ID, proto.Instruction.SYNC_READ, params)


def reply_bytes(robot, parts: list[tuple[int, int, bytes]]) -> bytes:
    if robot.state_read == "fast_sync_read":
        return fast_sync.encode_status(parts)
    return b"".join(proto.encode_status(i, e, data) for i, e, data in parts)


def breakdown(robot, hold: np.ndarray, repeats: int = 2000) -> dict[str, float]:
    """The in-memory part of the breakdown (all but ``syscalls_us``), on a connected, enabled robot.
    It leaves the robot's port as it was (its counters count these cycles too)."""
    address, length = robot._state_block
    ids = robot.ids
    fast = robot.state_read == "fast_sync_read"
    blocks = state_blocks(robot)
    replies = [reply_bytes(robot, parts) for parts in blocks]
    request = read_request(robot)
    goal = robot.tables[0]["goal_position"]
    template = SyncWriteTemplate(goal.address, goal.size, ids, goal.signed)
    values = robot._goal_ticks(hold)
    build = DynamixelBus(InstantTransport(b"", [b""]))._cached_builder(request[7], address, length)
    write_packet = template.encode(values)
    out: dict[str, float] = {}
    out["encode_us"] = median_us(lambda: (build(ids), template.encode(values)), repeats)
    reply = replies[0]
    if fast:
        ends = [fast_sync.HEADER_SIZE + 1 + k * (length + 4) + length + 2 for k in range(len(ids))]
        check_reply: Callable[[], object] = lambda: crc16_prefixes(reply, ends)  # noqa: E731
    else:
        size = proto.status_packet_size(length)
        check_reply = lambda: [crc16(reply[k : k + size - 2]) for k in range(0, len(reply), size)]  # noqa: E731
    out["crc_us"] = median_us(lambda: (crc16(write_packet[:-2]), check_reply()), repeats)
    probe = DynamixelBus(InstantTransport(b"", [b""]))
    if fast:
        parse: Callable[[], object] = lambda: probe._take_parts(reply, ids, length, {})  # noqa: E731
    else:
        expect = dict.fromkeys(ids, length)

        def parse() -> object:
            got: dict[int, proto.Packet] = {}
            probe._parser.feed(reply)
            while (item := probe._parser.next()) is not None:
                probe._accept(item, expect, got)
            return got

    out["parse_us"] = median_us(parse, repeats)
    packets = [{i: proto.Packet(i, proto.Instruction.STATUS, data, e) for i, e, data in parts} for parts in blocks]
    turn = iter(range(10**9))
    out["decode_us"] = median_us(lambda: robot._decode(packets[next(turn) % len(packets)]), repeats)
    own = robot.bus.transport
    robot.bus.transport = InstantTransport(request, replies)
    try:
        for _ in range(100):
            robot.read()
            robot.write(hold)
        out["cycle_cpu_us"] = median_us(lambda: (robot.read(), robot.write(hold)), repeats)
    finally:
        robot.bus.transport = own
    out["other_us"] = out["cycle_cpu_us"] - out["encode_us"] - out["parse_us"] - out["decode_us"]
    return out


def syscalls_per_cycle_us(robot, hold: np.ndarray, transport, cycles: int, gap_s: float) -> float:
    """Median time per cycle inside the port's calls, ``transport`` (an instant device over a pty)."""
    own = robot.bus.transport
    timed = robot.bus.transport = TimedTransport(transport)
    samples = []
    try:
        for k in range(cycles + 50):
            before = timed.spent_s
            robot.read()
            robot.write(hold)
            if k >= 50:
                samples.append(timed.spent_s - before)
            if gap_s > 0:
                time.sleep(gap_s)
    finally:
        robot.bus.transport = own
    return float(np.median(samples)) * 1e6
