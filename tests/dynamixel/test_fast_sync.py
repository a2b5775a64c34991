"""FAST SYNC READ (0x8A) byte for byte against the ROBOTIS e-manual's example, its per-part CRCs, the
parser's no-stuffing rule for it, and the bus client's use of it (retries of the damaged parts only)."""

import random

from pearl_robot.dynamixel import fast_sync
from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import DynamixelBus
from pearl_robot.dynamixel.control_table import MODELS, XL430_W250, XM430_W350
from pearl_robot.dynamixel.crc import crc16_bytewise, crc16_prefixes


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# e-manual, Protocol 2.0, "Fast Sync Read (0x8A)": Present Position of ids 3, 7, 4 (166, 2079, 1023)
EMANUAL_INSTRUCTION = h("FF FF FD 00 FE 0A 00 8A 84 00 04 00 03 07 04 20 F2")
EMANUAL_STATUS = h("FF FF FD 00 FE 19 00 55 00 03 A6 00 00 00 84 08 00 07 1F 08 00 00 16 CA 00 04 FF 03 00 00 D1 9E")
EMANUAL_PARTS = [(3, 0, h("A6 00 00 00")), (7, 0, h("1F 08 00 00")), (4, 0, h("FF 03 00 00"))]


def test_the_emanual_example_byte_for_byte():
    assert fast_sync.encode_instruction(132, 4, [3, 7, 4]) == EMANUAL_INSTRUCTION
    assert fast_sync.encode_status(EMANUAL_PARTS) == EMANUAL_STATUS
    assert fast_sync.split_status(EMANUAL_STATUS, [3, 7, 4], 4) == EMANUAL_PARTS
    assert fast_sync.status_size(3, 4) == len(EMANUAL_STATUS)
    assert fast_sync.status_head(3, 4) == EMANUAL_STATUS[:8]
    packet = proto.decode_packet(EMANUAL_STATUS)  # a well-formed status packet from the broadcast id
    assert (packet.id, packet.error, len(packet.params)) == (0xFE, 0, fast_sync.status_params_size(3, 4))


def test_each_part_carries_the_crc_of_the_packet_before_it():
    crcs = crc16_prefixes(EMANUAL_STATUS, [14, 22, 30])
    assert crcs == [0x0884, 0xCA16, 0x9ED1]  # the e-manual's CRC bytes, low first: 84 08, 16 CA, D1 9E
    assert crcs == [crc16_bytewise(EMANUAL_STATUS[:end]) for end in (14, 22, 30)]


def test_the_instruction_matches_dynamixel_sdk_fast_sync_read():
    """dynamixel-sdk (a test dependency, ROBOTIS' own client) builds the same FAST SYNC READ bytes."""
    import dynamixel_sdk as sdk

    class CapturePort:
        is_using = False

        def __init__(self) -> None:
            self.written = b""

        def clearPort(self) -> None:  # noqa: N802 - the SDK's names
            pass

        def writePort(self, packet) -> int:  # noqa: N802
            self.written = bytes(packet)
            return len(packet)

        def setPacketTimeout(self, *_args) -> None:  # noqa: N802
            pass

        def getBaudRate(self) -> int:  # noqa: N802
            return 1_000_000

    port = CapturePort()
    group = sdk.GroupSyncRead(port, sdk.PacketHandler(2.0), 224, 14)
    for servo_id in (11, 12, 13, 14, 15):
        assert group.addParam(servo_id)
    group.fastSyncReadTxPacket()
    assert port.written == fast_sync.encode_instruction(224, 14, [11, 12, 13, 14, 15])


def test_a_part_damaged_on_the_wire_fails_only_its_own_check():
    rng = random.Random(4)
    for _ in range(300):
        length = rng.randrange(1, 17)
        parts = [(i, rng.choice([0, 0x80]), bytes(rng.randrange(256) for _ in range(length))) for i in range(1, 6)]
        damaged = [k for k in range(5) if rng.random() < 0.3]
        frame = fast_sync.encode_status(parts, damaged)
        assert fast_sync.split_status(frame, [1, 2, 3, 4, 5], length) == [
            None if k in damaged else parts[k] for k in range(5)
        ]
        cut = rng.randrange(len(frame))  # a frame cut short: the parts before the cut still check
        whole = (cut - proto.HEADER_SIZE - 1) // (length + 4)
        split = fast_sync.split_status(frame[:cut], [1, 2, 3, 4, 5], length)
        assert split == [None if k in damaged or k >= whole else parts[k] for k in range(5)]


