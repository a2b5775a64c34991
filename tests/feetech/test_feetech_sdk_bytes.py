"""Our packets against the vendor SDK's (``scservo_sdk``), byte for byte, both ways."""

import random

import pytest
import scservo_sdk as scs
from feetech_helpers import RecordingPort, packet_handler

from pearl_robot.feetech import protocol as proto
from pearl_robot.feetech.control_table import SCS0009, STS3215
from pearl_robot.feetech.protocol import BROADCAST_ID, Instruction, Packet, PacketParser


@pytest.fixture
def sts():
    with packet_handler(0) as ph:
        yield ph


def test_ping_is_a_ping_then_a_model_number_read(sts):
    model = STS3215.encode("model_number", STS3215.model_number)
    port = RecordingPort(proto.status_packet(3, 0) + proto.status_packet(3, 0, model))
    model_number, result, error = sts.ping(port, 3)
    assert (model_number, result, error) == (777, scs.COMM_SUCCESS, 0)
    assert port.take() == proto.instruction_packet(3, Instruction.PING) + proto.instruction_packet(
        3, Instruction.READ, proto.read_params(3, 2)
    )
    assert proto.instruction_packet(1, Instruction.PING) == bytes.fromhex("ffff010201fb")  # the manual's example


@pytest.mark.parametrize("servo_id", [0, 1, 6, 0x7F, 253])
@pytest.mark.parametrize(("address", "length"), [(56, 2), (56, 8), (3, 2), (0, 71)])
def test_read_matches_the_sdk(sts, servo_id, address, length):
    data = bytes(random.Random(servo_id * 1000 + address).randrange(256) for _ in range(length))
    port = RecordingPort(proto.status_packet(servo_id, 0x20, data))
    got, result, error = sts.readTxRx(port, servo_id, address, length)
    assert port.take() == proto.instruction_packet(servo_id, Instruction.READ, proto.read_params(address, length))
    assert (bytes(got), result, error) == (data, scs.COMM_SUCCESS, 0x20)


@pytest.mark.parametrize("value", [0, 1, 2048, 4095, 0x1234])
def test_write_matches_the_sdk(sts, value):
    port = RecordingPort(proto.status_packet(1, 0))
    assert sts.write2ByteTxRx(port, 1, 42, value) == (scs.COMM_SUCCESS, 0)
    expected = proto.instruction_packet(
        1, Instruction.WRITE, proto.write_params(42, STS3215.encode("goal_position", value))
    )
    assert port.take() == expected
    sts.write1ByteTxOnly(port, BROADCAST_ID, 40, 1)
    assert port.take() == proto.instruction_packet(BROADCAST_ID, Instruction.WRITE, b"\x28\x01")


def test_reg_write_and_action_match_the_sdk(sts):
    data = STS3215.encode("goal_position", 1000)
    port = RecordingPort(proto.status_packet(2, 0))
    assert sts.regWriteTxRx(port, 2, 42, 2, list(data)) == (scs.COMM_SUCCESS, 0)
    assert port.take() == proto.instruction_packet(2, Instruction.REG_WRITE, proto.write_params(42, data))
    assert sts.action(port, BROADCAST_ID) == scs.COMM_SUCCESS
    assert port.take() == proto.instruction_packet(BROADCAST_ID, Instruction.ACTION) == bytes.fromhex("fffffe0205fa")


def test_sync_read_matches_the_sdk_and_every_reply_parses(sts):
    ids = [1, 2, 3, 4, 5, 6]
    values = {i: STS3215.encode("present_position", 100 * i) + STS3215.encode("present_speed", -5 * i) for i in ids}
    port = RecordingPort(b"".join(proto.status_packet(i, 0, values[i]) for i in ids))
    group = scs.GroupSyncRead(port, sts, 56, 4)
    for i in ids:
        group.addParam(i)
    assert group.txRxPacket() == scs.COMM_SUCCESS
    assert port.take() == proto.instruction_packet(
        BROADCAST_ID, Instruction.SYNC_READ, proto.sync_read_params(56, 4, ids)
    )
    for i in ids:
        assert group.getData(i, 56, 2) == 100 * i
        raw_speed = group.getData(i, 58, 2)
        assert scs.SCS_TOHOST(raw_speed, 15) == -5 * i == STS3215.decode("present_speed", values[i][2:])


