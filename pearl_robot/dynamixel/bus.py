"""A Protocol 2.0 bus client: instructions out, status packets back, with timeouts and retries.

Every exchange has a deadline on the monotonic clock, computed from the bytes on the wire::

    timeout = (tx + rx bytes) * 10 bits / baudrate + replies * return delay
              + 2 * USB latency timer + margin

(the DynamixelSDK's rule, with the servos' Return Delay Time added). A status packet that is
corrupted, cut short, from the wrong id or of the wrong size is dropped and counted; the ids still
missing when the deadline passes are asked again (a SYNC READ is resent for the missing ids only)
up to ``retries`` times. Past that budget the call raises ``CommError`` (a ``RobotFault``). A port
that fails or vanishes raises ``PortError`` at once. Nothing here blocks past its deadline.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.control_table import Field
from pearl_robot.dynamixel.protocol import BROADCAST_ID, Instruction, Packet, PacketParser, Rejected, ResultCode
from pearl_robot.errors import PearlRobotError, RobotFault


class DynamixelError(PearlRobotError):
    """Base class of the bus errors."""


class CommError(RobotFault, DynamixelError):
    """No valid status packet within the retry budget."""

    def __init__(self, message: str, missing_ids: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.missing_ids = tuple(missing_ids)


class PortError(RobotFault, DynamixelError):
    """The serial device failed or went away."""


class ServoError(DynamixelError):
    """A servo answered with an error in its status packet (access error, range error, ...)."""

    def __init__(self, servo_id: int, error: proto.StatusError, what: str = "") -> None:
        self.servo_id = servo_id
        self.error = error
        super().__init__(f"servo id {servo_id}{' ' + what if what else ''}: {error}")


# ---- transports ---------------------------------------------------------------------------------
class Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    def read_some(self, timeout_s: float) -> bytes:
        """Whatever bytes arrive within ``timeout_s`` (b"" if none); PortError if the port failed."""
        ...

    def discard_input(self) -> None: ...

    def close(self) -> None: ...


class SerialTransport:
    """pyserial opens and configures the device (raw mode, baud rate, exclusive lock); reads wait in
    ``select`` on its descriptor so that a deadline never needs a termios reconfiguration."""

    def __init__(self, device: str, baudrate: int, *, exclusive: bool = True) -> None:
        import serial

        self.device = device
        self._serial_error = serial.SerialException
        try:
            self.port = serial.Serial(device, baudrate, timeout=0, write_timeout=1.0, exclusive=exclusive)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortError(f"cannot open serial device {device}: {exc}") from None
        self._fd = self.port.fileno()

    def write(self, data: bytes, timeout_s: float = 1.0) -> None:
        """All of ``data`` (pyserial opened the descriptor non-blocking), within ``timeout_s``."""
        view = memoryview(data)
        deadline = None
        try:
            while view:
                try:
                    view = view[os.write(self._fd, view) :]
                except BlockingIOError:
                    now = time.monotonic()
                    deadline = deadline or now + timeout_s
                    _, ready, _ = select.select([], [self._fd], [], max(0.0, deadline - now))
                    if not ready:
                        raise PortError(f"serial device {self.device}: write timed out") from None
        except (OSError, ValueError) as exc:
            raise PortError(f"serial device {self.device} failed on write: {exc}") from None

    def read_some(self, timeout_s: float) -> bytes:
        try:
            ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout_s))
            if not ready:
                return b""
            data = os.read(self._fd, 4096)
        except (OSError, ValueError) as exc:
            raise PortError(f"serial device {self.device} failed on read: {exc}") from None
        if not data:  # readable but empty: the device is gone
            raise PortError(f"serial device {self.device} disconnected")
        return data

    def discard_input(self) -> None:
        try:
            self.port.reset_input_buffer()
        except (self._serial_error, OSError) as exc:
            raise PortError(f"serial device {self.device} failed: {exc}") from None

    def close(self) -> None:
        with contextlib.suppress(self._serial_error, OSError):
            self.port.close()


# ---- timing ----------------------------------------------------------------------------------------
def wire_time_s(n_bytes: int, baudrate: int) -> float:
    """Time ``n_bytes`` take on the wire: 8N1 framing is 10 bits per byte."""
    return n_bytes * 10.0 / baudrate


def transaction_timeout_s(
    tx_bytes: int,
    rx_bytes: int,
    replies: int,
    *,
    baudrate: int,
    latency_timer_s: float,
    return_delay_s: float,
    margin_s: float,
) -> float:
    return wire_time_s(tx_bytes + rx_bytes, baudrate) + replies * return_delay_s + 2.0 * latency_timer_s + margin_s


# ---- the client --------------------------------------------------------------------------------------
STAT_NAMES = (
    "transactions",  # instructions sent, retries included
    "replies",  # valid status packets received
    "retries",  # exchanges repeated after a bad or missing reply
    "timeouts",  # status packets still missing at a deadline (one per id)
    "crc_errors",  # status packets whose CRC did not match
    "malformed",  # impossible length or id in a header, status packet too short
    "unexpected",  # a valid packet nobody asked for: wrong id, wrong size, not a status, a duplicate
    "device_crc_errors",  # a servo said our instruction arrived damaged (result CRC error)
    "status_errors",  # a servo answered with another error result
    "failures",  # calls that ran out of retries
)


class DynamixelBus:
    """Thread-safe; one exchange at a time. ``stats`` counts everything that went wrong."""

    def __init__(
        self,
        transport: Transport,
        *,
        baudrate: int = 1_000_000,
        latency_timer_ms: float = 1.0,
        return_delay_us: float = 500.0,
        timeout_margin_ms: float = 2.0,
        retries: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.transport = transport
        self.baudrate = baudrate
        self.latency_timer_s = latency_timer_ms * 1e-3
        self.return_delay_s = return_delay_us * 1e-6  # what the servos are believed to use
        self.margin_s = timeout_margin_ms * 1e-3
        self.retries = retries
        self.clock = clock
        self.stats: collections.Counter[str] = collections.Counter({k: 0 for k in STAT_NAMES})
        self._parser = PacketParser()
        self._lock = threading.RLock()
        self._sync_read_packets: dict[tuple[int, int, tuple[int, ...]], bytes] = {}
        # Set when bytes may be left in the input queue (a timeout, extra bytes): the next exchange
        # flushes the queue first. A clean exchange leaves nothing, which saves a syscall per cycle.
        self._dirty = True

    @classmethod
    def open(cls, device: str, baudrate: int = 1_000_000, **options: object) -> DynamixelBus:
        return cls(SerialTransport(device, baudrate), baudrate=baudrate, **options)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> DynamixelBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def garbage_bytes(self) -> int:
        return self._parser.garbage_bytes

    def timeout_s(self, tx_bytes: int, rx_bytes: int, replies: int) -> float:
        return transaction_timeout_s(
            tx_bytes,
            rx_bytes,
            replies,
            baudrate=self.baudrate,
            latency_timer_s=self.latency_timer_s,
            return_delay_s=self.return_delay_s,
            margin_s=self.margin_s,
        )

    # ---- one exchange ----------------------------------------------------------------------------
    def _exchange(self, packet: bytes, expect: Mapping[int, int | None]) -> dict[int, Packet]:
        """Send ``packet`` and collect one status packet per id in ``expect`` (id -> parameter count,
        None for any) until all arrived or the deadline passed."""
        if self._dirty:
            self.transport.discard_input()
            self._parser.clear()
            self._dirty = False
        self.transport.write(packet)
        self.stats["transactions"] += 1
        if not expect:
            return {}
        rx = sum(proto.status_packet_size(n or 0) for n in expect.values())
        # No status packet here can be longer than the largest expected one (plus worst-case byte
        # stuffing): a LEN beyond that is a lie, rejected at once instead of waited for.
        sizes = list(expect.values())
        if None in sizes:
            self._parser.max_length = proto.MAX_LENGTH
        else:
            largest = max(sizes)
            self._parser.max_length = 4 + largest + largest // 3 + 1
        deadline = self.clock() + self.timeout_s(len(packet), rx, len(expect))
        got: dict[int, Packet] = {}
        while len(got) < len(expect):
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            data = self.transport.read_some(remaining)
            if not data:
                continue
            self._parser.feed(data)
            while (item := self._parser.next()) is not None:
                self._accept(item, expect, got)
        missing = len(expect) - len(got)
        if missing or self._parser.pending:
            self._dirty = True
            self.stats["timeouts"] += missing
        return got

    def _accept(self, item: Packet | Rejected, expect: Mapping[int, int | None], got: dict[int, Packet]) -> None:
        if isinstance(item, Rejected):
            self.stats["crc_errors" if item.reason == "crc" else "malformed"] += 1
            return
        if item.instruction != Instruction.STATUS or item.id not in expect or item.id in got:
            self.stats["unexpected"] += 1
            return
        result = item.error & 0x7F
        if result == ResultCode.CRC_ERROR:
            self.stats["device_crc_errors"] += 1
            return  # our instruction was damaged on the way: ask again
        size = expect[item.id]
        if not result and size is not None and len(item.params) != size:
            self.stats["unexpected"] += 1  # a status packet for some other instruction
            return
        if result:
            self.stats["status_errors"] += 1
        self.stats["replies"] += 1
        got[item.id] = item

    def _transact(
        self,
        build: Callable[[Sequence[int]], bytes],
        ids: Sequence[int],
        size: Callable[[int], int | None],
        what: str,
    ) -> dict[int, Packet]:
        """Exchange with retries: each retry asks only the ids still missing."""
        with self._lock:
            pending = list(ids)
            result: dict[int, Packet] = {}
            before = self.stats.copy()
            for attempt in range(self.retries + 1):
                if attempt:
                    self.stats["retries"] += 1
                packet = build(pending)
                got = self._exchange(packet, {i: size(i) for i in pending})
                result.update(got)
                pending = [i for i in pending if i not in got]
                if not pending:
                    return result
            seen = {k: self.stats[k] - before[k] for k in STAT_NAMES if k not in ("transactions", "replies", "retries")}
            problems = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in seen.items() if v) or "no bytes"
            self.stats["failures"] += 1
            raise CommError(
                f"{what}: no valid status packet from id {', '.join(map(str, pending))} after "
                f"{self.retries + 1} attempts ({problems})",
                pending,
            )

    def _single(self, servo_id: int, instruction: Instruction, params: bytes, size: int | None, what: str) -> Packet:
        packet = proto.encode_instruction(servo_id, instruction, params)
        return self._transact(lambda _ids: packet, [servo_id], lambda _i: size, what)[servo_id]

    @staticmethod
    def _check(reply: Packet, what: str) -> Packet:
        if not reply.status_error.ok:
            raise ServoError(reply.id, reply.status_error, what)
        return reply

    def _send_only(self, packet: bytes) -> None:
        """An instruction no device answers (broadcast writes, SYNC/BULK WRITE)."""
        with self._lock:
            self.transport.write(packet)
            self.stats["transactions"] += 1

    # ---- instructions ------------------------------------------------------------------------------
    def ping(self, servo_id: int) -> tuple[int, int, proto.StatusError]:
        """(model number, firmware version, status error) of one servo."""
        reply = self._check(self._single(servo_id, Instruction.PING, b"", 3, f"ping id {servo_id}"), "ping")
        return proto.from_bytes(reply.params[0:2]), reply.params[2], reply.status_error

    def broadcast_ping(self, wait_s: float | None = None) -> dict[int, tuple[int, int]]:
        """Every servo that answers: id -> (model number, firmware version). Waits ``wait_s`` (default:
        long enough for all 253 ids to answer at this baud rate)."""
        packet = proto.encode_instruction(BROADCAST_ID, Instruction.PING)
        if wait_s is None:
            wait_s = self.timeout_s(len(packet), 253 * proto.status_packet_size(3), 253)
        found: dict[int, tuple[int, int]] = {}
        with self._lock:
            self.transport.discard_input()
            self._parser.clear()
            self._dirty = True
            self._parser.max_length = proto.MAX_LENGTH
            self.transport.write(packet)
            self.stats["transactions"] += 1
            deadline = self.clock() + wait_s
            while (remaining := deadline - self.clock()) > 0:
                data = self.transport.read_some(remaining)
                self._parser.feed(data)
                while (item := self._parser.next()) is not None:
                    if isinstance(item, Rejected):
                        self.stats["crc_errors" if item.reason == "crc" else "malformed"] += 1
                    elif item.is_status and len(item.params) == 3 and item.id not in found:
                        self.stats["replies"] += 1
                        found[item.id] = (proto.from_bytes(item.params[0:2]), item.params[2])
                    else:
                        self.stats["unexpected"] += 1
        return found

    def read(self, servo_id: int, address: int, length: int) -> bytes:
        what = f"read {length} bytes at {address}"
        reply = self._single(servo_id, Instruction.READ, proto.read_params(address, length), length, what)
        return self._check(reply, what).params

    def write(self, servo_id: int, address: int, data: bytes, *, reply: bool = True) -> None:
        """Write ``data`` at ``address``. ``reply=False`` (or the broadcast id) sends without waiting."""
        params = proto.write_params(address, data)
        if servo_id == BROADCAST_ID or not reply:
            self._send_only(proto.encode_instruction(servo_id, Instruction.WRITE, params))
            return
        what = f"write {len(data)} bytes at {address}"
        self._check(self._single(servo_id, Instruction.WRITE, params, 0, what), what)

    def reg_write(self, servo_id: int, address: int, data: bytes) -> None:
        params = proto.write_params(address, data)
        if servo_id == BROADCAST_ID:
            self._send_only(proto.encode_instruction(servo_id, Instruction.REG_WRITE, params))
            return
        what = f"reg write at {address}"
        self._check(self._single(servo_id, Instruction.REG_WRITE, params, 0, what), what)

    def action(self, servo_id: int = BROADCAST_ID) -> None:
        if servo_id == BROADCAST_ID:
            self._send_only(proto.encode_instruction(servo_id, Instruction.ACTION))
            return
        self._check(self._single(servo_id, Instruction.ACTION, b"", 0, "action"), "action")

    def reboot(self, servo_id: int) -> None:
        self._check(self._single(servo_id, Instruction.REBOOT, b"", 0, "reboot"), "reboot")

    def factory_reset(self, servo_id: int, option: int = 0x02) -> None:
        """0xFF: everything, 0x01: all but the id, 0x02: all but id and baud rate."""
        params = bytes((option,))
        self._check(self._single(servo_id, Instruction.FACTORY_RESET, params, 0, "factory reset"), "factory reset")

    def clear_multi_turn(self, servo_id: int) -> None:
        params = bytes((0x01, 0x44, 0x58, 0x4C, 0x22))
        self._check(self._single(servo_id, Instruction.CLEAR, params, 0, "clear"), "clear")

    def sync_read(self, address: int, length: int, ids: Sequence[int]) -> dict[int, Packet]:
        """One status packet per id (check each ``status_error``); retries ask the missing ids only."""

        def build(pending: Sequence[int]) -> bytes:
            key = (address, length, tuple(pending))
            packet = self._sync_read_packets.get(key)
            if packet is None:  # the same request every control cycle: encode it once
                if len(self._sync_read_packets) > 64:
                    self._sync_read_packets.clear()
                packet = proto.encode_instruction(
                    BROADCAST_ID, Instruction.SYNC_READ, proto.sync_read_params(address, length, pending)
                )
                self._sync_read_packets[key] = packet
            return packet

        return self._transact(build, ids, lambda _i: length, f"sync read {length} bytes at {address}")

    def sync_write(self, address: int, length: int, data: Mapping[int, bytes]) -> None:
        params = proto.sync_write_params(address, length, data)
        self._send_only(proto.encode_instruction(BROADCAST_ID, Instruction.SYNC_WRITE, params))

    def sync_write_ints(self, address: int, size: int, ids: Sequence[int], values: Sequence[int], signed: bool) -> None:
        """SYNC WRITE of one integer per id (the per-cycle goal write, packed in one step)."""
        code = {1: "b", 2: "h", 4: "i"}[size]
        code = code if signed else code.upper()
        params = struct.pack("<HH" + ("B" + code) * len(ids), address, size, *_interleave(ids, values))
        self._send_only(proto.encode_instruction(BROADCAST_ID, Instruction.SYNC_WRITE, params))

    def bulk_read(self, requests: Iterable[tuple[int, int, int]]) -> dict[int, Packet]:
        """``requests``: (id, address, length) each; one status packet per id."""
        table = {servo_id: (address, length) for servo_id, address, length in requests}

        def build(pending: Sequence[int]) -> bytes:
            params = proto.bulk_read_params((i, *table[i]) for i in pending)
            return proto.encode_instruction(BROADCAST_ID, Instruction.BULK_READ, params)

        return self._transact(build, list(table), lambda i: table[i][1], "bulk read")

    def bulk_write(self, requests: Iterable[tuple[int, int, bytes]]) -> None:
        params = proto.bulk_write_params(requests)
        self._send_only(proto.encode_instruction(BROADCAST_ID, Instruction.BULK_WRITE, params))

    # ---- control table items -------------------------------------------------------------------
    def read_value(self, servo_id: int, item: Field) -> int:
        return proto.from_bytes(self.read(servo_id, item.address, item.size), item.signed)

    def write_value(self, servo_id: int, item: Field, value: int, *, reply: bool = True) -> None:
        self.write(servo_id, item.address, proto.to_bytes(value, item.size, item.signed), reply=reply)

    def sync_write_value(self, item: Field, values: Mapping[int, int]) -> None:
        self.sync_write(
            item.address, item.size, {i: proto.to_bytes(v, item.size, item.signed) for i, v in values.items()}
        )

    def stats_dict(self) -> dict[str, int]:
        out = dict(self.stats)
        out["garbage_bytes"] = self.garbage_bytes
        return out


def _interleave(ids: Sequence[int], values: Sequence[int]) -> list[int]:
    out: list[int] = []
    for servo_id, value in zip(ids, values):
        out.append(servo_id)
        out.append(value)
    return out
