"""Bad input never escapes the parser as an exception, never makes it read past what it was given,
and never hides a good packet that follows the bad bytes."""

import random

import pytest

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.protocol import Instruction, Packet, PacketParser, Rejected


def drain(parser: PacketParser) -> list:
    out = []
    for _ in range(100_000):
        item = parser.next()
        if item is None:
            return out
        out.append(item)
    raise AssertionError("parser did not settle")


def random_packet(rng: random.Random) -> bytes:
    n = rng.choice([0, 1, 3, 4, 10, 30, rng.randrange(200)])
    params = bytes(rng.randrange(256) for _ in range(n))
    if rng.random() < 0.3:  # force the header pattern into the body: byte stuffing
        params = params + b"\xff\xff\xfd" + params[:2]
    servo_id = rng.choice([0, 1, 12, 252, 0xFE])
    if rng.random() < 0.5:
        return proto.encode_status(servo_id if servo_id != 0xFE else 1, rng.randrange(256), params)
    instruction = rng.choice([i for i in Instruction if i != Instruction.STATUS])
    return proto.encode_instruction(servo_id, instruction, params)


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(7)
    if kind == 0 and b:  # flip a byte
        b[rng.randrange(len(b))] ^= rng.randrange(1, 256)
    elif kind == 1:  # truncate
        b = b[: rng.randrange(len(b) + 1)]
    elif kind == 2 and len(b) > 6:  # a length field that lies
        value = rng.choice([0, 1, 2, 3, rng.randrange(65536), 0xFFFF, len(b) - 6, len(b)])
        b[5], b[6] = value & 0xFF, value >> 8
    elif kind == 3 and len(b) > 4:  # reserved byte / id made invalid
        b[rng.choice([3, 4])] = rng.choice([0xFD, 0xFF, 0x01])
    elif kind == 4:  # insert garbage
        at = rng.randrange(len(b) + 1)
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))
    elif kind == 5 and b:  # drop a byte
        del b[rng.randrange(len(b))]
    else:  # duplicate the header
        b = bytearray(proto.HEADER) + b
    return bytes(b)


def check_items(items: list, source: bytes) -> None:
    for item in items:
        assert isinstance(item, (Packet, Rejected))
        if isinstance(item, Packet):
            # a packet the parser hands out is made of bytes it was given: no read past the buffer
            assert item.encode() in source
            assert 0 <= item.id <= 0xFE and item.id != 0xFD


def test_fuzz_random_garbage():
    rng = random.Random(1234)
    for _ in range(2000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        if rng.random() < 0.5:  # make headers likely
            data = data.replace(b"\x00\x00", proto.HEADER)
        parser = PacketParser()
        parser.feed(data)
        check_items(drain(parser), data)
        assert parser.pending <= len(data)


def test_fuzz_mutated_packets_then_a_good_one_is_still_found():
    rng = random.Random(99)
    good = proto.encode_status(7, 0, b"\x01\x02\x03\x04")
    found = 0
    for _ in range(4000):
        bad = mutate(rng, random_packet(rng))
        if rng.random() < 0.3:
            bad = mutate(rng, bad)
        data = bad + good
        parser = PacketParser()
        parser.feed(data)
        items = drain(parser)
        check_items(items, data)
        assert parser.pending <= len(data)
        if any(isinstance(i, Packet) and i.encode() == good for i in items):
            found += 1
        else:
            # only a length that reaches into the good packet may hide it: the parser waits for more
            # bytes, or the bytes really form another valid packet (a truncated one whose last byte
            # equals the good packet's first)
            assert parser.pending > 0 or any(isinstance(i, Packet) for i in items)
    assert found > 3600


def test_fuzz_split_feeds_match_whole_feeds():
    rng = random.Random(7)
    for _ in range(500):
        stream = b"".join(
            mutate(rng, random_packet(rng)) if rng.random() < 0.3 else random_packet(rng) for _ in range(5)
        )
        whole = PacketParser()
        whole.feed(stream)
        expected = [i for i in drain(whole) if isinstance(i, Packet)]
        split = PacketParser()
        got = []
        pos = 0
        while pos < len(stream):
            step = rng.randrange(1, 12)
            split.feed(stream[pos : pos + step])
            pos += step
            got += [i for i in drain(split) if isinstance(i, Packet)]
        assert got == expected


def test_every_valid_packet_round_trips():
    rng = random.Random(5)
    for _ in range(2000):
        packet = random_packet(rng)
        decoded = proto.decode_packet(packet)
        assert decoded.encode() == packet


@pytest.mark.parametrize(
    "data, reason",
    [
        (proto.encode_status(1, 0, b"\xa6\x00\x00\x00")[:-1] + b"\x00", "crc"),
        (proto.HEADER + b"\x01\x01\x00\x55" + b"\x00" * 10, "length"),  # LEN below the minimum
        (proto.HEADER + b"\x01\xff\xff\x55" + b"\x00" * 10, "length"),  # LEN beyond anything plausible
        (proto.HEADER + b"\xfd\x03\x00\x01\x00\x00", "id"),
        (proto.encode_packet(1, Instruction.STATUS), "short_status"),  # a status packet without its error byte
    ],
)
def test_bad_packets_are_rejected_with_a_reason(data, reason):
    parser = PacketParser()
    parser.feed(data)
    items = drain(parser)
    assert [i.reason for i in items if isinstance(i, Rejected)][:1] == [reason]
    assert not any(isinstance(i, Packet) for i in items)


def test_truncated_packet_waits_and_completes():
    packet = proto.encode_status(3, 0, b"\x10\x20")
    parser = PacketParser()
    parser.feed(packet[:-3])
    assert parser.next() is None
    parser.feed(packet[-3:])
    assert parser.next() == proto.decode_packet(packet)
    assert parser.next() is None and parser.pending == 0


def test_garbage_is_counted_and_skipped():
    packet = proto.encode_status(3, 0, b"\x10")
    parser = PacketParser()
    parser.feed(b"\x00\x13\x37\xff\xfd\xfd" + packet)
    assert drain(parser) == [proto.decode_packet(packet)]
    assert parser.garbage_bytes == 6
