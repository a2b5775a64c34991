"""Feetech SCS/STS serial protocol ("FT-SCS"), byte-exact as the vendor SDK ``scservo_sdk`` frames it.

Instruction and status packets share one frame::

    FF FF | ID | LEN | CODE | PARAM 1 .. PARAM N | CHK

``CODE`` is the instruction (instruction packet) or the servo's error byte (status packet); the frame
itself does not say which, the direction does. ``LEN`` = N + 2 (the code, the parameters and the
checksum). ``CHK`` = ~(ID + LEN + CODE + PARAM 1 + ... + PARAM N) & 0xFF. No byte stuffing: a receiver
resynchronises by checking the checksum. Multi-byte register values are little endian on STS/SMS and
big endian on SCS (``control_table``); the few parameters of the instructions are single bytes.

Signed registers use sign-magnitude, not two's complement: one bit (15 for STS position and speed,
10 for load, 11 for the homing offset) carries the direction and the bits below it the magnitude
(``to_signed``/``from_signed``, as ``SCS_TOHOST``/``SCS_TOSCS`` in the SDK).

``PacketParser`` is the receiving side for both ends of the bus: bytes go in as they arrive, whole
packets and notes of what was thrown away (``Rejected``) come out. It never raises on input, never
waits past the bytes it was given, and holds at most one frame's worth of an incomplete packet.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

HEADER = b"\xff\xff"
HEADER_SIZE = 4  # FF FF ID LEN
BROADCAST_ID = 0xFE
MAX_ID = 0xFD  # 0..253 address a servo (the SDK's status parser accepts ids up to 0xFD)
# The SDK's TXPACKET_MAX_LEN/RXPACKET_MAX_LEN: no packet on the bus is longer than 250 bytes.
MAX_PACKET_SIZE = 250
MIN_LENGTH = 2  # LEN of a packet without parameters: the code and the checksum
MAX_LENGTH = MAX_PACKET_SIZE - HEADER_SIZE  # 246
MAX_PARAMS = MAX_LENGTH - MIN_LENGTH


class Instruction(enum.IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    # Feetech's own C++ libraries (FTServo/SCServo INST.h; not in scservo_sdk): RECOVERY restores the
    # factory values of the memory table; RESET (0x0A) only resets the multi-turn count.
    RECOVERY = 0x06
    RESET = 0x0A
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83


class StatusError(enum.IntFlag):
    """Bits of a status packet's error byte (the SDK's ERRBIT_*). The same bits appear in the
    STS ``status`` register (65). Bit 4 and bits 6-7 are undefined; the SDK rejects a status packet
    whose error byte is above 0x7F as corrupt."""

    VOLTAGE = 0x01
    ANGLE = 0x02  # the SDK's "angle sensor"; the manual's magnetic encoder status
    OVERHEAT = 0x04
    OVERCURRENT = 0x08  # the SDK's "OverEle"
    OVERLOAD = 0x20


ERROR_NAMES = {
    StatusError.VOLTAGE: "input voltage",
    StatusError.ANGLE: "angle sensor",
    StatusError.OVERHEAT: "overheat",
    StatusError.OVERCURRENT: "overcurrent",
    StatusError.OVERLOAD: "overload",
}
KNOWN_ERROR_BITS = 0x2F
MAX_STATUS_ERROR = 0x7F


def error_names(bits: int) -> list[str]:
    """Names of the error bits set in ``bits``; an undefined bit is named by its value."""
    names = [name for flag, name in ERROR_NAMES.items() if bits & flag]
    names += [f"bit {b}" for b in range(8) if bits & (1 << b) & ~KNOWN_ERROR_BITS]
    return names


class Packet(NamedTuple):
    """A decoded frame. ``code`` is the instruction of an instruction packet, the error byte of a
    status packet."""

    servo_id: int
    code: int
    params: bytes = b""

    def encode(self) -> bytes:
        return frame(self.servo_id, self.code, self.params)


class Rejected(NamedTuple):
    """Bytes the parser threw away, and why: "garbage" (not part of any frame), "length" (LEN below 2
    or above MAX_LENGTH), "checksum" (a frame whose checksum does not match), "truncated" (an unfinished
    frame at ``flush``)."""

    reason: str
    data: bytes


# ---- encoding ------------------------------------------------------------------------------------
def checksum(body: bytes) -> int:
    """~(sum of ID, LEN, CODE and the parameters) & 0xFF; ``body`` is the frame without FF FF and CHK."""
    return ~sum(body) & 0xFF


def frame(servo_id: int, code: int, params: bytes = b"") -> bytes:
    """A complete frame; ValueError for an id, code or parameter count the bus cannot carry."""
    if not 0 <= servo_id <= BROADCAST_ID:
        raise ValueError(f"servo id must be 0..253 or 254 (broadcast), got {servo_id}")
    if not 0 <= code <= 0xFF:
        raise ValueError(f"instruction/error byte must be 0..255, got {code}")
    params = bytes(params)
    if len(params) > MAX_PARAMS:
        raise ValueError(f"{len(params)} parameter bytes: a Feetech packet carries at most {MAX_PARAMS}")
    body = bytes((servo_id, len(params) + 2, code)) + params
    return HEADER + body + bytes((checksum(body),))


def instruction_packet(servo_id: int, instruction: Instruction | int, params: bytes = b"") -> bytes:
    return frame(servo_id, int(instruction), params)


def status_packet(servo_id: int, error: int = 0, params: bytes = b"") -> bytes:
    if servo_id > MAX_ID:
        raise ValueError(f"a status packet comes from a servo id 0..253, got {servo_id}")
    return frame(servo_id, int(error), params)


def packet_size(param_count: int) -> int:
    """Wire size of a frame with ``param_count`` parameter bytes (instruction or status alike)."""
    return HEADER_SIZE + MIN_LENGTH + param_count


# ---- instruction parameters (client side builds, device side parses) ---------------------------------
class ProtocolError(ValueError):
    """Parameters that do not follow an instruction's layout."""


