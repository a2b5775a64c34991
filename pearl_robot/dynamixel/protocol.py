"""Dynamixel Protocol 2.0 packets, byte-exact as the ROBOTIS e-manual documents them.

Instruction packet::

    FF FF FD 00 | ID | LEN_L LEN_H | INST | PARAM 1 .. PARAM N | CRC_L CRC_H

Status packet: the same with INST = 0x55 followed by an ERROR byte before the parameters.
``LEN`` counts everything after itself (instruction, error, parameters, CRC) *after* byte stuffing:
wherever ``FF FF FD`` occurs from the instruction to the last parameter, an extra ``FD`` is inserted
so that a header can never appear inside a packet. The CRC (``crc.crc16``) covers the stuffed packet
from the header on. Multi-byte values are little endian. The one exception: the combined status
packet that answers a FAST SYNC/BULK READ (id 0xFE, see ``fast_sync``) is never stuffed.

``PacketParser`` is the receiving side for both ends of the bus: it takes bytes as they arrive, finds
headers, and hands out whole packets or a note of what it rejected (bad CRC, a lying length, a
truncated packet...). It never raises on input and never looks past the bytes it was given.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from pearl_robot.dynamixel.crc import crc16

HEADER = b"\xff\xff\xfd\x00"
HEADER_PREFIX = b"\xff\xff\xfd"  # what a receiver searches for; the 4th byte (reserved) must be 0x00
STUFFED = b"\xff\xff\xfd\xfd"
HEADER_SIZE = 7  # header (4) + id (1) + length (2)
BROADCAST_ID = 0xFE
MAX_ID = 252  # 0..252 address a device; 0xFD and 0xFF never appear as ids
MIN_LENGTH = 3  # an instruction byte and the two CRC bytes
# Longest LEN a receiver accepts. A status packet for a read of a whole X-series control table is
# about 670 bytes; a sync write to every id with 4 bytes each about 1270. A larger LEN is a lie.
MAX_LENGTH = 4096


class Instruction(enum.IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    FACTORY_RESET = 0x06
    REBOOT = 0x08
    CLEAR = 0x10
    STATUS = 0x55
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83
    FAST_SYNC_READ = 0x8A  # one combined status packet for every id (``fast_sync``)
    BULK_READ = 0x92
    BULK_WRITE = 0x93
    FAST_BULK_READ = 0x9A


class ResultCode(enum.IntEnum):
    """Bits 0-6 of a status packet's error byte: how the instruction was processed."""

    OK = 0x00
    RESULT_FAIL = 0x01  # failed to process the instruction
    INSTRUCTION_ERROR = 0x02  # undefined instruction, or ACTION without REG WRITE
    CRC_ERROR = 0x03  # the instruction packet's CRC did not match
    DATA_RANGE_ERROR = 0x04  # value outside the item's minimum/maximum
    DATA_LENGTH_ERROR = 0x05  # fewer bytes than the item holds (2 bytes of a 4-byte item)
    DATA_LIMIT_ERROR = 0x06  # value outside the item's configured limit (goal beyond position limits)
    ACCESS_ERROR = 0x07  # read-only/undefined address, or EEPROM written while torque is on


RESULT_DESCRIPTIONS = {
    ResultCode.OK: "ok",
    ResultCode.RESULT_FAIL: "result fail (the instruction could not be processed)",
    ResultCode.INSTRUCTION_ERROR: "instruction error (undefined instruction, or ACTION without REG WRITE)",
    ResultCode.CRC_ERROR: "CRC error (the instruction packet was damaged)",
    ResultCode.DATA_RANGE_ERROR: "data range error (value outside the item's range)",
    ResultCode.DATA_LENGTH_ERROR: "data length error (fewer bytes than the item holds)",
    ResultCode.DATA_LIMIT_ERROR: "data limit error (value outside the configured limit)",
    ResultCode.ACCESS_ERROR: "access error (read-only or undefined address, or EEPROM locked by torque on)",
}