def test_the_combined_status_packet_is_never_unstuffed():
    # data that holds FF FF FD FD: a stuffed packet would lose a byte, this one must not
    parts = [(1, 0, h("FF FF FD FD")), (2, 0, h("00 FF FF FD"))]
    frame = fast_sync.encode_status(parts)
    parser = proto.PacketParser()
    parser.feed(frame)
    packet = parser.next()
    assert isinstance(packet, proto.Packet) and len(packet.params) == fast_sync.status_params_size(2, 4)
    assert proto.STUFFED in packet.params


class Scripted:
    """Answers each instruction with the next scripted reply; an empty read advances a fake clock."""

    def __init__(self, replies) -> None:
        self.replies = list(replies)
        self.written: list[bytes] = []
        self.now = 0.0
        self._pending = b""

    def clock(self) -> float:
        return self.now

    def write(self, data: bytes) -> None:
        self.written.append(data)
        if data[7] in (proto.Instruction.FAST_SYNC_READ, proto.Instruction.SYNC_READ, proto.Instruction.PING):
            self._pending += self.replies.pop(0) if self.replies else b""

    def read_some(self, timeout_s: float) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:40], self._pending[40:]  # arrives in USB-sized chunks
            return data
        self.now += timeout_s
        return b""

    def discard_input(self) -> None:
        self._pending = b""

    def close(self) -> None:
        pass


def bus_on(replies, **options):
    transport = Scripted(replies)
    options.setdefault("return_delay_us", 0)
    return DynamixelBus(transport, clock=transport.clock, **options), transport


def state(servo_id: int, value: int) -> tuple[int, int, bytes]:
    return servo_id, 0, bytes([value]) * 14


def test_a_fast_sync_read_gives_one_reply_per_id_like_sync_read():
    bus, transport = bus_on([fast_sync.encode_status([state(11, 1), state(12, 2), state(13, 3)])])
    replies = bus.fast_sync_read(224, 14, [11, 12, 13])
    assert {i: (p.params, p.error, p.is_status) for i, p in replies.items()} == {
        i: (bytes([i - 10]) * 14, 0, True) for i in (11, 12, 13)
    }
    assert transport.written == [fast_sync.encode_instruction(224, 14, [11, 12, 13])]
    assert bus.stats["replies"] == 3 and bus.stats["transactions"] == 1


def test_a_damaged_part_is_counted_and_only_its_id_asked_again():
    damaged = fast_sync.encode_status([state(11, 1), state(12, 2), state(13, 3)], corrupt=[1])
    bus, transport = bus_on([damaged, fast_sync.encode_status([state(12, 2)])])
    replies = bus.fast_sync_read(224, 14, [11, 12, 13])
    assert sorted(replies) == [11, 12, 13] and replies[12].params == bytes([2]) * 14
    assert transport.written[1] == fast_sync.encode_instruction(224, 14, [12])
    assert bus.stats["crc_errors"] == 1 and bus.stats["retries"] == 1


def test_a_combined_packet_of_another_read_is_late_and_a_wrong_id_unexpected():
    other = fast_sync.encode_status([state(11, 1), state(12, 2)])  # the answer to a read of two ids
    wrong = fast_sync.encode_status([state(11, 1), state(99, 2), state(13, 3)])
    bus, _ = bus_on([other + wrong, fast_sync.encode_status([state(12, 2)])])
    replies = bus.fast_sync_read(224, 14, [11, 12, 13])
    assert sorted(replies) == [11, 12, 13]
    assert bus.stats["late_replies"] == 1 and bus.stats["unexpected"] == 1


def test_the_support_rule_is_the_emanuals():
    # X430/540 from firmware 45, X330 from firmware 46
    for table in MODELS.values():
        assert table.fast_sync_read_firmware == (46 if table.model[2:5] == "330" else 45)
    assert XM430_W350.has_fast_sync_read(45) and XM430_W350.has_fast_sync_read(46)
    assert not XM430_W350.has_fast_sync_read(44) and not XL430_W250.has_fast_sync_read(38)
