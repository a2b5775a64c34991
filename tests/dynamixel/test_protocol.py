"""The packet codec and CRC against the ROBOTIS e-manual's worked Protocol 2.0 examples, byte for byte."""

import pytest

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.crc import CRC_TABLE, crc16, crc16_bytewise
from pearl_robot.dynamixel.protocol import Instruction, ResultCode, StatusError


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# (what, packet bytes from the e-manual, how our encoder builds it)
INSTRUCTION_VECTORS = [
    ("ping id 1", "FF FF FD 00 01 03 00 01 19 4E", lambda: proto.encode_instruction(1, Instruction.PING)),
    ("ping broadcast", "FF FF FD 00 FE 03 00 01 31 42", lambda: proto.encode_instruction(0xFE, Instruction.PING)),
    (
        "read present position",
        "FF FF FD 00 01 07 00 02 84 00 04 00 1D 15",
        lambda: proto.encode_instruction(1, Instruction.READ, proto.read_params(132, 4)),
    ),
    (
        "write goal position 512",
        "FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89",
        lambda: proto.encode_instruction(1, Instruction.WRITE, proto.write_params(116, proto.to_bytes(512, 4))),
    ),
    (
        "reg write goal velocity 200",
        "FF FF FD 00 01 09 00 04 68 00 C8 00 00 00 AE 8E",
        lambda: proto.encode_instruction(1, Instruction.REG_WRITE, proto.write_params(104, proto.to_bytes(200, 4))),
    ),
    ("action", "FF FF FD 00 01 03 00 05 02 CE", lambda: proto.encode_instruction(1, Instruction.ACTION)),
    (
        "factory reset all but id",
        "FF FF FD 00 01 04 00 06 01 A1 E6",
        lambda: proto.encode_instruction(1, Instruction.FACTORY_RESET, b"\x01"),
    ),
    ("reboot", "FF FF FD 00 01 03 00 08 2F 4E", lambda: proto.encode_instruction(1, Instruction.REBOOT)),
    (
        "clear multi-turn",
        "FF FF FD 00 01 08 00 10 01 44 58 4C 22 B1 DC",
        lambda: proto.encode_instruction(1, Instruction.CLEAR, h("01 44 58 4C 22")),
    ),
    (
        "sync read present position ids 1, 2",
        "FF FF FD 00 FE 09 00 82 84 00 04 00 01 02 CE FA",
        lambda: proto.encode_instruction(0xFE, Instruction.SYNC_READ, proto.sync_read_params(132, 4, [1, 2])),
    ),
    (
        "sync write goal position 150, 170",
        "FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87",
        lambda: proto.encode_instruction(
            0xFE,
            Instruction.SYNC_WRITE,
            proto.sync_write_params(116, 4, {1: proto.to_bytes(150, 4), 2: proto.to_bytes(170, 4)}),
        ),
    ),
    (
        "bulk read voltage of 1, temperature of 2",
        "FF FF FD 00 FE 0D 00 92 01 90 00 02 00 02 92 00 01 00 1A 05",
        lambda: proto.encode_instruction(
            0xFE, Instruction.BULK_READ, proto.bulk_read_params([(1, 144, 2), (2, 146, 1)])
        ),
    ),
    (
        "bulk write voltage limit of 1, temperature limit of 2",
        "FF FF FD 00 FE 10 00 93 01 20 00 02 00 A0 00 02 1F 00 01 00 50 B7 68",
        lambda: proto.encode_instruction(
            0xFE, Instruction.BULK_WRITE, proto.bulk_write_params([(1, 32, proto.u16(160)), (2, 31, b"\x50")])
        ),
    ),
]

STATUS_VECTORS = [
    ("ping reply id 1", "FF FF FD 00 01 07 00 55 00 06 04 26 65 5D", 1, 0, h("06 04 26")),
    ("ping reply id 2", "FF FF FD 00 02 07 00 55 00 06 04 26 6F 6D", 2, 0, h("06 04 26")),
    ("read reply 166", "FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0", 1, 0, h("A6 00 00 00")),
    ("sync read reply 2079", "FF FF FD 00 02 08 00 55 00 1F 08 00 00 BA BE", 2, 0, h("1F 08 00 00")),
    ("write reply", "FF FF FD 00 01 04 00 55 00 A1 0C", 1, 0, b""),
    ("bulk read reply voltage", "FF FF FD 00 01 06 00 55 00 77 00 C3 69", 1, 0, h("77 00")),
    ("bulk read reply temperature", "FF FF FD 00 02 05 00 55 00 24 8B A9", 2, 0, h("24")),
]


@pytest.mark.parametrize("what, wire, build", INSTRUCTION_VECTORS, ids=[v[0] for v in INSTRUCTION_VECTORS])
def test_instruction_packets_match_the_emanual(what, wire, build):
    assert build() == h(wire)
    packet = proto.decode_packet(h(wire))
    assert packet.encode() == h(wire)
    assert not packet.is_status


