"""The stock USB adapter profile: replies reach the host as through an FTDI/U2D2 latency timer, while
the bus keeps receiving (a late reply can overlap the next exchange)."""

import select
import time

import pytest
import serial
from waiting import eventually

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import CommError
from pearl_robot.dynamixel.control_table import XM430_W350 as T
from pearl_robot.dynamixel.protocol import Instruction
from pearl_robot.virtual.bus import USB_CHUNK_BYTES, UsbAdapter

LATENCY_MS = 16


def test_adapter_sends_whole_usb_packets_at_once_and_the_tail_after_its_timer():
    adapter = UsbAdapter(0.016)
    assert adapter.receive(bytes(70), now=1.0) == bytes(USB_CHUNK_BYTES)  # one full chunk at once
    assert adapter.release_at == pytest.approx(1.016)
    assert adapter.due(1.0159) == b""
    assert adapter.receive(bytes(10), now=1.010) == b""  # 18 bytes now, still short of a chunk
    assert adapter.release_at == pytest.approx(1.026)  # the timer counts from the last byte in
    assert adapter.due(1.026) == bytes(18) and adapter.release_at is None
    assert UsbAdapter(0.0).receive(bytes(5), now=0.0) == bytes(5)  # no latency: straight through
    with pytest.raises(ValueError, match="adapter latency"):
        UsbAdapter(-0.001)


@pytest.fixture
def raw_port():
    opened = []

    def open_port(bus):
        port = serial.Serial(bus.device_path, 1_000_000, timeout=0)
        opened.append(port)
        return port

    yield open_port
    for port in opened:
        port.close()


def arrivals(port, n_bytes: int, t0: float) -> list[tuple[float, int]]:
    """(seconds after t0, bytes so far) at each arrival until ``n_bytes`` came."""
    got, out = 0, []
    while got < n_bytes:
        ready, _, _ = select.select([port.fileno()], [], [], 1.0)
        assert ready, f"only {got} of {n_bytes} bytes came"
        got += len(port.read(4096))
        out.append((time.monotonic() - t0, got))
    return out


def test_replies_wait_for_the_latency_timer_and_full_chunks_go_at_once(make_bus, raw_port):
    bus = make_bus(physics=False, return_delay_time=0, adapter_latency_ms=LATENCY_MS)
    port = raw_port(bus)
    t0 = time.monotonic()
    port.write(proto.encode_instruction(11, Instruction.PING))
    (late, n), *_ = arrivals(port, 14, t0)
    assert n == 14 and 0.016 <= late < 0.030
    # a SYNC READ of 5 servos: 75 bytes, one full chunk at once and the 13-byte tail 16 ms later
    params = proto.to_bytes(132, 2) + proto.to_bytes(4, 2) + bytes([11, 12, 13, 14, 15])
    t0 = time.monotonic()
    port.write(proto.encode_instruction(proto.BROADCAST_ID, Instruction.SYNC_READ, params))
    got = arrivals(port, 75, t0)
    assert got[0][1] == USB_CHUNK_BYTES and got[0][0] < 0.010
    assert got[-1][1] == 75 and 0.016 <= got[-1][0] < 0.030


def test_a_late_reply_overlaps_the_next_exchange(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0, adapter_latency_ms=LATENCY_MS)
    hasty = make_client(bus, return_delay_us=0, latency_timer_ms=1, timeout_margin_ms=1, retries=0)
    with pytest.raises(CommError):
        hasty.read(11, T["present_position"].address, 4)  # deadline ~3 ms, the reply comes at ~16 ms
    hasty.write(12, T["led"].address, b"\x01", reply=False)  # received while the reply sits in the adapter
    assert eventually(lambda: bus.servo(12).get("led") == 1 and bus.stats["instructions"] == 2)
    hasty.close()
    patient = make_client(bus, return_delay_us=0, latency_timer_ms=LATENCY_MS, timeout_margin_ms=5)
    for _ in range(3):  # a client that knows the latency timer works through it
        assert len(patient.read(11, T["present_position"].address, 4)) == 4