def read_params(address: int, length: int) -> bytes:
    return bytes((_byte(address, "address"), _byte(length, "length")))


def write_params(address: int, data: bytes) -> bytes:
    return bytes((_byte(address, "address"),)) + bytes(data)


def sync_read_params(address: int, length: int, ids: list[int] | tuple[int, ...]) -> bytes:
    return read_params(address, length) + bytes(ids)


def sync_write_params(address: int, length: int, data: dict[int, bytes]) -> bytes:
    out = bytearray(read_params(address, length))
    for servo_id, value in data.items():
        if len(value) != length:
            raise ValueError(f"sync write: id {servo_id} has {len(value)} bytes, expected {length}")
        out.append(servo_id)
        out += value
    return bytes(out)


def parse_read_params(params: bytes) -> tuple[int, int]:
    if len(params) != 2:
        raise ProtocolError(f"READ takes 2 parameter bytes (address, length), got {len(params)}")
    return params[0], params[1]


def parse_write_params(params: bytes) -> tuple[int, bytes]:
    if len(params) < 2:
        raise ProtocolError(f"WRITE takes an address and at least one data byte, got {len(params)} bytes")
    return params[0], bytes(params[1:])


def parse_sync_read_params(params: bytes) -> tuple[int, int, list[int]]:
    if len(params) < 3:
        raise ProtocolError(f"SYNC READ takes address, length and at least one id, got {len(params)} bytes")
    return params[0], params[1], list(params[2:])


def parse_sync_write_params(params: bytes) -> tuple[int, int, list[tuple[int, bytes]]]:
    if len(params) < 2:
        raise ProtocolError(f"SYNC WRITE takes address and length first, got {len(params)} bytes")
    address, length = params[0], params[1]
    body = params[2:]
    step = length + 1
    if length == 0 or not body or len(body) % step:
        raise ProtocolError(f"SYNC WRITE: {len(body)} bytes do not split into (id + {length} data bytes) records")
    return address, length, [(body[i], bytes(body[i + 1 : i + step])) for i in range(0, len(body), step)]


def _byte(value: int, what: str) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{what} must fit one byte (0..255), got {value}")
    return value