def test_sync_write_matches_the_sdk(sts):
    goals = {1: 0, 2: 2048, 3: 4095, 6: 77}
    port = RecordingPort()
    group = scs.GroupSyncWrite(port, sts, 42, 2)
    for i, v in goals.items():
        group.addParam(i, [scs.SCS_LOBYTE(v), scs.SCS_HIBYTE(v)])
    assert group.txPacket() == scs.COMM_SUCCESS
    data = {i: STS3215.encode("goal_position", v) for i, v in goals.items()}
    assert port.take() == proto.instruction_packet(
        BROADCAST_ID, Instruction.SYNC_WRITE, proto.sync_write_params(42, 2, data)
    )


def test_scs_is_big_endian_like_the_sdk_with_end_1():
    with packet_handler(1) as scs_ph:
        port = RecordingPort(proto.status_packet(9, 0))
        scs_ph.write2ByteTxRx(port, 9, 42, 0x0312)
        assert port.take() == proto.instruction_packet(
            9, Instruction.WRITE, proto.write_params(42, SCS0009.encode("goal_position", 0x0312))
        )
        model = SCS0009.encode("model_number", SCS0009.model_number)
        port = RecordingPort(proto.status_packet(9, 0) + proto.status_packet(9, 0, model))
        assert scs_ph.ping(port, 9)[0] == 1284
    assert SCS0009.encode("goal_position", 0x0312) == b"\x03\x12"
    assert STS3215.encode("goal_position", 0x0312) == b"\x12\x03"


@pytest.mark.parametrize(("sign_bit", "span"), [(15, 32767), (10, 1023), (11, 2047)])
def test_sign_magnitude_matches_the_sdk(sign_bit, span):
    for value in range(-span, span + 1, 7):
        raw = proto.from_signed(value, sign_bit)
        assert raw == scs.SCS_TOSCS(value, sign_bit)
        assert proto.to_signed(raw, sign_bit) == scs.SCS_TOHOST(raw, sign_bit) == value
    assert proto.from_signed(-1, 15) == 0x8001 and proto.to_signed(0x8001, 15) == -1
    assert proto.to_signed(0x8000, 15) == 0  # "minus zero"
    with pytest.raises(ValueError, match="sign-magnitude"):
        proto.from_signed(span + 1, sign_bit)


def test_signed_items_of_the_sts_table():
    assert STS3215["present_load"].sign_bit == 10 and STS3215["present_position"].sign_bit == 15
    assert STS3215.decode("present_load", (0x400 | 300).to_bytes(2, "little")) == -300
    assert STS3215.encode("homing_offset", -100) == (0x800 | 100).to_bytes(2, "little")
    with pytest.raises(ValueError):
        STS3215.encode("goal_position", 1 << 16)


def test_our_status_packets_parse_in_the_sdk_after_garbage(sts):
    data = bytes(range(10))
    port = RecordingPort(b"\x00\x13\xff" + proto.status_packet(4, 0x01, data))
    got, result, error = sts.readTxRx(port, 4, 56, 10)
    assert (bytes(got), result, error) == (data, scs.COMM_SUCCESS, 1)


def test_sdk_instruction_packets_parse_in_ours(sts):
    port = RecordingPort(proto.status_packet(7, 0, b"\x01\x02"))
    sts.readTxRx(port, 7, 60, 2)
    sts.write1ByteTxOnly(port, 7, 40, 1)
    parsed = PacketParser().feed(port.take())
    assert parsed == [Packet(7, Instruction.READ, b"\x3c\x02"), Packet(7, Instruction.WRITE, b"\x28\x01")]
    assert proto.parse_read_params(parsed[0].params) == (60, 2)
    assert proto.parse_write_params(parsed[1].params) == (40, b"\x01")
