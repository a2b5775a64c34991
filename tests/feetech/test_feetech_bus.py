"""FeetechBus over a real pty: every instruction, values by name, the Lock around EEPROM writes,
deadlines from the wire time, retries, resynchronisation after garbage, every fault counted."""

import time

import pytest
from feetech_helpers import PtyServos

from pearl_robot.errors import RobotFault
from pearl_robot.feetech import protocol as proto
from pearl_robot.feetech.bus import CommError, FeetechBus, FeetechError, PortError
from pearl_robot.feetech.control_table import STS3215
from pearl_robot.feetech.protocol import Instruction

pytestmark = pytest.mark.timeout(60)
IDS = [1, 2, 3, 4, 5, 6]


@pytest.fixture
def servos():
    with PtyServos(IDS) as chain:
        yield chain


@pytest.fixture
def bus(servos):
    with FeetechBus.open(servos.path, 1_000_000, timeout_margin_ms=20) as client:
        yield client


def test_timeout_follows_wire_time_latency_and_return_delay():
    bus = FeetechBus(None, baudrate=115_200, latency_timer_ms=16, return_delay_us=40, timeout_margin_ms=2)
    assert bus.timeout_s(10, 48, 6) == pytest.approx(58 * 10 / 115_200 + 6 * 40e-6 + 0.032 + 0.002)


def test_ping_model_read_write(bus, servos):
    assert bus.ping(3) == 0
    assert bus.model_number(3) == 777
    bus.write_value(2, "goal_position", 1234)
    assert servos.value(2, "goal_position") == 1234
    servos.set_value(2, "present_speed", -321)
    assert bus.read_value(2, "present_speed") == -321
    values = bus.read_values(2, ["present_position", "present_speed", "present_load"])
    assert values == {"present_position": 0, "present_speed": -321, "present_load": 0}
    assert bus.stats["replies"] == 5 and bus.stats["timeouts"] == 0


def test_error_bits_come_back_with_valid_data(bus, servos):
    servos.error_bits[4] = int(proto.StatusError.OVERLOAD)
    servos.set_value(4, "present_position", 2000)
    assert bus.read_value(4, "present_position") == 2000
    assert bus.servo_errors[4] == 0x20 and bus.stats["status_errors"] == 1


def test_sync_read_and_sync_write(bus, servos):
    for i in IDS:
        servos.set_value(i, "present_position", 100 * i)
    replies = bus.sync_read(56, 2, IDS)
    assert {i: STS3215.decode("present_position", r.params) for i, r in replies.items()} == {i: 100 * i for i in IDS}
    bus.sync_write_value("goal_position", {i: 2000 + i for i in IDS})
    bus.ping(1)  # (the sync write has no reply: a ping after it says it was taken)
    assert [servos.value(i, "goal_position") for i in IDS] == [2000 + i for i in IDS]


def test_reg_write_waits_for_action(bus, servos):
    bus.reg_write(5, 42, STS3215.encode("goal_position", 777))
    assert servos.value(5, "goal_position") == 0
    bus.action()
    bus.ping(5)
    assert servos.value(5, "goal_position") == 777


def test_eeprom_writes_go_through_the_lock(bus, servos):
    assert bus.ensure_value(1, "return_delay_time", 250) is False  # already so (the factory value): nothing written
    assert bus.ensure_value(1, "min_position_limit", 100) is True
    writes = [p for p in servos.received if p.code == Instruction.WRITE]
    assert [proto.parse_write_params(p.params) for p in writes] == [
        (55, b"\x00"),
        (9, STS3215.encode("min_position_limit", 100)),
        (55, b"\x01"),
    ]
    assert bus.stats["eeprom_writes"] == 1
    assert bus.ensure_value(1, "torque_limit", 500) is True  # RAM: no Lock
    assert servos.value(1, "lock") == 1


