"""The bus client on a scripted transport with a fake clock: timeouts from the baud rate and the
bytes, retries that ask only the missing ids, every bad packet counted, errors past the budget."""

import pytest

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import (
    CommError,
    DynamixelBus,
    PortError,
    ServoError,
    transaction_timeout_s,
    wire_time_s,
)
from pearl_robot.dynamixel.protocol import Instruction
from pearl_robot.errors import RobotFault


class ScriptedTransport:
    """Answers each written packet with the next scripted reply (bytes, or an exception to raise).
    Reading with nothing to give advances the fake clock to the caller's deadline."""

    def __init__(self, replies=()) -> None:
        self.replies = list(replies)
        self.written: list[bytes] = []
        self.now = 0.0
        self._pending = b""
        self.discards = 0

    def clock(self) -> float:
        return self.now

    def write(self, data: bytes) -> None:
        self.written.append(data)
        packet = proto.decode_packet(data)
        no_reply = packet.instruction in (Instruction.SYNC_WRITE, Instruction.BULK_WRITE) or (
            packet.id == proto.BROADCAST_ID
            and packet.instruction not in (Instruction.PING, Instruction.SYNC_READ, Instruction.BULK_READ)
        )
        if no_reply:
            return
        reply = self.replies.pop(0) if self.replies else b""
        if isinstance(reply, Exception):
            raise reply
        self._pending += reply

    def read_some(self, timeout_s: float) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:7], self._pending[7:]  # arrives in small chunks
            return data
        self.now += timeout_s
        return b""

    def discard_input(self) -> None:
        self.discards += 1
        self._pending = b""

    def close(self) -> None:
        pass


def status(servo_id, params=b"", error=0):
    return proto.encode_status(servo_id, error, params)


def make_bus(replies, **kw):
    t = ScriptedTransport(replies)
    kw.setdefault("return_delay_us", 0)
    return DynamixelBus(t, clock=t.clock, **kw), t


def test_timeout_follows_baud_rate_and_packet_length():
    assert wire_time_s(100, 1_000_000) == pytest.approx(1e-3)
    t = transaction_timeout_s(14, 105, 5, baudrate=57_600, latency_timer_s=0.001, return_delay_s=0.0005, margin_s=0.002)
    assert t == pytest.approx(119 * 10 / 57_600 + 5 * 0.0005 + 0.002 + 0.002)
    bus, _ = make_bus([], baudrate=1_000_000, latency_timer_ms=16, timeout_margin_ms=2)
    assert bus.timeout_s(14, 105, 5) == pytest.approx(119e-5 + 0.032 + 0.002)


def test_ping_and_read_write():
    bus, t = make_bus([status(1, b"\x06\x04\x26"), status(1, b"\xa6\x00\x00\x00"), status(1)])
    model, firmware, error = bus.ping(1)
    assert (model, firmware, error.ok) == (1030, 38, True)
    assert bus.read(1, 132, 4) == b"\xa6\x00\x00\x00"
    bus.write(1, 116, proto.to_bytes(512, 4))
    assert t.written[1] == bytes.fromhex("FF FF FD 00 01 07 00 02 84 00 04 00 1D 15")
    assert t.written[2] == bytes.fromhex("FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89")


def test_sync_read_retries_only_the_missing_ids_and_counts_the_bad_packet():
    good = [status(i, bytes([i]) * 10) for i in (11, 12, 13)]
    corrupted = good[1][:-1] + bytes([good[1][-1] ^ 0x5A])
    bus, t = make_bus([good[0] + corrupted + good[2], good[1]])
    replies = bus.sync_read(126, 10, [11, 12, 13])
    assert {i: p.params for i, p in replies.items()} == {i: bytes([i]) * 10 for i in (11, 12, 13)}
    assert proto.parse_sync_read_params(proto.decode_packet(t.written[1]).params)[2] == [12]
    assert bus.stats["crc_errors"] == 1 and bus.stats["timeouts"] == 1 and bus.stats["retries"] == 1


def test_wrong_id_wrong_size_and_non_status_packets_are_rejected():
    stray = status(99, b"\x00" * 10)  # an id nobody asked
    short = status(11, b"\x00" * 3)  # a ping reply where a read was expected
    echo = proto.encode_instruction(0xFE, Instruction.SYNC_READ, proto.sync_read_params(126, 10, [11]))  # our echo
    good = status(11, b"\x01" * 10)
    bus, _ = make_bus([echo + stray + short + good])
    assert bus.sync_read(126, 10, [11])[11].params == b"\x01" * 10
    assert bus.stats["unexpected"] == 2  # the stray id and our echo
    assert bus.stats["late_replies"] == 1  # the answer to another (so an earlier) instruction
    assert bus.stats["retries"] == 0


def test_garbage_and_lying_length_before_a_reply():
    lie = proto.HEADER + b"\x0b\xff\x0f\x55"  # LEN far beyond anything real
    good = status(11, b"\x02" * 4)
    bus, _ = make_bus([b"\x00\x13" + lie + good])
    assert bus.read(11, 132, 4) == b"\x02" * 4
    assert bus.stats["malformed"] == 1


def test_past_the_retry_budget_raises_a_clear_comm_error_without_hanging():
    bus, t = make_bus([b"", b"", b""], retries=2, timeout_margin_ms=2)
    with pytest.raises(CommError, match=r"id 11 after 3 attempts \(3 timeouts\)") as info:
        bus.sync_read(126, 10, [11])
    assert isinstance(info.value, RobotFault)
    assert info.value.missing_ids == (11,)
    assert bus.stats["failures"] == 1
    assert t.now < 3 * 0.01  # three deadlines of a few ms, then it gave up


def test_device_crc_error_is_retried():
    bus, _ = make_bus([status(1, error=proto.ResultCode.CRC_ERROR), status(1, b"\x07")])
    assert bus.read(1, 146, 1) == b"\x07"
    assert bus.stats["device_crc_errors"] == 1


def test_servo_error_result_raises_servo_error():
    bus, _ = make_bus([status(1, error=proto.ResultCode.ACCESS_ERROR)])
    with pytest.raises(ServoError, match="access error") as info:
        bus.write(1, 0, b"\x00\x00")
    assert info.value.servo_id == 1


def test_port_failure_raises_port_error():
    bus, _ = make_bus([PortError("serial device /dev/x disconnected")])
    with pytest.raises(PortError, match="disconnected"):
        bus.ping(1)


def test_writes_without_replies_and_bulk_read():
    bus, t = make_bus([status(1, b"\x77\x00") + status(2, b"\x24")])
    bus.sync_write(116, 4, {1: proto.to_bytes(150, 4), 2: proto.to_bytes(170, 4)})
    assert t.written[0] == bytes.fromhex("FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87")
    bus.sync_write_ints(116, 4, [1, 2], [150, 170], signed=True)
    assert t.written[1] == t.written[0]
    replies = bus.bulk_read([(1, 144, 2), (2, 146, 1)])
    assert t.written[2] == bytes.fromhex("FF FF FD 00 FE 0D 00 92 01 90 00 02 00 02 92 00 01 00 1A 05")
    assert replies[1].params == b"\x77\x00" and replies[2].params == b"\x24"
    bus.bulk_write([(1, 32, proto.u16(160)), (2, 31, b"\x50")])
    assert t.written[3] == bytes.fromhex("FF FF FD 00 FE 10 00 93 01 20 00 02 00 A0 00 02 1F 00 01 00 50 B7 68")
    bus.write(proto.BROADCAST_ID, 68, b"\x02")  # a broadcast write never waits
