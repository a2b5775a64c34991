"""FAST SYNC READ on the virtual bus through the real pty: the e-manual's combined status packet byte
for byte, the same data as SYNC READ, servos whose firmware is too old for it, its faults, and the
wire-time pacing a control-rate scenario runs on."""

import dataclasses
import time

import pytest
import serial

from pearl_robot.dynamixel import fast_sync
from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import CommError, DynamixelBus, wire_time_s
from pearl_robot.dynamixel.control_table import XM430_W210
from pearl_robot.virtual import BusFaults, IdealPlant, VirtualServo, VirtualServoBus

STATE = (224, 14)  # SerialRobot's state block: Indirect Data 1.., 14 bytes
IDS = [11, 12, 13, 14, 15]


@pytest.fixture
def emanual_fast_bus():
    """The e-manual's Fast Sync Read example: ids 3, 7, 4 at Present Position 166, 2079, 1023 (an
    X430 at firmware 46 here; the e-manual's servos are XC330s: the packet is the same)."""
    table = dataclasses.replace(XM430_W210, firmware_version=46)
    plant = IdealPlant([0.0, 0.0, 0.0])
    servos = [
        VirtualServo(table, i, plant, k, hidden_offset_ticks=p - 2048)
        for k, (i, p) in enumerate(((3, 166), (7, 2079), (4, 1023)))
    ]
    for servo in servos:
        servo.set("return_delay_time", 0)
        servo.set("baud_rate", 3)
    bus = VirtualServoBus(servos, plant).start()
    yield bus
    bus.stop()


def test_the_emanual_fast_sync_read_through_the_pty(emanual_fast_bus):
    with serial.Serial(emanual_fast_bus.device_path, 1_000_000, timeout=1.0) as port:
        port.write(bytes.fromhex("FF FF FD 00 FE 0A 00 8A 84 00 04 00 03 07 04 20 F2"))
        reply = port.read(32)
    assert reply == bytes.fromhex(
        "FF FF FD 00 FE 19 00 55 00 03 A6 00 00 00 84 08 00 07 1F 08 00 00 16 CA 00 04 FF 03 00 00 D1 9E"
    )
    assert emanual_fast_bus.stats["replies"] == 3  # one per servo in the combined packet


def test_fast_sync_read_gives_what_sync_read_gives(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0)
    client = make_client(bus)
    for servo in IDS:  # a state block the way SerialRobot maps it: present position bytes at Indirect Data 1..
        client.write(servo, 168, b"".join(proto.u16(132 + k % 4) for k in range(14)))
    slow = client.sync_read(*STATE, IDS)
    fast = client.fast_sync_read(*STATE, IDS)
    assert {i: p.params for i, p in fast.items()} == {i: p.params for i, p in slow.items()}
    assert client.stats["crc_errors"] == client.stats["timeouts"] == 0


def test_servos_older_than_fast_sync_read_do_not_answer_it(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0, firmware_version=44)
    client = make_client(bus, retries=0)
    assert client.ping(11)[1] == 44  # PING reports the firmware register
    with pytest.raises(CommError, match="fast sync read"):
        client.fast_sync_read(*STATE, IDS)
    assert len(client.sync_read(*STATE, IDS)) == 5  # the plain SYNC READ still works
    bus.servo(13).set("firmware_version", 45)  # one servo updated: still not all of them
    with pytest.raises(CommError):
        client.fast_sync_read(*STATE, IDS)
    for servo in bus.servos:
        servo.set("firmware_version", 45)
    assert len(client.fast_sync_read(*STATE, IDS)) == 5


def test_a_factory_reset_keeps_the_firmware(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0, firmware_version=44)
    client = make_client(bus)
    client.factory_reset(11, 0x02)
    assert bus.servo(11).get("firmware_version") == 44


def test_corrupt_and_dropped_parts_are_counted_as_the_client_counts_them(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0, faults=BusFaults(corrupt_rate=1.0, seed=1))
    client = make_client(bus, retries=1)
    with pytest.raises(CommError, match="crc errors"):
        client.fast_sync_read(*STATE, IDS)
    assert client.stats["crc_errors"] == bus.stats["replies_corrupted"] == 10  # 5 parts, twice
    bus.set_faults(corrupt_rate=0.0, drop_rate=1.0)
    with pytest.raises(CommError, match="timeouts"):
        client.fast_sync_read(*STATE, IDS)
    assert bus.stats["replies_dropped"] == 10  # a lost part loses the whole packet: every part counted
    bus.set_faults(drop_rate=0.0)
    time.sleep(0.1)  # past the settling window of the dropped replies
    assert len(client.fast_sync_read(*STATE, IDS)) == 5


def round_trip_s(client: DynamixelBus, read) -> float:
    t0 = time.monotonic()
    read()
    return client.last_reply_at - t0


def test_paced_replies_take_their_wire_time(make_bus, make_client):
    bps = 57_600  # slow enough that the wire time dwarfs a loaded machine's jitter
    paced = make_bus(physics=False, return_delay_time=0, servo_baud_rates=[bps] * 5, pace_wire_time=True)
    client = make_client(paced, baudrate=bps, timeout_margin_ms=200.0)
    wire = wire_time_s(proto.instruction_packet_size(9) + fast_sync.status_size(5, 14), bps)  # 20 ms
    trips = [round_trip_s(client, lambda: client.fast_sync_read(*STATE, IDS)) for _ in range(3)]
    assert min(trips) >= 0.95 * wire
    # a SYNC WRITE just before occupies the wire first: the read's answer waits for it
    write = wire_time_s(proto.instruction_packet_size(4 + 5 * 5), bps)
    t0 = time.monotonic()
    client.sync_write_ints(116, 4, IDS, [2048] * 5, True)
    client.fast_sync_read(*STATE, IDS)
    assert client.last_reply_at - t0 >= 0.95 * (write + wire)
    instant = make_bus(physics=False, return_delay_time=0, servo_baud_rates=[bps] * 5)
    other = make_client(instant, baudrate=bps)
    assert min(round_trip_s(other, lambda: other.fast_sync_read(*STATE, IDS)) for _ in range(5)) < 0.5 * wire


def test_the_cli_flags_reach_the_servos():
    """``virtual-bus --firmware-version 44 --pace-wire-time``: what a client sees through the pty."""
    import select
    import subprocess
    import sys

    argv = [sys.executable, "-m", "pearl_robot.cli.main", "virtual-bus", "--no-physics", "--return-delay-time", "0"]
    proc = subprocess.Popen(
        [*argv, "--firmware-version", "44", "--pace-wire-time", "--servo-baud-rates", "57600"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60.0)
        assert ready, "the virtual bus printed no device path"
        client = DynamixelBus.open(proc.stdout.readline().strip(), baudrate=57_600, timeout_margin_ms=200.0)
        try:
            assert client.ping(11)[1] == 44
            wire = wire_time_s(proto.instruction_packet_size(0) + proto.status_packet_size(3), 57_600)
            assert client.last_reply_at - client.last_sent_at >= 0.9 * wire
        finally:
            client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
