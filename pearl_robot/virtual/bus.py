"""A virtual Dynamixel bus on a pseudo-terminal: a chain of X-series servos that answers real
Protocol 2.0 packets, with the arm's physics behind it.

Any Protocol 2.0 client opens ``device_path`` (or the ``link`` symlink) like a USB serial adapter. The
pty, the serving thread, the plant, the USB adapter's latency timer, wire-time pacing, faults and the
operator's hand are ``PtyServoBus``'s (``pearl_robot.virtual.pty_bus``, shared with the Feetech bus);
this module is the Dynamixel side.

A status packet carries the id the instruction was addressed to (after a WRITE of a new ID the servo
answers at the new id from the next instruction on). A FAST SYNC READ is answered with one combined
status packet (``dynamixel.fast_sync``) when every servo it names is there, answers reads and has a
firmware with it (Firmware Version, 6); otherwise nobody answers it (the chain of parts cannot complete).

- Baud rates: each servo hears only instructions sent at its own Baud Rate (8). A new Baud Rate takes
  effect after its status packet, as on a real servo.
- Bus Watchdog (98): the serving thread never waits past the next watchdog deadline, so a servo
  stops within a few milliseconds of it (typically under one; see ``VirtualServo.check_watchdog``).
- A bad CRC on an instruction addressed to a servo is answered with a CRC Error status.

A combined FAST SYNC READ packet counts one reply per servo in it (``stats``); the drop fault draws per
servo and loses the whole packet when it hits any part (counting every part dropped), the corrupt fault
damages the CRC of the parts it hits (the servos after one compute theirs over the damaged bytes).

``hand.hold(joint_index, true_position_rad)``: the calibration procedure moves joints with torque off,
as a person does on the real arm; ``observe("led")`` is what that person sees
(``pearl_robot.virtual.operator`` follows the calibration procedure's LED cues with it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from pearl_robot.dynamixel import fast_sync
from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.control_table import BAUD_RATES, control_table
from pearl_robot.dynamixel.protocol import BROADCAST_ID, Instruction, PacketParser, Rejected, ResultCode
from pearl_robot.virtual.pty_bus import (  # noqa: F401  (public names of this module since before the split)
    COMMON_STAT_NAMES,
    POLL_S,
    USB_CHUNK_BYTES,
    PtyServoBus,
    Reply,
    UsbAdapter,
    baud_code,
    host_baud,
)
from pearl_robot.virtual.servo import VirtualServo

BROADCAST_ONLY = frozenset(
    {
        Instruction.SYNC_READ,
        Instruction.SYNC_WRITE,
        Instruction.FAST_SYNC_READ,
        Instruction.BULK_READ,
        Instruction.BULK_WRITE,
    }
)
_BAUD_REGISTERS = {bps: value for value, bps in BAUD_RATES.items()}
BUS_STAT_NAMES = (*COMMON_STAT_NAMES, "watchdog_stops")  # the last: servos stopped by their Bus Watchdog


def baud_register(bps: int) -> int:
    """The Baud Rate (8) value for ``bps``; ValueError for a speed X-series servos do not have."""
    return baud_code(bps, _BAUD_REGISTERS, "Dynamixel X-series")


class VirtualServoBus(PtyServoBus):
    """``from_spec(spec, ...)`` (``PtyServoBus.from_spec``) builds it from a hardware YAML: every servo
    keeps the factory Return Delay Time of 250 (500 us) unless told otherwise, and
    ``firmware_version=N`` makes every servo report firmware N instead of its model's (e.g. one older
    than FAST SYNC READ)."""

    broadcast_id = BROADCAST_ID
    stat_names = BUS_STAT_NAMES
    malformed_errors = (proto.ProtocolError,)
    parser_class = PacketParser
    servo_class = VirtualServo
    model_options = ("firmware_version",)
    control_table = staticmethod(control_table)
    baud_register = staticmethod(baud_register)

    @classmethod
    def _configure(cls, servo: VirtualServo, firmware_version: int | None = None) -> None:
        if firmware_version is not None:
            servo.set("firmware_version", firmware_version)

    # ---- Protocol 2.0 ---------------------------------------------------------------------------------
    def _servo_deadlines(self) -> list[float | None]:
        return [s.watchdog_deadline() for s in self.servos]

    def _check_servos(self, now: float) -> None:
        self.stats["watchdog_stops"] += sum(s.check_watchdog(now) for s in self.servos)

    def _parse(self, data: bytes) -> Iterator[proto.Packet | Rejected]:
        self._parser.feed(data)
        while (item := self._parser.next()) is not None:
            yield item

    def _accept(self, item: proto.Packet | Rejected, servos: dict[int, VirtualServo]) -> proto.Packet | None:
        if isinstance(item, Rejected):
            if item.reason == "crc":
                self.stats["crc_errors_received"] += 1
                servo = servos.get(item.id) if item.id is not None else None
                if servo is not None:  # the addressed servo says the packet arrived damaged
                    self._send([Reply(servo, servo.id, servo.status_error(ResultCode.CRC_ERROR), b"")])
            else:
                self.stats["malformed_received"] += 1
            return None
        if item.is_status:
            return None  # another device's answer (or our own echo): not for us
        return item

    def _target_id(self, packet: proto.Packet) -> int:
        return packet.id

    def _wire_size(self, packet: proto.Packet) -> int:
        return proto.instruction_packet_size(len(packet.params))

    def _status_packet(self, reply: Reply) -> bytes:
        return proto.encode_status(reply.id, reply.error, reply.params)

    def _dispatch(
        self, packet: proto.Packet, servos: dict[int, VirtualServo]
    ) -> tuple[list[Reply], list[Callable[[], None]], int | None]:
        """The replies, what to do after sending them, and the data length per servo when the replies
        go as one FAST SYNC READ packet (else None)."""
        instruction = packet.instruction
        replies: list[Reply] = []
        after: list[Callable[[], None]] = []
        if packet.id != BROADCAST_ID:
            servo = servos.get(packet.id)
            if servo is None:
                return replies, after, None
            if instruction in BROADCAST_ONLY:
                replies.append(Reply(servo, packet.id, servo.status_error(ResultCode.INSTRUCTION_ERROR), b""))
                return replies, after, None
            if instruction == Instruction.REBOOT:
                replies.append(Reply(servo, packet.id, servo.status_error(), b""))
                after.append(servo.reboot)
                return replies, after, None
            answer = servo.handle(packet, broadcast=False)
            if answer is not None:
                replies.append(Reply(servo, packet.id, *answer))
            return replies, after, None

        if instruction == Instruction.PING:
            for servo in sorted(servos.values(), key=lambda s: s.id):
                answer = servo.handle(packet, broadcast=True)
                if answer is not None:
                    replies.append(Reply(servo, servo.id, *answer))
        elif instruction == Instruction.SYNC_READ:
            address, length, ids = proto.parse_sync_read_params(packet.params)
            replies += self._reads(servos, ((i, address, length) for i in ids))
        elif instruction == Instruction.FAST_SYNC_READ:
            address, length, ids = proto.parse_sync_read_params(packet.params)
            return self._fast_reads(servos, ids, address, length), after, length
        elif instruction == Instruction.BULK_READ:
            replies += self._reads(servos, proto.parse_bulk_read_params(packet.params))
        elif instruction == Instruction.SYNC_WRITE:
            address, _length, records = proto.parse_sync_write_params(packet.params)
            for servo_id, data in records:
                if servo_id in servos:
                    servos[servo_id].write_range(address, data)
        elif instruction == Instruction.BULK_WRITE:
            for servo_id, address, data in proto.parse_bulk_write_params(packet.params):
                if servo_id in servos:
                    servos[servo_id].write_range(address, data)
        elif instruction == Instruction.REBOOT:
            after += [s.reboot for s in servos.values()]
        else:
            for servo in servos.values():
                servo.handle(packet, broadcast=True)
        return replies, after, None

    @staticmethod
    def _reads(servos: dict[int, VirtualServo], requests: Iterable[tuple[int, int, int]]) -> list[Reply]:
        out = []
        for servo_id, address, length in requests:
            servo = servos.get(servo_id)
            if servo is None or servo.get("status_return_level") < 1:
                continue
            result, data = servo.read_range(address, length)
            out.append(Reply(servo, servo_id, servo.status_error(result), data))
        return out

    def _fast_reads(
        self, servos: dict[int, VirtualServo], ids: Iterable[int], address: int, length: int
    ) -> list[Reply]:
        """Every named servo's part of a FAST SYNC READ, or none if one of them cannot answer."""
        out = []
        for servo_id in ids:
            servo = servos.get(servo_id)
            if servo is None or servo.status_return_level < 1 or not servo.has_fast_sync_read:
                return []
            result, data = servo.read_range(address, length)
            out.append(
                Reply(servo, servo_id, servo.status_error(result), data if result == ResultCode.OK else bytes(length))
            )
        return out

    def _encode_replies(self, replies: list[Reply], fast_length: int | None) -> bytes:
        """One status packet each, or one combined FAST SYNC READ packet (``fast_length``: its data
        length per servo)."""
        if fast_length is None:
            return super()._encode_replies(replies, None)
        faults, rng, stats = self.faults, self._rng, self.stats
        dropped, corrupt = False, []
        for k in range(len(replies)):
            if faults.drop_rate and rng.random() < faults.drop_rate:
                dropped = True
            elif faults.corrupt_rate and rng.random() < faults.corrupt_rate:
                corrupt.append(k)
        if dropped:  # a part that never came breaks the whole packet
            stats["replies_dropped"] += len(replies)
            return b""
        stats["replies_corrupted"] += len(corrupt)
        stats["replies"] += len(replies)
        return fast_sync.encode_status(((r.id, r.error, r.params) for r in replies), corrupt)