def test_ensure_value_says_when_the_servo_does_not_hold_it(bus, servos):
    servos.memory[1] = _ReadOnly(servos.memory[1], STS3215["max_torque_limit"].address)
    with pytest.raises(FeetechError, match="max_torque_limit reads 1000 after writing 10"):
        bus.ensure_value(1, "max_torque_limit", 10)


class _ReadOnly(bytearray):
    """A memory whose 2 bytes at ``address`` ignore writes."""

    def __init__(self, data, address):
        super().__init__(data)
        self.address = address

    def __setitem__(self, key, value):
        if isinstance(key, slice) and key.start == self.address:
            return
        super().__setitem__(key, value)


def test_missing_id_is_retried_then_comm_error_with_the_partial_answer(bus, servos):
    servos.silent = {4}
    with pytest.raises(CommError) as err:
        bus.sync_read(56, 2, IDS, retries=2)
    assert err.value.missing_ids == (4,)
    assert sorted(err.value.partial) == [1, 2, 3, 5, 6]
    assert isinstance(err.value, RobotFault)
    assert bus.stats["retries"] == 2 and bus.stats["timeouts"] == 3 and bus.stats["failures"] == 1
    retry = servos.received[-1]
    assert retry.code == Instruction.SYNC_READ and proto.parse_sync_read_params(retry.params) == (56, 2, [4])
    servos.silent = set()
    assert len(bus.sync_read(56, 2, IDS)) == 6  # the bus recovers


def test_corrupt_reply_and_garbage_are_counted_and_resynchronised(bus, servos):
    servos.corrupt = 1
    servos.garbage = b"\xff\x00\x13\xff\xff\xff"
    assert len(bus.sync_read(56, 2, IDS)) == 6
    assert bus.stats["crc_errors"] >= 1 and bus.stats["retries"] == 1
    assert bus.stats_dict()["garbage_bytes"] > 0


def test_a_late_reply_is_never_taken_as_the_next_answer(bus, servos):
    bus.transport_latency_s = 0.0
    bus.margin_s = 0.001
    servos.late_s = 0.03
    with pytest.raises(CommError):
        bus.read(1, 56, 2)
    servos.late_s = 0.0
    servos.set_value(1, "present_position", 42)
    assert bus.read_value(1, "present_position") == 42  # not the late answer (0) to the first read
    assert bus.stats["late_replies"] >= 1 and bus.stats["deadlines_widened"] >= 1


def test_measure_latency_sets_the_deadlines(bus):
    measured = bus.measure_latency(IDS[:2], pings=2)
    assert measured.samples == 4
    assert bus.transport_latency_s == pytest.approx(max(0.5e-3, 1.5 * measured.lateness_max_s))


def test_no_servo_answers_a_ping_fast(bus, servos):
    servos.silent = set(IDS)
    start = time.monotonic()
    with pytest.raises(CommError, match="no servo of id 1, 2 answered a ping"):
        bus.measure_latency([1, 2], pings=1, wait_s=0.02)
    assert time.monotonic() - start < 1.0


def test_broadcast_needs_no_reply_and_a_read_of_it_is_refused(bus, servos):
    bus.write_value(proto.BROADCAST_ID, "torque_enable", 1)
    bus.ping(1)
    assert all(servos.value(i, "torque_enable") == 1 for i in IDS)
    with pytest.raises(FeetechError, match="servo id must be"):
        bus.read(proto.BROADCAST_ID, 56, 2)


def test_vanished_port_is_a_port_error():
    chain = PtyServos([1])
    bus = FeetechBus.open(chain.path, 1_000_000)
    try:
        assert bus.ping(1) == 0
        chain.stop()
        with pytest.raises((PortError, CommError)):
            bus.ping(1)
    finally:
        bus.close()


def test_open_a_missing_device_is_one_clear_line():
    with pytest.raises(PortError, match="cannot open serial device /dev/nonexistent-feetech"):
        FeetechBus.open("/dev/nonexistent-feetech")