# ---- sign-magnitude ---------------------------------------------------------------------------------
def to_signed(raw: int, sign_bit: int) -> int:
    """A raw register value to a signed one: bit ``sign_bit`` set means negative (``SCS_TOHOST``)."""
    mask = 1 << sign_bit
    return -(raw & ~mask) if raw & mask else raw


def from_signed(value: int, sign_bit: int) -> int:
    """A signed value to its raw register form (``SCS_TOSCS``); ValueError if the magnitude needs
    the sign bit (the SDK would silently corrupt it)."""
    mask = 1 << sign_bit
    magnitude = -value if value < 0 else value
    if magnitude >= mask:
        raise ValueError(f"{value} does not fit sign-magnitude with the sign at bit {sign_bit} (|v| < {mask})")
    return magnitude | mask if value < 0 else magnitude


# ---- receiving --------------------------------------------------------------------------------------
class PacketParser:
    """Incremental frame parser. ``feed(data)`` returns the packets and rejections completed by ``data``
    in stream order; an unfinished frame stays buffered until more bytes come or ``flush()``.

    Resynchronisation: bytes before a header are one "garbage" rejection; a bad id, length or
    checksum drops only the two header bytes and searches again, so a packet that follows (or hides
    inside) a damaged one is still found. The buffer never holds more than one maximal frame.
    """

    def __init__(self, max_length: int = MAX_LENGTH) -> None:
        self.max_length = max_length
        self._buf = bytearray()
        self.garbage_bytes = 0
        self.rejected = 0

    @property
    def pending(self) -> int:
        """Bytes held that are not a whole frame yet."""
        return len(self._buf)

    def clear(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> list[Packet | Rejected]:
        self._buf += data
        out: list[Packet | Rejected] = []
        while (item := self._next()) is not None:
            out.append(self._count(item))
        return out

    def flush(self) -> list[Packet | Rejected]:
        """End of a burst (the caller's deadline passed): an unfinished frame can no longer complete.
        Its bytes become one "truncated" rejection, except for any whole packet found inside them."""
        out: list[Packet | Rejected] = []
        lost = bytearray()
        while self._buf:
            lost += self._take(1)
            while (item := self._next()) is not None:
                if isinstance(item, Rejected):
                    lost += item.data
                    continue
                if lost:
                    out.append(self._count(Rejected("truncated", bytes(lost))))
                    lost.clear()
                out.append(item)
        if lost:
            out.append(self._count(Rejected("truncated", bytes(lost))))
        return out

    def _count(self, item: Packet | Rejected) -> Packet | Rejected:
        if isinstance(item, Rejected):
            self.rejected += 1
            if item.reason == "garbage":
                self.garbage_bytes += len(item.data)
        return item

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _next(self) -> Packet | Rejected | None:
        buf = self._buf
        start = buf.find(HEADER)
        if start < 0:
            keep = 1 if buf.endswith(b"\xff") else 0  # may be the first half of a header
            n = len(buf) - keep
            return Rejected("garbage", self._take(n)) if n else None
        if start:
            return Rejected("garbage", self._take(start))
        if len(buf) < HEADER_SIZE:
            return None
        if buf[2] == 0xFF:
            # FF FF FF ...: the header may start one byte later
            return Rejected("garbage", self._take(1))
        length = buf[3]
        if length < MIN_LENGTH or length > self.max_length:
            return Rejected("length", self._take(2))
        total = HEADER_SIZE + length
        if len(buf) < total:
            return None
        if checksum(buf[2 : total - 1]) != buf[total - 1]:
            return Rejected("checksum", self._take(2))
        data = self._take(total)
        return Packet(data[2], data[4], data[5:-1])


def decode_packet(data: bytes) -> Packet:
    """Exactly one clean frame from ``data`` (tests and tools); ValueError otherwise."""
    parser = PacketParser()
    items = parser.feed(data)
    if len(items) != 1 or not isinstance(items[0], Packet) or parser.pending:
        raise ValueError(f"not exactly one valid packet: {items} (+{parser.pending} bytes pending)")
    return items[0]
