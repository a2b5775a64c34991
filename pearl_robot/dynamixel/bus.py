"""A Protocol 2.0 bus client: instructions out, status packets back, with timeouts and retries.

Every exchange has a deadline on the monotonic clock, computed from the bytes on the wire::

    timeout = (tx + rx bytes) * 10 bits / baudrate + replies * return delay + transport latency + margin

where *transport latency* is what the USB adapter adds (its latency timer: 16 ms on a stock FTDI or
U2D2, 1 ms once set low). It starts from the configured latency timer (the DynamixelSDK's rule: twice
the timer) and ``measure_latency()`` replaces it with what the bus actually does.

Protocol 2.0 status packets carry no sequence number, so a reply answers an instruction only if it
arrived after that instruction was written and before its deadline:

- whatever is queued on the port before an instruction goes out is read and discarded, each status
  packet in it counted as ``late_replies``;
- an exchange that ends with replies still owed (a timeout, or a retry whose first attempt may
  still answer) leaves the bus *owed*: before the next different instruction the client waits, up
  to twice that exchange's timeout after its last send, for the owed replies and discards them, so
  a late reply can never be taken as the answer to the next instruction; one that did come late
  widens the deadlines to cover it (``deadlines_widened``);
- retries of one exchange resend the same instruction to the ids still missing, so a late answer to
  an earlier attempt of it is an answer to the same question.

A status packet that is corrupted, cut short, from the wrong id or of the wrong size is dropped and
counted. ``fast_sync_read`` reads as ``sync_read`` does with FAST SYNC READ (``fast_sync``): one combined
status packet, each servo's part taken on its own CRC, id and error, as a packet of its own would be.
``transaction_sent_at`` is when the first attempt's write began (the earliest the servos can have
heard it, even when the write is preempted): what the servos' Realtime Tick is checked against.
Past the retry budget the call raises ``CommError`` (a ``RobotFault``) carrying what did
arrive. A port that fails or vanishes raises ``PortError`` at once. Nothing here blocks past its
deadline. ``last_reply_at`` is the monotonic time the last accepted status packet arrived.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from pearl_robot.dynamixel import fast_sync
from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.control_table import Field
from pearl_robot.dynamixel.crc import crc16
from pearl_robot.dynamixel.protocol import BROADCAST_ID, Instruction, Packet, PacketParser, Rejected, ResultCode
from pearl_robot.servo_bus import LATE_WINDOW_S as LATE_WINDOW_S  # (re-exports: defined here first)
from pearl_robot.servo_bus import MAX_TRANSPORT_LATENCY_S as MAX_TRANSPORT_LATENCY_S
from pearl_robot.servo_bus import BusError, ServoBusBase
from pearl_robot.servo_bus import CommError as CommError
from pearl_robot.servo_bus import LatencyMeasurement as LatencyMeasurement
from pearl_robot.servo_bus import PortError as PortError
from pearl_robot.servo_bus import SerialTransport as SerialTransport
from pearl_robot.servo_bus import Transport as Transport
from pearl_robot.servo_bus import transaction_timeout_s as transaction_timeout_s
from pearl_robot.servo_bus import wire_time_s as wire_time_s

DynamixelError = BusError  # the errors moved to pearl_robot.servo_bus; the names stay importable here


class ServoError(DynamixelError):
    """A servo answered with an error in its status packet (access error, range error, ...)."""

    def __init__(self, servo_id: int, error: proto.StatusError, what: str = "") -> None:
        self.servo_id = servo_id
        self.error = error
        super().__init__(f"servo id {servo_id}{' ' + what if what else ''}: {error}")


# ---- the client --------------------------------------------------------------------------------------
STAT_NAMES = (
    "transactions",  # instructions sent, retries included
    "replies",  # valid status packets received
    "retries",  # exchanges repeated after a bad or missing reply
    "timeouts",  # status packets still missing at a deadline (one per id)
    "late_replies",  # status packets that arrived after their deadline: discarded, never taken as an answer
    "crc_errors",  # status packets whose CRC did not match
    "malformed",  # impossible length or id in a header, status packet too short
    "unexpected",  # a valid packet nobody asked for: wrong id, wrong size, not a status, a duplicate
    "device_crc_errors",  # a servo said our instruction arrived damaged (result CRC error)
    "status_errors",  # a servo answered with another error result
    "failures",  # calls that ran out of retries
    "eeprom_writes",  # writes to the EEPROM area (ensure_value): flash wears out
    "deadlines_widened",  # a late reply made the deadlines wider (up to MAX_TRANSPORT_LATENCY_S)
)


_STATUS = int(Instruction.STATUS)
_DEVICE_CRC_ERROR = int(ResultCode.CRC_ERROR)


class DynamixelBus(ServoBusBase):
    """Thread-safe; one exchange at a time. ``stats`` counts everything that went wrong."""

    STAT_NAMES = STAT_NAMES
    _ping_wire_bytes = proto.instruction_packet_size(0) + proto.status_packet_size(3)

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
        self._sync_read_packets: dict[tuple[int, int, int, tuple[int, ...]], bytes] = {}
        self._sync_read_plans: dict[tuple[int, int, int], tuple[Callable, Callable, str]] = {}
        self._sync_write_templates: dict[tuple[int, int, tuple[int, ...], bool], SyncWriteTemplate] = {}

    def _discard_packets(self, data: bytes, sent_at: float | None) -> None:
        if not data:
            return
        now = self.clock()
        self._parser.max_length = proto.MAX_LENGTH
        self._parser.feed(data)
        while (item := self._parser.next()) is not None:
            if isinstance(item, Rejected):
                self.stats["crc_errors" if item.reason == "crc" else "malformed"] += 1
            elif item.is_status:
                self._late(now, sent_at)

    # ---- one exchange ----------------------------------------------------------------------------
    def _exchange(
        self, packet: bytes, expect: Mapping[int, int | None], *, settle: bool
    ) -> tuple[dict[int, Packet], int]:
        """Send ``packet`` and collect one status packet per id in ``expect`` (id -> parameter count,
        None for any) until all arrived or the deadline passed. ``settle``: a new instruction (not a
        retry of the last one): the bus is cleared of anything that answers an earlier one first.
        Returns the replies by id and how many status packets answered."""
        sent_at = self._send(packet, settle)
        if not expect:
            return {}, 0
        sizes = expect.values()
        n = len(expect)
        # No status packet here can be longer than the largest expected one (plus worst-case byte
        # stuffing): a LEN beyond that is a lie, rejected at once instead of waited for.
        if None in sizes:
            self._parser.max_length = proto.MAX_LENGTH
            rx = proto.status_packet_size(0) * n + sum(s or 0 for s in sizes)
        else:
            largest = max(sizes)
            self._parser.max_length = 4 + largest + largest // 3 + 1
            rx = proto.status_packet_size(0) * n + sum(sizes)
        timeout = self.timeout_s(len(packet), rx, n)
        deadline = sent_at + timeout
        got: dict[int, Packet] = {}
        parser, clock, read, accept = self._parser, self.clock, self.transport.read_some, self._accept
        while len(got) < n:
            remaining = deadline - clock()
            if remaining <= 0:
                break
            data = read(remaining)
            if not data:
                continue
            parser.feed(data)
            while (item := parser.next()) is not None:
                accept(item, expect, got)
            if got:
                self.last_reply_at = clock()
        missing = n - len(got)
        if missing:
            self.stats["timeouts"] += missing
            self._owe(missing, sent_at, timeout)
        return got, len(got)

    def _accept(self, item: Packet | Rejected, expect: Mapping[int, int | None], got: dict[int, Packet]) -> None:
        if isinstance(item, Rejected):
            self.stats["crc_errors" if item.reason == "crc" else "malformed"] += 1
            return
        if item.instruction != _STATUS or item.id not in expect or item.id in got:
            self.stats["unexpected"] += 1
            return
        result = item.error & 0x7F
        if result == _DEVICE_CRC_ERROR:
            self.stats["device_crc_errors"] += 1
            return  # our instruction was damaged on the way: ask again
        size = expect[item.id]
        if not result and size is not None and len(item.params) != size:
            # the answer to some other instruction, so to an earlier one: late
            self.stats["late_replies"] += 1
            return
        if result:
            self.stats["status_errors"] += 1
        self.stats["replies"] += 1
        got[item.id] = item

    def _exchange_fast(
        self, packet: bytes, ids: Sequence[int], length: int, *, settle: bool
    ) -> tuple[dict[int, Packet], int]:
        """A FAST SYNC READ: one combined status packet (``fast_sync``) whose parts are taken one by one,
        each as a status packet of its own would be (its CRC, id, error). Returns the replies by id and
        1 if the combined packet came (0 if not)."""
        sent_at = self._send(packet, settle)
        n = len(ids)
        size = fast_sync.status_size(n, length)
        head = fast_sync.status_head(n, length)
        self._parser.max_length = fast_sync.status_length(n, length)  # never stuffed: exactly this
        timeout = self.timeout_s(len(packet), size, n)
        deadline = sent_at + timeout
        got: dict[int, Packet] = {}
        parser, clock, read = self._parser, self.clock, self.transport.read_some
        arrived = False
        while not arrived:
            remaining = deadline - clock()
            if remaining <= 0:
                break
            data = read(remaining)
            if not data:
                continue
            parser.feed(data)
            while not arrived:
                if parser.starts_with(head):  # ours: taken whole, each part on its own CRC
                    if parser.pending < size:
                        break  # the rest is on its way
                    self._take_parts(parser.peek(size), ids, length, got)
                    parser.drop(size)
                    arrived = True
                    break
                item = parser.next()  # anything else
                if item is None:
                    break
                if isinstance(item, Rejected):
                    self.stats["crc_errors" if item.reason == "crc" else "malformed"] += 1
                elif item.instruction != _STATUS or item.id != BROADCAST_ID:
                    self.stats["unexpected"] += 1
                elif len(item.params) != fast_sync.status_params_size(n, length):
                    self.stats["late_replies"] += 1  # the answer to another fast read, so to an earlier one
                else:  # ours, after bytes that were not (the parser checked its CRC)
                    frame = head + bytes((item.error,)) + item.params
                    crc = crc16(frame)
                    self._take_parts(frame + bytes((crc & 0xFF, crc >> 8)), ids, length, got)
                    arrived = True
            if got:
                self.last_reply_at = clock()
        missing = n - len(got)
        if missing:
            self.stats["timeouts"] += missing
            if not arrived:
                self._owe(1, sent_at, timeout)
        return got, int(arrived)

    def _take_parts(self, frame: bytes, ids: Sequence[int], length: int, got: dict[int, Packet]) -> None:
        """Take the parts of a combined status packet whose CRC checks (a CRC error for each other)."""
        parts = fast_sync.split_status(frame, ids, length)
        stats = self.stats
        for expected_id, part in zip(ids, parts):
            if part is None:
                stats["crc_errors"] += 1
                continue
            servo_id, error, data = part
            if servo_id != expected_id or servo_id in got:
                stats["unexpected"] += 1
                continue
            result = error & 0x7F
            if result == _DEVICE_CRC_ERROR:
                stats["device_crc_errors"] += 1
                continue
            if result:
                stats["status_errors"] += 1
            stats["replies"] += 1
            got[servo_id] = Packet(servo_id, _STATUS, data, error)

    def _transact(
        self,
        build: Callable[[Sequence[int]], bytes],
        ids: Sequence[int],
        size: Callable[[int], int | None],
        what: str,
        *,
        retries: int | None = None,
        fast_length: int | None = None,
    ) -> dict[int, Packet]:
        """Exchange with retries: each retry asks only the ids still missing (``retries``: this call's
        budget instead of the bus's). ``fast_length``: FAST SYNC READs of that many bytes per id."""

        def exchange(packet: bytes, pending: Sequence[int], settle: bool) -> tuple[dict[int, Packet], int]:
            if fast_length is None:
                return self._exchange(packet, {i: size(i) for i in pending}, settle=settle)
            return self._exchange_fast(packet, pending, fast_length, settle=settle)

        return self._retrying(build, ids, exchange, what, retries)

    def _single(
        self,
        servo_id: int,
        instruction: Instruction,
        params: bytes,
        size: int | None,
        what: str,
        *,
        retries: int | None = None,
    ) -> Packet:
        packet = proto.encode_instruction(servo_id, instruction, params)
        return self._transact(lambda _ids: packet, [servo_id], lambda _i: size, what, retries=retries)[servo_id]

    @staticmethod
    def _check(reply: Packet, what: str) -> Packet:
        if not reply.status_error.ok:
            raise ServoError(reply.id, reply.status_error, what)
        return reply

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
            self._settle()
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
            self._parser.clear()
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

    def sync_read(
        self, address: int, length: int, ids: Sequence[int], *, retries: int | None = None
    ) -> dict[int, Packet]:
        """One status packet per id (check each ``status_error``); retries ask the missing ids only
        (``retries``: this call's budget instead of the bus's)."""
        build, size, what = self._sync_read_plan(Instruction.SYNC_READ, address, length)
        return self._transact(build, ids, size, what, retries=retries)

    def fast_sync_read(
        self, address: int, length: int, ids: Sequence[int], *, retries: int | None = None
    ) -> dict[int, Packet]:
        """``sync_read`` with FAST SYNC READ: one combined status packet answers for every id
        (``fast_sync``). The same result: a Packet per id that answered, retries for the missing ones.
        Only for servos that have it (``ControlTable.has_fast_sync_read``)."""
        build, size, what = self._sync_read_plan(Instruction.FAST_SYNC_READ, address, length)
        return self._transact(build, ids, size, what, retries=retries, fast_length=length)

    def _sync_read_plan(self, instruction: int, address: int, length: int) -> tuple[Callable, Callable, str]:
        """(packet builder, reply size, what it is called) of a sync read: the same every control cycle."""
        plan = self._sync_read_plans.get((instruction, address, length))
        if plan is None:
            name = "fast sync read" if instruction == Instruction.FAST_SYNC_READ else "sync read"
            what = f"{name} {length} bytes at {address}"
            plan = self._sync_read_plans[(instruction, address, length)] = (
                self._cached_builder(instruction, address, length),
                lambda _i: length,
                what,
            )
        return plan

    def _cached_builder(self, instruction: int, address: int, length: int) -> Callable[[Sequence[int]], bytes]:
        """The same request every control cycle: each packet is encoded once."""
        cache = self._sync_read_packets

        def build(pending: Sequence[int]) -> bytes:
            key = (instruction, address, length, tuple(pending))
            packet = cache.get(key)
            if packet is None:
                if len(cache) > 64:
                    cache.clear()
                params = proto.sync_read_params(address, length, pending)
                packet = cache[key] = proto.encode_instruction(BROADCAST_ID, instruction, params)
            return packet

        return build

    def sync_write(self, address: int, length: int, data: Mapping[int, bytes]) -> None:
        params = proto.sync_write_params(address, length, data)
        self._send_only(proto.encode_instruction(BROADCAST_ID, Instruction.SYNC_WRITE, params))

    def sync_write_ints(self, address: int, size: int, ids: Sequence[int], values: Sequence[int], signed: bool) -> None:
        """SYNC WRITE of one integer per id (the per-cycle goal write): a template per layout, where
        only the values change (``SyncWriteTemplate``)."""
        key = (address, size, tuple(ids), signed)
        template = self._sync_write_templates.get(key)
        if template is None:
            if len(self._sync_write_templates) > 16:
                self._sync_write_templates.clear()
            template = self._sync_write_templates[key] = SyncWriteTemplate(address, size, ids, signed)
        self._send_only(template.encode(values))

    def bulk_read(self, requests: Iterable[tuple[int, int, int]], *, retries: int | None = None) -> dict[int, Packet]:
        """``requests``: (id, address, length) each; one status packet per id (``retries``: as ``sync_read``)."""
        table = {servo_id: (address, length) for servo_id, address, length in requests}

        def build(pending: Sequence[int]) -> bytes:
            params = proto.bulk_read_params((i, *table[i]) for i in pending)
            return proto.encode_instruction(BROADCAST_ID, Instruction.BULK_READ, params)

        return self._transact(build, list(table), lambda i: table[i][1], "bulk read", retries=retries)

    def bulk_write(self, requests: Iterable[tuple[int, int, bytes]]) -> None:
        params = proto.bulk_write_params(requests)
        self._send_only(proto.encode_instruction(BROADCAST_ID, Instruction.BULK_WRITE, params))

    # ---- control table items -------------------------------------------------------------------
    def read_value(self, servo_id: int, item: Field) -> int:
        return proto.from_bytes(self.read(servo_id, item.address, item.size), item.signed)

    def write_value(self, servo_id: int, item: Field, value: int, *, reply: bool = True) -> None:
        self.write(servo_id, item.address, proto.to_bytes(value, item.size, item.signed), reply=reply)

    def ensure_value(self, servo_id: int, item: Field, value: int) -> bool:
        """Make ``item`` hold ``value``: read, compare, write once only if it differs, read back. True
        if it wrote. Flash wears out, so a write is never repeated blindly: a write whose status
        packet is lost counts as done when the read-back shows the value."""
        if self.read_value(servo_id, item) == value:
            return False
        what = f"write {item.name} = {value}"
        try:
            reply = self._single(
                servo_id,
                Instruction.WRITE,
                proto.write_params(item.address, proto.to_bytes(value, item.size, item.signed)),
                0,
                what,
                retries=0,
            )
            self._check(reply, what)
        except CommError:
            pass  # the read-back says whether it landed
        finally:
            if item.eeprom:
                self.stats["eeprom_writes"] += 1
        now = self.read_value(servo_id, item)
        if now != value:
            raise DynamixelError(f"servo id {servo_id}: {item.name} reads {now} after writing {value}")
        return True

    def sync_write_value(self, item: Field, values: Mapping[int, int]) -> None:
        self.sync_write(
            item.address, item.size, {i: proto.to_bytes(v, item.size, item.signed) for i, v in values.items()}
        )


class SyncWriteTemplate:
    """A SYNC WRITE of one integer per id, encoded from a template: the header, the instruction and the
    ids are fixed, so a cycle packs the values and continues the CRC from the fixed part. Values whose
    bytes need stuffing go through ``encode_instruction``."""

    def __init__(self, address: int, size: int, ids: Sequence[int], signed: bool) -> None:
        code = {1: "b", 2: "h", 4: "i"}[size]
        self._struct = struct.Struct("<HH" + ("B" + (code if signed else code.upper())) * len(ids))
        self._fields: list[int] = [address, size]
        for servo_id in ids:
            self._fields += [servo_id, 0]
        length = 1 + self._struct.size + 2  # instruction, parameters, CRC (before any stuffing)
        self._head = proto.HEADER + bytes((BROADCAST_ID, length & 0xFF, length >> 8, Instruction.SYNC_WRITE))
        self._head_crc = crc16(self._head)

    def encode(self, values: Sequence[int]) -> bytes:
        fields = self._fields.copy()  # (threads may share the template)
        fields[3::2] = values
        params = self._struct.pack(*fields)
        if proto.HEADER_PREFIX in params:
            return proto.encode_instruction(BROADCAST_ID, Instruction.SYNC_WRITE, params)
        crc = crc16(params, self._head_crc)
        return self._head + params + bytes((crc & 0xFF, crc >> 8))