ALERT_BIT = 0x80  # set in every status packet while the device has a hardware error (see its table)


@dataclass(frozen=True)
class StatusError:
    """The error byte of a status packet, decoded."""

    alert: bool
    result: int  # a ResultCode value, or an unknown number as received

    @classmethod
    def from_byte(cls, byte: int) -> StatusError:
        return cls(alert=bool(byte & ALERT_BIT), result=byte & 0x7F)

    def to_byte(self) -> int:
        return (ALERT_BIT if self.alert else 0) | (self.result & 0x7F)

    @property
    def ok(self) -> bool:
        return self.result == ResultCode.OK

    def __str__(self) -> str:
        try:
            text = RESULT_DESCRIPTIONS[ResultCode(self.result)]
        except ValueError:
            text = f"unknown result code {self.result:#04x}"
        return text + (" [alert: hardware error]" if self.alert else "")


class Packet(NamedTuple):
    """A decoded packet. ``error`` is the status error byte; None on instruction packets."""

    id: int
    instruction: int
    params: bytes = b""
    error: int | None = None

    @property
    def is_status(self) -> bool:
        return self.instruction == Instruction.STATUS

    @property
    def status_error(self) -> StatusError:
        return StatusError.from_byte(self.error or 0)

    def encode(self) -> bytes:
        return encode_packet(self.id, self.instruction, self.params, self.error)


class Rejected(NamedTuple):
    """Bytes the parser threw away, and why. ``id`` is the packet id where the header was intact."""

    reason: str  # "crc", "length", "id", "short_status"
    id: int | None
    size: int  # bytes discarded


class ProtocolError(ValueError):
    """Parameters that do not follow an instruction's layout."""


# ---- byte stuffing --------------------------------------------------------------------------
def stuff(data: bytes) -> bytes:
    """Insert 0xFD after every FF FF FD (applied from the instruction to the last parameter)."""
    return data.replace(HEADER_PREFIX, STUFFED)


def unstuff(data: bytes) -> bytes:
    return data.replace(STUFFED, HEADER_PREFIX)


# ---- encoding -------------------------------------------------------------------------------
def encode_packet(packet_id: int, instruction: int, params: bytes = b"", error: int | None = None) -> bytes:
    """A complete packet. ``error`` makes it a status packet (``instruction`` should then be STATUS)."""
    if not 0 <= packet_id <= 0xFE or packet_id == 0xFD:
        raise ValueError(f"packet id must be 0..252 or 254 (broadcast), got {packet_id}")
    body = bytes((instruction,)) if error is None else bytes((instruction, error))
    body = stuff(body + bytes(params))
    length = len(body) + 2
    if length > 0xFFFF:
        raise ValueError(f"packet too long ({length} bytes after the length field)")
    head = HEADER + bytes((packet_id, length & 0xFF, length >> 8))
    crc = crc16(body, crc16(head))
    return head + body + bytes((crc & 0xFF, crc >> 8))


def encode_instruction(packet_id: int, instruction: Instruction | int, params: bytes = b"") -> bytes:
    return encode_packet(packet_id, int(instruction), params)


def encode_status(packet_id: int, error: int | StatusError = 0, params: bytes = b"") -> bytes:
    byte = error.to_byte() if isinstance(error, StatusError) else int(error)
    return encode_packet(packet_id, Instruction.STATUS, params, byte)


def status_packet_size(param_count: int) -> int:
    """Wire size of a status packet carrying ``param_count`` parameter bytes (before any stuffing)."""
    return HEADER_SIZE + 2 + param_count + 2


def instruction_packet_size(param_count: int) -> int:
    return HEADER_SIZE + 1 + param_count + 2


# ---- little-endian values ---------------------------------------------------------------------
def to_bytes(value: int, size: int, signed: bool = False) -> bytes:
    return int(value).to_bytes(size, "little", signed=signed)


