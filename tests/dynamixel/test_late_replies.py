"""Late status packets on a fake clock: a reply answers an instruction only if it arrived after that
instruction went out and before its deadline; anything else is discarded and counted, never taken
as the answer to the next instruction."""

import pytest

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import CommError, DynamixelBus
from pearl_robot.dynamixel.control_table import XM430_W350
from pearl_robot.dynamixel.protocol import Instruction


class LateTransport:
    """Answers each instruction after ``delay_s`` (a list, one per instruction that gets a reply, or a
    constant). ``answer(packet)`` gives the reply bytes; reading advances a fake clock."""

    def __init__(self, answer, delay_s=0.0) -> None:
        self.answer = answer
        self.delays = delay_s
        self.now = 0.0
        self.queue: list[tuple[float, bytes]] = []
        self.written: list[proto.Packet] = []

    def clock(self) -> float:
        return self.now

    def write(self, data: bytes) -> None:
        packet = proto.decode_packet(data)
        self.written.append(packet)
        reply = self.answer(packet)
        if reply:
            delay = self.delays.pop(0) if isinstance(self.delays, list) else self.delays
            if delay is not None:
                self.queue.append((self.now + delay, reply))

    def read_some(self, timeout_s: float) -> bytes:
        due = min((t for t, _ in self.queue), default=None)
        if due is not None and due <= self.now + timeout_s:
            self.now = max(self.now, due)
            ready = [d for t, d in self.queue if t <= self.now]
            self.queue = [(t, d) for t, d in self.queue if t > self.now]
            return b"".join(ready)
        self.now += timeout_s
        return b""

    def discard_input(self) -> None:
        self.queue = [(t, d) for t, d in self.queue if t > self.now]

    def close(self) -> None:
        pass


def servo_memory():
    """id 11: operating mode 3 at 11, return delay 0 at 9; values readable by address."""
    return {9: 0, 11: 3, 10: 0}


def answer_reads(packet):
    memory = servo_memory()
    if packet.instruction == Instruction.READ:
        address, length = proto.parse_read_params(packet.params)
        return proto.encode_status(packet.id, 0, bytes([memory.get(address, 7)] * length))
    if packet.instruction == Instruction.PING:
        return proto.encode_status(packet.id, 0, proto.to_bytes(1020, 2) + b"\x2e")
    if packet.instruction == Instruction.WRITE:
        return proto.encode_status(packet.id, 0, b"")
    return b""


def make_bus(delay_s, **kw):
    t = LateTransport(answer_reads, delay_s)
    kw.setdefault("return_delay_us", 0)
    kw.setdefault("latency_timer_ms", 1.0)
    kw.setdefault("timeout_margin_ms", 2.0)
    return DynamixelBus(t, clock=t.clock, **kw), t


def test_a_late_reply_is_never_the_answer_to_the_next_read():
    # the first read's answer comes 16 ms late (past its deadline), the next one's at once
    bus, t = make_bus([0.016, 0.016, 0.0], retries=1)
    table = XM430_W350
    with pytest.raises(CommError):
        bus.read_value(11, table["return_delay_time"])  # both attempts answer after their deadlines
    assert bus.read_value(11, table["operating_mode"]) == 3  # not a late 0 of return_delay_time
    assert bus.stats["late_replies"] == 2
    assert bus.stats["deadlines_widened"] >= 1  # the deadlines now cover what was seen


def test_late_answers_are_waited_for_and_discarded_before_the_next_instruction():
    bus, t = make_bus([0.008, 0.0], retries=0)
    table = XM430_W350
    with pytest.raises(CommError):
        bus.read_value(11, table["return_delay_time"])  # deadline ~3 ms, answer at 8 ms
    assert bus.read_value(11, table["operating_mode"]) == 3
    assert bus.stats["late_replies"] == 1
    assert bus.last_lateness_s == pytest.approx(0.008)


def test_a_retry_accepts_the_late_answer_to_its_own_question():
    bus, t = make_bus([0.006, None], retries=1)  # the retry itself gets no answer
    assert bus.read_value(11, XM430_W350["operating_mode"]) == 3
    assert bus.stats["retries"] == 1 and bus.stats["late_replies"] == 0


def test_measured_latency_sets_the_deadlines():
    bus, t = make_bus(0.016, retries=0)
    with pytest.raises(CommError):
        bus.ping(11)  # a 1 ms latency timer assumed: the 16 ms answer is late
    measured = bus.measure_latency([11], pings=3)
    assert measured.samples == 3
    assert measured.lateness_max_s == pytest.approx(0.016, abs=5e-4)  # less the wire time
    late_before = bus.stats["late_replies"]
    for _ in range(50):
        bus.ping(11)
    assert bus.stats["late_replies"] == late_before and bus.stats["timeouts"] == 1


def test_ensure_value_writes_eeprom_only_when_it_differs_and_never_twice():
    memory = {9: 250}
    writes = []

    def answer(packet):
        if packet.instruction == Instruction.READ:
            address, length = proto.parse_read_params(packet.params)
            return proto.encode_status(packet.id, 0, bytes([memory[address]]))
        if packet.instruction == Instruction.WRITE:
            address, data = proto.parse_write_params(packet.params)
            writes.append((address, data))
            memory[address] = data[0]
            return proto.encode_status(packet.id, 0, b"")
        return b""

    t = LateTransport(answer, [0.0, None, 0.0, 0.0, 0.0])  # the write's status packet is lost
    bus = DynamixelBus(t, clock=t.clock, return_delay_us=0, retries=3)
    item = XM430_W350["return_delay_time"]
    assert bus.ensure_value(11, item, 0) is True
    assert writes == [(9, b"\x00")]  # written once, confirmed by the read-back
    assert bus.ensure_value(11, item, 0) is False
    assert writes == [(9, b"\x00")] and bus.stats["eeprom_writes"] == 1


def test_an_answer_of_the_other_size_is_late_not_the_answer():
    """SerialRobot alternates its state read's length: the late answer to the previous read has the
    other size and is counted late, even when it lands inside this read's window."""

    def answer(packet):
        address, length = proto.parse_sync_read_params(packet.params)[:2]
        return proto.encode_status(11, 0, bytes([length]) * length)

    t = LateTransport(answer, [0.006, 0.003])  # the first answer lands inside the second read's window, first
    bus = DynamixelBus(t, clock=t.clock, return_delay_us=0, retries=0, latency_timer_ms=1.0, timeout_margin_ms=2.0)
    with pytest.raises(CommError):
        bus.sync_read(224, 12, [11])
    bus._owed, bus._owed_until = 0, 0.0  # as if the settle window had passed without the late reply
    assert bus.sync_read(224, 13, [11])[11].params == bytes([13]) * 13
    assert bus.stats["late_replies"] == 1