@pytest.mark.parametrize("what, wire, servo_id, error, params", STATUS_VECTORS, ids=[v[0] for v in STATUS_VECTORS])
def test_status_packets_match_the_emanual(what, wire, servo_id, error, params):
    assert proto.encode_status(servo_id, error, params) == h(wire)
    packet = proto.decode_packet(h(wire))
    assert (packet.id, packet.error, packet.params, packet.is_status) == (servo_id, error, params, True)


def test_crc_table_is_the_published_one():
    # the first rows of the table ROBOTIS publishes with its CRC routine
    assert CRC_TABLE[:16] == (
        0x0000, 0x8005, 0x800F, 0x000A, 0x801B, 0x001E, 0x0014, 0x8011,
        0x8033, 0x0036, 0x003C, 0x8039, 0x0028, 0x802D, 0x8027, 0x0022,
    )  # fmt: skip
    assert CRC_TABLE[255] == 0x0202
    assert len(CRC_TABLE) == 256


def test_fast_crc_equals_the_bytewise_definition():
    import random

    rng = random.Random(1)
    for n in range(300):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert crc16(data) == crc16_bytewise(data)
        cut = rng.randrange(n + 1)
        assert crc16(data[cut:], crc16(data[:cut])) == crc16_bytewise(data)
        assert crc16(memoryview(bytearray(data))) == crc16_bytewise(data)


def test_byte_stuffing_inserts_fd_after_the_header_pattern():
    params = h("FF FF FD 01 FF FF FD")
    packet = proto.encode_instruction(1, Instruction.WRITE, proto.write_params(224, params))
    # LEN counts the two stuffed bytes, and the CRC covers them
    assert packet[5] == 1 + 2 + len(params) + 2 + 2
    assert h("FF FF FD FD") in packet[7:]
    assert proto.decode_packet(packet).params == proto.write_params(224, params)
    assert proto.unstuff(proto.stuff(h("FF FF FD FD 00"))) == h("FF FF FD FD 00")


def test_status_error_byte_decodes_alert_and_result():
    error = StatusError.from_byte(0x87)
    assert error.alert and error.result == ResultCode.ACCESS_ERROR and not error.ok
    assert "access error" in str(error) and "alert" in str(error)
    assert StatusError.from_byte(0x00).ok
    assert StatusError.from_byte(0x80).ok and StatusError.from_byte(0x80).alert
    assert "unknown result" in str(StatusError.from_byte(0x55))
    assert StatusError(True, ResultCode.DATA_LIMIT_ERROR).to_byte() == 0x86


def test_parameter_layouts_round_trip():
    assert proto.parse_read_params(proto.read_params(132, 10)) == (132, 10)
    assert proto.parse_write_params(proto.write_params(116, b"\x01\x02")) == (116, b"\x01\x02")
    assert proto.parse_sync_read_params(proto.sync_read_params(126, 10, [11, 12])) == (126, 10, [11, 12])
    records = {11: b"\x01\x00\x00\x00", 12: b"\x02\x00\x00\x00"}
    assert proto.parse_sync_write_params(proto.sync_write_params(116, 4, records)) == (116, 4, list(records.items()))
    assert proto.parse_bulk_read_params(proto.bulk_read_params([(1, 144, 2), (2, 146, 1)])) == [
        (1, 144, 2),
        (2, 146, 1),
    ]
    writes = [(1, 32, b"\xa0\x00"), (2, 31, b"\x50")]
    assert proto.parse_bulk_write_params(proto.bulk_write_params(writes)) == writes


@pytest.mark.parametrize(
    "parse, params",
    [
        (proto.parse_read_params, b"\x84\x00\x04"),
        (proto.parse_write_params, b"\x74\x00"),
        (proto.parse_sync_read_params, b"\x84\x00\x04\x00"),
        (proto.parse_sync_write_params, b"\x74\x00\x04\x00\x01\x96\x00"),
        (proto.parse_sync_write_params, b"\x74\x00\x00\x00\x01"),
        (proto.parse_bulk_read_params, b"\x01\x90\x00\x02"),
        (proto.parse_bulk_write_params, b"\x01\x20\x00\x05\x00\xa0"),
        (proto.parse_bulk_write_params, b""),
    ],
)
def test_malformed_parameters_raise_protocol_error(parse, params):
    with pytest.raises(proto.ProtocolError):
        parse(params)


def test_encoder_refuses_reserved_ids():
    for bad in (0xFD, 0xFF, -1, 256):
        with pytest.raises(ValueError):
            proto.encode_instruction(bad, Instruction.PING)
    with pytest.raises(ValueError):
        proto.sync_write_params(116, 4, {1: b"\x00"})