def from_bytes(data: bytes, signed: bool = False) -> int:
    return int.from_bytes(data, "little", signed=signed)


def u16(value: int) -> bytes:
    return to_bytes(value, 2)


# ---- instruction parameters: building (client side) --------------------------------------------
def read_params(address: int, length: int) -> bytes:
    return u16(address) + u16(length)


def write_params(address: int, data: bytes) -> bytes:
    return u16(address) + bytes(data)


def sync_read_params(address: int, length: int, ids: Sequence[int]) -> bytes:
    return u16(address) + u16(length) + bytes(ids)


def sync_write_params(address: int, length: int, data: Mapping[int, bytes]) -> bytes:
    out = bytearray(u16(address) + u16(length))
    for servo_id, value in data.items():
        if len(value) != length:
            raise ValueError(f"sync write: id {servo_id} has {len(value)} bytes, expected {length}")
        out.append(servo_id)
        out += value
    return bytes(out)


def bulk_read_params(requests: Iterable[tuple[int, int, int]]) -> bytes:
    out = bytearray()
    for servo_id, address, length in requests:
        out.append(servo_id)
        out += u16(address) + u16(length)
    return bytes(out)


def bulk_write_params(requests: Iterable[tuple[int, int, bytes]]) -> bytes:
    out = bytearray()
    for servo_id, address, data in requests:
        out.append(servo_id)
        out += u16(address) + u16(len(data)) + bytes(data)
    return bytes(out)


# ---- instruction parameters: decoding (device side) ---------------------------------------------
def parse_read_params(params: bytes) -> tuple[int, int]:
    if len(params) != 4:
        raise ProtocolError(f"READ takes 4 parameter bytes, got {len(params)}")
    return from_bytes(params[0:2]), from_bytes(params[2:4])


def parse_write_params(params: bytes) -> tuple[int, bytes]:
    if len(params) < 3:
        raise ProtocolError(f"WRITE takes an address and at least one data byte, got {len(params)} bytes")
    return from_bytes(params[0:2]), bytes(params[2:])


def parse_sync_read_params(params: bytes) -> tuple[int, int, list[int]]:
    if len(params) < 5:
        raise ProtocolError(f"SYNC READ takes address, length and at least one id, got {len(params)} bytes")
    return from_bytes(params[0:2]), from_bytes(params[2:4]), list(params[4:])


def parse_sync_write_params(params: bytes) -> tuple[int, int, list[tuple[int, bytes]]]:
    if len(params) < 4:
        raise ProtocolError(f"SYNC WRITE takes address and length first, got {len(params)} bytes")
    address, length = from_bytes(params[0:2]), from_bytes(params[2:4])
    body = params[4:]
    if length == 0 or not body or len(body) % (length + 1):
        raise ProtocolError(f"SYNC WRITE: {len(body)} bytes do not split into (id + {length} data bytes) records")
    step = length + 1
    return address, length, [(body[i], bytes(body[i + 1 : i + step])) for i in range(0, len(body), step)]


def parse_bulk_read_params(params: bytes) -> list[tuple[int, int, int]]:
    if not params or len(params) % 5:
        raise ProtocolError(f"BULK READ takes 5-byte records (id, address, length), got {len(params)} bytes")
    out = []
    for i in range(0, len(params), 5):
        out.append((params[i], from_bytes(params[i + 1 : i + 3]), from_bytes(params[i + 3 : i + 5])))
    return out


def parse_bulk_write_params(params: bytes) -> list[tuple[int, int, bytes]]:
    out = []
    i = 0
    while i < len(params):
        if i + 5 > len(params):
            raise ProtocolError("BULK WRITE: a record is cut short")
        servo_id, address, length = params[i], from_bytes(params[i + 1 : i + 3]), from_bytes(params[i + 3 : i + 5])
        start, end = i + 5, i + 5 + length
        if length == 0 or end > len(params):
            raise ProtocolError(f"BULK WRITE: record for id {servo_id} claims {length} bytes")
        out.append((servo_id, address, bytes(params[start:end])))
        i = end
    if not out:
        raise ProtocolError("BULK WRITE without records")
    return out


