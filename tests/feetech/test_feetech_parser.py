"""The Feetech frame parser: resynchronisation after garbage, bad checksums, lying lengths, truncation;
random input never raises, never hangs, never loses track of a byte."""

import random

import pytest

from pearl_robot.feetech import protocol as proto
from pearl_robot.feetech.protocol import Packet, PacketParser, Rejected

pytestmark = pytest.mark.timeout(30)


def accounted(items) -> int:
    """Bytes the parser's output stands for (a packet: its whole frame)."""
    return sum(len(i.encode()) if isinstance(i, Packet) else len(i.data) for i in items)


def test_a_frame_split_anywhere_parses_once():
    frame = proto.status_packet(5, 0x20, b"\x10\x20\x30")
    for cut in range(len(frame) + 1):
        parser = PacketParser()
        items = parser.feed(frame[:cut]) + parser.feed(frame[cut:])
        assert items == [Packet(5, 0x20, b"\x10\x20\x30")] and parser.pending == 0


def test_bad_checksum_resynchronises_on_the_next_frame():
    good = proto.status_packet(2, 0, b"\x01\x02")
    bad = bytearray(proto.status_packet(1, 0, b"\x05\x06"))
    bad[-1] ^= 0x55
    items = PacketParser().feed(bytes(bad) + good)
    assert items[0] == Rejected("checksum", b"\xff\xff")
    assert items[-1] == Packet(2, 0, b"\x01\x02")
    assert accounted(items) == len(bad) + len(good)


def test_a_lying_length_does_not_swallow_the_frame_inside_it():
    good = proto.status_packet(3, 0, b"\x07")
    stream = b"\xff\xff\x01\x30" + good + bytes(60)  # claims 48 bytes, the real frame sits inside
    parser = PacketParser()
    items = parser.feed(stream)
    assert Packet(3, 0, b"\x07") in items
    assert items[0].reason == "checksum"


def test_lengths_beyond_the_limit_and_below_two_are_rejected_at_once():
    parser = PacketParser(max_length=6)
    too_long = [Rejected("length", b"\xff\xff"), Rejected("garbage", b"\x01\x07")]
    assert parser.feed(b"\xff\xff\x01\x07") == too_long  # not waited for: rejected at once
    assert parser.feed(b"\xff\xff\x01\x01") == [Rejected("length", b"\xff\xff"), Rejected("garbage", b"\x01\x01")]
    assert parser.pending == 0


def test_header_runs_of_ff_find_the_real_header():
    frame = proto.instruction_packet(1, proto.Instruction.PING)
    items = PacketParser().feed(b"\xff\xff\xff\xff" + frame)
    assert items[-1] == Packet(1, proto.Instruction.PING, b"")
    assert all(i.reason == "garbage" for i in items[:-1])


def test_truncated_frame_is_reported_at_flush_and_a_whole_one_inside_survives():
    parser = PacketParser()
    frame = proto.status_packet(4, 0, bytes(8))
    assert parser.feed(frame[:-3]) == []
    assert parser.flush() == [Rejected("truncated", frame[:-3])]
    assert parser.pending == 0
    inner = proto.status_packet(6, 0, b"\x09")
    assert parser.feed(b"\xff\xff\x02\x40" + inner) == []  # waits for the 64 bytes it was promised
    items = parser.flush()
    assert items == [Rejected("truncated", b"\xff\xff\x02\x40"), Packet(6, 0, b"\x09")]


def test_error_names():
    assert proto.error_names(0x21) == ["input voltage", "overload"]
    assert proto.error_names(0x10) == ["bit 4"]
    assert proto.error_names(0) == []


def test_encoding_refuses_what_the_bus_cannot_carry():
    with pytest.raises(ValueError, match="servo id"):
        proto.instruction_packet(255, proto.Instruction.PING)
    with pytest.raises(ValueError, match="at most"):
        proto.instruction_packet(1, proto.Instruction.WRITE, bytes(proto.MAX_PARAMS + 1))
    with pytest.raises(ValueError, match="status packet"):
        proto.status_packet(proto.BROADCAST_ID, 0)
    with pytest.raises(proto.ProtocolError):
        proto.parse_sync_write_params(b"\x2a\x02\x01\x00")


@pytest.mark.parametrize("seed", range(40))
def test_fuzz_random_bytes_never_raise_and_every_byte_is_accounted_for(seed):
    rng = random.Random(seed)
    parser = PacketParser()
    fed = 0
    items = []
    for _ in range(200):
        size = rng.choice((0, 1, 2, 5, 17, 64, 300))
        weights = [0.6, 0.4] if rng.random() < 0.5 else [0.05, 0.95]
        chunk = bytes(0xFF if rng.random() < weights[0] else rng.randrange(256) for _ in range(size))
        fed += len(chunk)
        items += parser.feed(chunk)
        assert parser.pending <= proto.MAX_PACKET_SIZE
    items += parser.flush()
    assert parser.pending == 0
    assert all(isinstance(i, (Packet, Rejected)) for i in items)
    assert {i.reason for i in items if isinstance(i, Rejected)} <= {"garbage", "length", "checksum", "truncated"}
    assert accounted(items) == fed


@pytest.mark.parametrize("seed", range(20))
def test_fuzz_every_frame_between_garbage_without_ff_is_found_in_order(seed):
    rng = random.Random(1000 + seed)
    frames, stream = [], bytearray()
    for _ in range(50):
        stream += bytes(rng.randrange(0xFF) for _ in range(rng.randrange(6)))  # no 0xFF: no false header
        if rng.random() < 0.3:  # a damaged frame: its checksum breaks
            damaged = bytearray(proto.status_packet(rng.randrange(254), 0, bytes(rng.randrange(4))))
            damaged[-1] ^= 1 + rng.randrange(255)
            stream += damaged
        packet = Packet(
            rng.randrange(254), rng.randrange(256), bytes(rng.randrange(256) for _ in range(rng.randrange(20)))
        )
        frames.append(packet)
        stream += packet.encode()
    parser = PacketParser()
    items = []
    pos = 0
    while pos < len(stream):  # arbitrary chunking
        step = rng.randrange(1, 40)
        items += parser.feed(bytes(stream[pos : pos + step]))
        pos += step
    items += parser.flush()
    assert [i for i in items if isinstance(i, Packet)] == frames
    assert accounted(items) == len(stream)
