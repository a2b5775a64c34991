"""A Feetech SCS/STS bus client: instructions out, status packets back, with deadlines and retries.

Every exchange has a deadline on the monotonic clock, from the bytes on the wire::

    timeout = (tx + rx bytes) * 10 bits / baudrate + replies * return delay + transport latency + margin

*transport latency* starts at twice the adapter's latency timer (the vendor SDK's rule) and
``measure_latency()`` replaces it with what the bus actually does. The serial port, the wire time, the
errors and the exchange machinery (owed replies, retries, the latency measurement) are shared with the
Dynamixel client (``pearl_robot.servo_bus``); this module brings the Feetech codec.

Feetech status packets carry neither a sequence number nor an instruction byte, so a reply answers an
instruction only if it comes from an id that was asked, with the size that was asked, after the
instruction went out and before its deadline. An exchange that ends with replies owed leaves the bus
*owed*: before the next instruction the client waits for them (up to twice that exchange's timeout
after its send) and discards them as ``late_replies``; a late reply widens the deadlines (bounded).
Retries ask only the ids still missing. A checksum error, an impossible length, a frame cut short,
an error byte above 0x7F (the SDK's test of a corrupt status packet) is dropped and counted.

The error byte of a status packet is the servo's own state (``protocol.StatusError``: voltage, angle
sensor, overheat, overcurrent, overload); the data it carries is valid all the same, so the bus never
raises on it: each reply carries it (``Packet.code``) and ``servo_errors`` keeps the last one per id.
Past the retry budget a call raises ``CommError`` (a ``RobotFault``) carrying what did arrive; a port
that fails raises ``PortError`` at once. Nothing here blocks past its deadline.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from pearl_robot.feetech import protocol as proto
from pearl_robot.feetech.control_table import STS3215, FeetechControlTable
from pearl_robot.feetech.protocol import BROADCAST_ID, Instruction, Packet, PacketParser, Rejected
from pearl_robot.servo_bus import BusError, CommError, LatencyMeasurement, PortError, ServoBusBase, Transport

__all__ = ["CommError", "FeetechBus", "FeetechError", "LatencyMeasurement", "PortError", "Transport"]


class FeetechError(BusError):
    """A servo that does not hold what was written to it (``ensure_value``), or a request the bus
    cannot carry."""


STAT_NAMES = (
    "transactions",  # instructions sent, retries included
    "replies",  # valid status packets received
    "retries",  # exchanges repeated after a bad or missing reply
    "timeouts",  # status packets still missing at a deadline (one per id)
    "late_replies",  # status packets that came after their deadline (or of another request's size)
    "crc_errors",  # frames whose checksum did not match (named as the Dynamixel bus's: tools read one key)
    "malformed",  # an impossible length, an error byte above 0x7F
    "truncated",  # frames cut short (what was left when the bus settled)
    "unexpected",  # a valid frame nobody asked for: wrong id, a duplicate
    "status_errors",  # replies whose error byte had a bit set (voltage, overload, ...)
    "failures",  # calls that ran out of retries
    "eeprom_writes",  # EEPROM items written (ensure_value, write_eeprom): flash wears out
    "deadlines_widened",  # a late reply made the deadlines wider (up to MAX_TRANSPORT_LATENCY_S)
)
EEPROM_COMMIT_S = 0.050  # how much longer an unlocked EEPROM write may take to answer (a flash commit)
_REJECT_STAT = {"checksum": "crc_errors", "length": "malformed", "truncated": "truncated"}


class FeetechBus(ServoBusBase):
    """Thread-safe; one exchange at a time. ``tables`` gives each id's control table (default STS3215):
    values are encoded in its byte order and sign convention."""

    STAT_NAMES = STAT_NAMES
    QUIET_STATS = ("transactions", "replies", "retries", "status_errors")
    _ping_wire_bytes = 2 * proto.packet_size(0)

    def __init__(
        self,
        transport: Transport,
        *,
        baudrate: int = 1_000_000,
        latency_timer_ms: float = 1.0,
        return_delay_us: float = 0.0,
        timeout_margin_ms: float = 2.0,
        retries: int = 3,
        tables: Mapping[int, FeetechControlTable] | None = None,
        default_table: FeetechControlTable = STS3215,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            transport,
            PacketParser(),
            baudrate=baudrate,
            latency_timer_ms=latency_timer_ms,
            return_delay_us=return_delay_us,
            timeout_margin_ms=timeout_margin_ms,
            retries=retries,
            clock=clock,
        )
        self.tables: dict[int, FeetechControlTable] = dict(tables or {})
        self.default_table = default_table
        self.servo_errors: dict[int, int] = {}  # id -> error byte of its last status packet
        self._packets: dict[tuple, bytes] = {}  # encoded sync reads: the same request every control cycle

    def table(self, servo_id: int) -> FeetechControlTable:
        return self.tables.get(servo_id, self.default_table)

    # ---- what arrived late ------------------------------------------------------------------------
    def _discard_packets(self, data: bytes, sent_at: float | None) -> None:
        now = self.clock()
        self._parser.max_length = proto.MAX_LENGTH
        for item in self._parser.feed(data):
            if isinstance(item, Rejected):
                self._count_rejects([item])
            else:
                self._late(now, sent_at)

    def _forget_partial(self) -> None:
        self._count_rejects(self._parser.flush())

    def _count_rejects(self, items: Sequence[Packet | Rejected]) -> None:
        for item in items:
            stat = _REJECT_STAT.get(item.reason) if isinstance(item, Rejected) else "late_replies"
            if stat:
                self.stats[stat] += 1

    # ---- one exchange ----------------------------------------------------------------------------------
    def _exchange(self, packet: bytes, expect: Mapping[int, int], *, settle: bool) -> tuple[dict[int, Packet], int]:
        """Send ``packet``, collect one status packet per id in ``expect`` (id -> parameter count) until
        all arrived or the deadline passed; the replies by id and how many came."""
        sent_at = self._send(packet, settle)
        n = len(expect)
        # no status packet here is longer than the largest expected one: a larger LEN is a lie
        self._parser.max_length = proto.MIN_LENGTH + max(expect.values())
        rx = sum(proto.packet_size(size) for size in expect.values())
        timeout = self.timeout_s(len(packet), rx, n)
        deadline = sent_at + timeout
        got: dict[int, Packet] = {}
        while len(got) < n and (remaining := deadline - self.clock()) > 0:
            data = self.transport.read_some(remaining)
            if data:
                for item in self._parser.feed(data):
                    self._accept(item, expect, got)
                if got:
                    self.last_reply_at = self.clock()
        missing = n - len(got)
        if missing:
            self.stats["timeouts"] += missing
            self._owe(missing, sent_at, timeout)
        return got, len(got)

    def _accept(self, item: Packet | Rejected, expect: Mapping[int, int], got: dict[int, Packet]) -> None:
        if isinstance(item, Rejected):
            self._count_rejects([item])
            return
        if item.servo_id not in expect or item.servo_id in got:
            self.stats["unexpected"] += 1
            return
        if item.code > proto.MAX_STATUS_ERROR:
            self.stats["malformed"] += 1
            return
        if len(item.params) != expect[item.servo_id]:
            self.stats["late_replies"] += 1  # the answer to a request of another size: an earlier one
            return
        if item.code:
            self.stats["status_errors"] += 1
        self.stats["replies"] += 1
        self.servo_errors[item.servo_id] = item.code
        got[item.servo_id] = item

    def _transact(
        self,
        build: Callable[[Sequence[int]], bytes],
        ids: Sequence[int],
        size: int,
        what: str,
        *,
        retries: int | None = None,
    ) -> dict[int, Packet]:
        def exchange(packet: bytes, pending: Sequence[int], settle: bool) -> tuple[dict[int, Packet], int]:
            return self._exchange(packet, dict.fromkeys(pending, size), settle=settle)

        return self._retrying(build, ids, exchange, what, retries)

    def _single(
        self, servo_id: int, instruction: Instruction, params: bytes, size: int, what: str, retries: int | None = None
    ) -> Packet:
        if not 0 <= servo_id <= proto.MAX_ID:
            raise FeetechError(f"{what}: servo id must be 0..253 (a reply needs one servo), got {servo_id}")
        packet = proto.instruction_packet(servo_id, instruction, params)
        return self._transact(lambda _ids: packet, [servo_id], size, what, retries=retries)[servo_id]

    # ---- instructions ---------------------------------------------------------------------------------
    def ping(self, servo_id: int) -> int:
        """The error byte of the servo's answer to PING (0: no error)."""
        return self._single(servo_id, Instruction.PING, b"", 0, f"ping id {servo_id}").code

    def broadcast_ping(self, wait_s: float | None = None) -> dict[int, int]:
        """Every servo that answers a PING to the broadcast id: id -> its error byte. Each answers after
        its own Return Delay Time; two servos with one id collide (counted as ``crc_errors``). Waits
        ``wait_s`` (default: long enough for all 254 ids at this baud rate)."""
        packet = proto.instruction_packet(BROADCAST_ID, Instruction.PING)
        every = proto.MAX_ID + 1
        if wait_s is None:
            wait_s = self.timeout_s(len(packet), every * proto.packet_size(0), every)
        found: dict[int, int] = {}
        with self._lock:
            deadline = self._send(packet, settle=True) + wait_s
            self._parser.max_length = proto.MIN_LENGTH  # a status packet without parameters
            while (remaining := deadline - self.clock()) > 0:
                for item in self._parser.feed(self.transport.read_some(remaining)):
                    if isinstance(item, Rejected):
                        self._count_rejects([item])
                    elif item.params or item.servo_id in found or item.code > proto.MAX_STATUS_ERROR:
                        self.stats["unexpected"] += 1
                    else:
                        self.stats["replies"] += 1
                        found[item.servo_id] = self.servo_errors[item.servo_id] = item.code
            self._forget_partial()
        return found

    def model_number(self, servo_id: int) -> int:
        """Model Number (address 3), in the byte order of the id's table (the SDK's ``ping``)."""
        return self.read_value(servo_id, "model_number")

    def read(self, servo_id: int, address: int, length: int) -> bytes:
        what = f"read {length} bytes at {address} of id {servo_id}"
        return self._single(servo_id, Instruction.READ, proto.read_params(address, length), length, what).params

    def write(self, servo_id: int, address: int, data: bytes, *, reply: bool = True) -> None:
        """Write ``data`` at ``address``; the broadcast id or ``reply=False`` sends without waiting."""
        self._write(Instruction.WRITE, servo_id, address, data, reply)

    def reg_write(self, servo_id: int, address: int, data: bytes, *, reply: bool = True) -> None:
        """A write held until ACTION."""
        self._write(Instruction.REG_WRITE, servo_id, address, data, reply)

    def _write(self, instruction: Instruction, servo_id: int, address: int, data: bytes, reply: bool) -> None:
        params = proto.write_params(address, data)
        if servo_id == BROADCAST_ID or not reply:
            self._send_only(proto.instruction_packet(servo_id, instruction, params))
            return
        self._single(servo_id, instruction, params, 0, f"{instruction.name.lower()} at {address} of id {servo_id}")

    def action(self, servo_id: int = BROADCAST_ID) -> None:
        if servo_id == BROADCAST_ID:
            self._send_only(proto.instruction_packet(servo_id, Instruction.ACTION))
            return
        self._single(servo_id, Instruction.ACTION, b"", 0, f"action on id {servo_id}")

    def sync_read(
        self, address: int, length: int, ids: Sequence[int], *, retries: int | None = None
    ) -> dict[int, Packet]:
        """SYNC READ (0x82): every id answers with its own status packet, in the order asked."""

        def build(pending: Sequence[int]) -> bytes:
            key = (address, length, tuple(pending))
            packet = self._packets.get(key)
            if packet is None:
                if len(self._packets) > 64:
                    self._packets.clear()
                params = proto.sync_read_params(address, length, tuple(pending))
                packet = self._packets[key] = proto.instruction_packet(BROADCAST_ID, Instruction.SYNC_READ, params)
            return packet

        return self._transact(build, ids, length, f"sync read {length} bytes at {address}", retries=retries)

    def sync_write(self, address: int, length: int, data: Mapping[int, bytes]) -> None:
        """SYNC WRITE (0x83): no servo answers."""
        params = proto.sync_write_params(address, length, dict(data))
        self._send_only(proto.instruction_packet(BROADCAST_ID, Instruction.SYNC_WRITE, params))

    # ---- control table items by name -----------------------------------------------------------------
    def read_value(self, servo_id: int, name: str) -> int:
        table = self.table(servo_id)
        item = table[name]
        return table.decode(name, self.read(servo_id, item.address, item.size))

    def read_values(self, servo_id: int, names: Sequence[str]) -> dict[str, int]:
        """Several items in one READ of the span that holds them."""
        table = self.table(servo_id)
        items = [table[n] for n in names]
        start = min(f.address for f in items)
        data = self.read(servo_id, start, max(f.end for f in items) - start)
        return {f.name: table.decode(f.name, data[f.address - start : f.end - start]) for f in items}

    def write_value(self, servo_id: int, name: str, value: int, *, reply: bool = True) -> None:
        table = self.table(servo_id)
        self.write(servo_id, table[name].address, table.encode(name, value), reply=reply)

    def sync_write_value(self, name: str, values: Mapping[int, int]) -> None:
        """One item on several servos in one SYNC WRITE (each value in its servo's byte order)."""
        items = {self.table(i)[name] for i in values}
        if len(items) != 1:
            raise FeetechError(f"sync write of {name}: the servos' tables place it differently")
        item = items.pop()
        self.sync_write(item.address, item.size, {i: self.table(i).encode(name, v) for i, v in values.items()})

    @contextlib.contextmanager
    def unlocked(self, servo_id: int) -> Iterator[None]:
        """EEPROM writes inside are kept over a power cycle: Lock := 0, then Lock := 1 whatever happens."""
        self.write_value(servo_id, "lock", 0)
        try:
            yield
        finally:
            self.write_value(servo_id, "lock", 1)

    def write_eeprom(self, servo_id: int, name: str, value: int) -> None:
        """Unlock, write, relock: the value survives a power cycle. The servo commits it to flash before
        it answers (tens of ms have been measured): that write's deadline allows for it."""
        with self.unlocked(servo_id), self._lock:
            margin, self.margin_s = self.margin_s, self.margin_s + EEPROM_COMMIT_S
            try:
                self.write_value(servo_id, name, value)
            finally:
                self.margin_s = margin
        self.stats["eeprom_writes"] += 1

    def ensure_value(self, servo_id: int, name: str, value: int) -> bool:
        """Make ``name`` hold ``value``: read, compare, write once only if it differs (EEPROM items
        through the Lock), read back. True if it wrote. A write whose status packet is lost counts as
        done when the read-back shows the value (flash wears out: no blind repeats)."""
        if self.read_value(servo_id, name) == value:
            return False
        item = self.table(servo_id)[name]
        try:
            if item.eeprom:
                self.write_eeprom(servo_id, name, value)
            else:
                self.write_value(servo_id, name, value)
        except CommError:
            pass  # the read-back says whether it landed
        now = self.read_value(servo_id, name)
        if now != value:
            raise FeetechError(f"servo id {servo_id}: {name} reads {now} after writing {value}")
        return True
