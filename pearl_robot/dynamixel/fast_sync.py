"""FAST SYNC READ (0x8A): one status packet answers for every servo of a sync read.

As the ROBOTIS e-manual (Protocol 2.0, "Fast Sync Read (0x8A)") lays it out, the instruction is a SYNC
READ with instruction 0x8A (address, length, then the ids, to the broadcast id). The servos answer with
one status packet from the broadcast id, each servo adding its part in the order the ids were asked::

    FF FF FD 00 | FE | LEN_L LEN_H | 55 | ERR ID DATA CRC | ERR ID DATA CRC | ... | ERR ID DATA CRC

``LEN = 1 + n * (length + 4)``. Each part's CRC is the CRC-16 of the packet from its header to the byte
before that CRC, so the last one is the packet's own CRC. The packet is never byte-stuffed. Checking
every part's CRC (not only the last) tells which servos' data arrived intact: each servo computes its
CRC over the bytes it heard before its own, so a part damaged on the wire fails its own check only.

Which servos have it (the e-manual): X430/540 series from firmware 45 (not 2XL/2XC), X330 from 46,
P series from 12, RH-P12-RN(A) from 13 (``ControlTable.fast_sync_read_firmware``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.crc import crc16, crc16_prefixes, unpack_words, word_table
from pearl_robot.dynamixel.protocol import BROADCAST_ID, HEADER, HEADER_SIZE, Instruction

PART_OVERHEAD = 4  # error, id and a CRC around each servo's data


def encode_instruction(address: int, length: int, ids: Sequence[int]) -> bytes:
    return proto.encode_instruction(
        BROADCAST_ID, Instruction.FAST_SYNC_READ, proto.sync_read_params(address, length, ids)
    )


def status_length(servos: int, length: int) -> int:
    """The LEN field of the combined status packet."""
    return 1 + servos * (length + PART_OVERHEAD)


def status_size(servos: int, length: int) -> int:
    """Wire size of the combined status packet."""
    return HEADER_SIZE + status_length(servos, length)


def status_params_size(servos: int, length: int) -> int:
    """``len(Packet.params)`` of the combined packet as ``PacketParser`` hands it out (after the first
    error byte, without the last CRC)."""
    return status_length(servos, length) - 4


@functools.lru_cache(maxsize=64)
def status_head(servos: int, length: int) -> bytes:
    """The first 8 bytes of the combined status packet (header, id, LEN, instruction)."""
    n = status_length(servos, length)
    return HEADER + bytes((BROADCAST_ID, n & 0xFF, n >> 8, Instruction.STATUS))


def encode_status(parts: Iterable[tuple[int, int, bytes]], corrupt: Iterable[int] = ()) -> bytes:
    """The combined status packet for ``parts`` (id, error byte, data; every data the same length), as
    the servos build it. ``corrupt``: indexes of parts whose CRC is damaged on the wire (the servos
    after it compute theirs over the damaged bytes they heard): fault injection."""
    parts = list(parts)
    damaged = set(corrupt)
    length = len(parts[0][2]) if parts else 0
    for servo_id, _, data in parts:
        if len(data) != length:
            raise ValueError(f"fast sync read: id {servo_id} has {len(data)} bytes, expected {length}")
    out = bytearray(status_head(len(parts), length))
    for servo_id, error, data in parts:
        out.append(error)
        out.append(servo_id)
        out += data
        out += b"\0\0"  # its CRC, filled in below
    table = word_table()
    if length & 1:  # parts on odd offsets: a CRC call per part
        crc, at = 0, 0
        for k in range(len(parts)):
            end = HEADER_SIZE + 1 + k * (length + PART_OVERHEAD) + length + 2
            crc = crc16(memoryview(out)[at:end], crc)
            out[end], out[end + 1] = crc & 0xFF, (crc >> 8) ^ (0x5A if k in damaged else 0)
            crc = crc16(memoryview(out)[end : end + 2], crc)
            at = end + 2
        return bytes(out)
    # every part on an even offset: two bytes a step, the word table inline
    words = unpack_words(len(out) >> 1)(out)
    crc = 0
    for w in words[:4]:
        crc = table[crc ^ w]
    half = (length + 2) >> 1
    j = 4
    for k in range(len(parts)):
        for w in words[j : j + half]:
            crc = table[crc ^ w]
        at = 2 * (j + half)
        low, high = crc & 0xFF, (crc >> 8) ^ (0x5A if k in damaged else 0)
        out[at], out[at + 1] = low, high
        crc = table[crc ^ (low << 8 | high)]  # the CRC bytes themselves, as the next servo hears them
        j += half + 1
    return bytes(out)


def split_status(
    frame: bytes | bytearray | memoryview, ids: Sequence[int], length: int
) -> list[tuple[int, int, bytes] | None]:
    """Each servo's (id, error byte, data) from a whole combined status packet ``frame`` (header to last
    CRC), in the order asked; None where that part's CRC does not check. The caller checks the ids."""
    n = len(ids)
    step = length + PART_OVERHEAD
    whole = HEADER_SIZE + 1 + n * step
    if length & 1 or len(frame) < whole:
        return _split_any(frame, ids, length)
    frame = bytes(frame[:whole])
    # every part starts on an even offset: two bytes a step, the word table inline
    table = word_table()
    words = unpack_words(whole >> 1)(frame)
    crc = 0
    for w in words[:4]:
        crc = table[crc ^ w]
    half = (length + 2) >> 1
    out: list[tuple[int, int, bytes] | None] = []
    k = 4
    for _ in range(n):
        for w in words[k : k + half]:
            crc = table[crc ^ w]
        stored = words[k + half]  # CRC_L CRC_H as a big-endian word
        at = 2 * k
        if crc == ((stored & 0xFF) << 8 | stored >> 8):
            out.append((frame[at + 1], frame[at], frame[at + 2 : at + 2 + length]))
        else:
            out.append(None)
        crc = table[crc ^ stored]
        k += half + 1
    return out


def _split_any(
    frame: bytes | bytearray | memoryview, ids: Sequence[int], length: int
) -> list[tuple[int, int, bytes] | None]:
    """``split_status`` for any length and for frames cut short (parts past the end: None)."""
    step = length + PART_OVERHEAD
    start = HEADER_SIZE + 1
    ends = [start + k * step + length + 2 for k in range(len(ids)) if start + k * step + step <= len(frame)]
    out: list[tuple[int, int, bytes] | None] = []
    for end, crc in zip(ends, crc16_prefixes(frame, ends)):
        at = end - length - 2
        ok = crc == frame[end] | (frame[end + 1] << 8)
        out.append((frame[at + 1], frame[at], bytes(frame[at + 2 : end])) if ok else None)
    return out + [None] * (len(ids) - len(ends))