# ---- receiving ------------------------------------------------------------------------------------
class PacketParser:
    """Incremental parser: ``feed()`` bytes as they arrive, then call ``next()`` until it returns None.

    ``next()`` returns a ``Packet``, a ``Rejected`` (the caller counts it), or None when it needs more
    bytes. Garbage between packets is skipped and counted in ``garbage_bytes``. A length beyond
    ``max_length`` or a CRC mismatch discards only the header bytes and searches again, so a packet
    that follows a damaged one is still found.
    """

    def __init__(self, max_length: int = MAX_LENGTH) -> None:
        self.max_length = max_length
        self._buf = bytearray()
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def clear(self) -> None:
        self._buf.clear()

    @property
    def pending(self) -> int:
        """Bytes held that are not a whole packet yet."""
        return len(self._buf)

    def _discard(self, n: int) -> None:
        del self._buf[:n]

    # a caller that knows the shape of the packet it waits for can take it whole (``fast_sync``)
    def starts_with(self, prefix: bytes) -> bool:
        return self._buf.startswith(prefix)

    def peek(self, n: int) -> bytes:
        """The first ``n`` bytes held (fewer if fewer are), not consumed."""
        return bytes(self._buf[:n])

    def drop(self, n: int) -> None:
        """Consume ``n`` bytes the caller took as a packet."""
        del self._buf[:n]

    def next(self) -> Packet | Rejected | None:
        buf = self._buf
        while True:
            start = buf.find(HEADER_PREFIX)
            if start < 0:
                # keep a trailing FF or FF FF: it may be the start of a header split across reads
                keep = 2 if buf.endswith(b"\xff\xff") else 1 if buf.endswith(b"\xff") else 0
                self.garbage_bytes += len(buf) - keep
                self._discard(len(buf) - keep)
                return None
            if start:
                self.garbage_bytes += start
                self._discard(start)
            if len(buf) >= 4 and buf[3] != 0x00:
                # FF FF FD FD is stuffing and FF FF FD xx no header: skip a byte and search again
                self.garbage_bytes += 1
                self._discard(1)
                continue
            if len(buf) < HEADER_SIZE:
                return None
            packet_id = buf[4]
            length = buf[5] | (buf[6] << 8)
            if packet_id in (0xFD, 0xFF):
                self._discard(3)
                return Rejected("id", None, 3)
            if length < MIN_LENGTH or length > self.max_length:
                self._discard(3)
                return Rejected("length", packet_id, 3)
            total = HEADER_SIZE + length
            if len(buf) < total:
                return None
            crc_received = buf[total - 2] | (buf[total - 1] << 8)
            if crc16(memoryview(buf)[: total - 2]) != crc_received:
                self._discard(3)
                return Rejected("crc", packet_id, 3)
            body = bytes(buf[HEADER_SIZE : total - 2])
            if STUFFED in body and not (packet_id == BROADCAST_ID and body[0] == Instruction.STATUS):
                body = unstuff(body)  # (a FAST SYNC READ's combined status packet is never stuffed)
            del buf[:total]
            instruction = body[0]
            if instruction == Instruction.STATUS:
                if len(body) < 2:
                    return Rejected("short_status", packet_id, total)
                return Packet(packet_id, instruction, body[2:], body[1])
            return Packet(packet_id, instruction, body[1:])


def decode_packet(data: bytes) -> Packet:
    """Exactly one packet from ``data`` (tests and tools); ValueError if it is not one clean packet."""
    parser = PacketParser()
    parser.feed(data)
    result = parser.next()
    if not isinstance(result, Packet):
        raise ValueError(f"not a valid packet: {result}")
    if parser.pending or parser.garbage_bytes:
        raise ValueError("bytes left over after the packet")
    return result
