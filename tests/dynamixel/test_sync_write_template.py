"""The per-cycle SYNC WRITE from its template: byte for byte what ``encode_instruction`` builds,
byte stuffing included when a value's bytes hold the header pattern."""

import random

import pytest

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import SyncWriteTemplate


def reference(address, size, ids, values, signed):
    data = {i: proto.to_bytes(v, size, signed) for i, v in zip(ids, values)}
    return proto.encode_instruction(0xFE, proto.Instruction.SYNC_WRITE, proto.sync_write_params(address, size, data))


@pytest.mark.parametrize("size, signed", [(1, False), (2, True), (4, True), (4, False)])
def test_the_template_encodes_what_encode_instruction_does(size, signed):
    rng = random.Random(size)
    ids = [11, 12, 13, 14, 15]
    template = SyncWriteTemplate(116, size, ids, signed)
    lo, hi = (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1) if signed else (0, (1 << (8 * size)) - 1)
    for _ in range(500):
        values = [rng.randint(lo, hi) for _ in ids]
        assert template.encode(values) == reference(116, size, ids, values, signed)


def test_values_holding_the_header_pattern_are_stuffed():
    ids = [1, 2]
    values = [0x00FDFFFF, 2048]  # little endian FF FF FD 00: the header pattern inside the parameters
    packet = SyncWriteTemplate(116, 4, ids, True).encode(values)
    assert packet == reference(116, 4, ids, values, True)
    assert proto.STUFFED in packet[7:]
    assert proto.decode_packet(packet).params == proto.sync_write_params(
        116, 4, {1: b"\xff\xff\xfd\x00", 2: proto.to_bytes(2048, 4)}
    )
