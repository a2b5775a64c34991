"""CRC-16 of Dynamixel Protocol 2.0: polynomial 0x8005 (x^16 + x^15 + x^2 + 1), initial value 0,
most significant bit first, no final XOR (the CRC-16/BUYPASS parameters).

The checksum covers the whole packet from the first header byte to the last parameter, after byte
stuffing, and travels low byte first. The 256-entry table is derived from the polynomial at import;
the tests check it against the table ROBOTIS publishes and against the e-manual's packets.
"""

from __future__ import annotations

POLYNOMIAL = 0x8005


def _make_table(polynomial: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ polynomial) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


CRC_TABLE: tuple[int, ...] = _make_table(POLYNOMIAL)


def crc16(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """The CRC of ``data``, continuing from ``crc`` (0 starts a new packet)."""
    table = CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF]
    return crc
