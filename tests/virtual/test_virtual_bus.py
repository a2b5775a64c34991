"""The virtual servo bus on a real pty: byte-exact e-manual exchanges, control-table rules, physics,
bad input, and every fault it can produce."""

import os
import time

import numpy as np
import pytest
import serial
from waiting import eventually

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import CommError, PortError, ServoError
from pearl_robot.dynamixel.control_table import RAD_PER_TICK, XM430_W350, HardwareError
from pearl_robot.dynamixel.protocol import Instruction, ResultCode
from pearl_robot.virtual import BusFaults, parse_faults

T = XM430_W350


def h(text: str) -> bytes:
    return bytes.fromhex(text)


@pytest.fixture
def raw_port():
    opened = []

    def open_port(bus):
        port = serial.Serial(bus.device_path, 1_000_000, timeout=1.0)
        opened.append(port)
        return port

    yield open_port
    for port in opened:
        port.close()


def exchange(port, request: bytes, reply_len: int) -> bytes:
    port.reset_input_buffer()
    port.write(request)
    return port.read(reply_len)


# (request, expected reply) straight from the e-manual's examples; sent in this order
EMANUAL_EXCHANGES = [
    ("FF FF FD 00 01 03 00 01 19 4E", "FF FF FD 00 01 07 00 55 00 06 04 26 65 5D"),
    (
        "FF FF FD 00 FE 03 00 01 31 42",
        "FF FF FD 00 01 07 00 55 00 06 04 26 65 5D FF FF FD 00 02 07 00 55 00 06 04 26 6F 6D",
    ),
    ("FF FF FD 00 01 07 00 02 84 00 04 00 1D 15", "FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0"),
    (
        "FF FF FD 00 FE 09 00 82 84 00 04 00 01 02 CE FA",
        "FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0 FF FF FD 00 02 08 00 55 00 1F 08 00 00 BA BE",
    ),
    (
        "FF FF FD 00 FE 0D 00 92 01 90 00 02 00 02 92 00 01 00 1A 05",
        "FF FF FD 00 01 06 00 55 00 77 00 C3 69 FF FF FD 00 02 05 00 55 00 24 8B A9",
    ),
    ("FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89", "FF FF FD 00 01 04 00 55 00 A1 0C"),
    ("FF FF FD 00 01 09 00 04 68 00 C8 00 00 00 AE 8E", "FF FF FD 00 01 04 00 55 00 A1 0C"),
    ("FF FF FD 00 01 03 00 05 02 CE", "FF FF FD 00 01 04 00 55 00 A1 0C"),
    ("FF FF FD 00 01 08 00 10 01 44 58 4C 22 B1 DC", "FF FF FD 00 01 04 00 55 00 A1 0C"),
    ("FF FF FD 00 01 04 00 06 01 A1 E6", "FF FF FD 00 01 04 00 55 00 A1 0C"),
    ("FF FF FD 00 01 03 00 08 2F 4E", "FF FF FD 00 01 04 00 55 00 A1 0C"),
]


def test_emanual_exchanges_are_byte_exact(emanual_bus, raw_port):
    port = raw_port(emanual_bus)
    servo1 = emanual_bus.servo(1)
    for request, reply in EMANUAL_EXCHANGES:
        if request.endswith("05 02 CE"):  # before ACTION: the REG WRITE is registered, not applied
            assert servo1.get("registered_instruction") == 1 and servo1.get("goal_velocity") == 0
        assert exchange(port, h(request), len(h(reply))) == h(reply), request
        if request.endswith("05 02 CE"):
            assert servo1.get("registered_instruction") == 0 and servo1.get("goal_velocity") == 200
        if request.endswith("06 01 A1 E6"):  # FACTORY RESET keeping only the id: back to 57600 bps
            assert servo1.baud_bps == 57_600
            port.baudrate = 57_600
    assert emanual_bus.stats["instructions"] == len(EMANUAL_EXCHANGES)


def test_emanual_sync_and_bulk_writes_apply_without_replies(emanual_bus, raw_port):
    port = raw_port(emanual_bus)
    port.write(h("FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87"))
    port.write(h("FF FF FD 00 FE 10 00 93 01 20 00 02 00 A0 00 02 1F 00 01 00 50 B7 68"))
    port.timeout = 0.2
    assert port.read(1) == b""  # no status packet for SYNC WRITE / BULK WRITE
    s1, s2 = emanual_bus.servo(1), emanual_bus.servo(2)
    assert (s1.get("goal_position"), s2.get("goal_position")) == (150, 170)
    assert (s1.get("max_voltage_limit"), s2.get("temperature_limit")) == (160, 80)


def test_control_table_rules(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0)
    c = make_client(bus, return_delay_us=0)
    c.write_value(11, T["return_delay_time"], 3)  # EEPROM while torque is off: fine
    assert c.read_value(11, T["return_delay_time"]) == 3
    c.write_value(11, T["torque_enable"], 1)

    def fails(result, *write):
        with pytest.raises(ServoError) as info:
            c.write(11, *write)
        assert info.value.error.result == result

    fails(ResultCode.ACCESS_ERROR, T["return_delay_time"].address, b"\x00")  # EEPROM locked by torque
    fails(ResultCode.ACCESS_ERROR, T["present_position"].address, b"\x00\x00\x00\x00")  # read-only
    fails(ResultCode.ACCESS_ERROR, 14, b"\x00")  # undefined
    fails(ResultCode.DATA_LENGTH_ERROR, T["goal_position"].address, b"\x00\x08")  # half an item
    fails(ResultCode.DATA_RANGE_ERROR, T["led"].address, b"\x05")
    fails(ResultCode.DATA_LIMIT_ERROR, T["goal_position"].address, proto.to_bytes(5000, 4))
    c.write_value(11, T["torque_enable"], 0)
    fails(ResultCode.DATA_RANGE_ERROR, T["operating_mode"].address, b"\x02")
    # several items in one write, and a read of the whole table
    c.write(
        11, T["profile_acceleration"].address, proto.to_bytes(0, 4) + proto.to_bytes(0, 4) + proto.to_bytes(2100, 4)
    )
    table = c.read(11, 0, T.size)
    assert proto.from_bytes(table[116:120]) == 2100 and proto.from_bytes(table[0:2]) == 1020
    with pytest.raises(ServoError, match="access error"):
        c.read(11, 600, 100)  # past the end


def test_indirect_addressing(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0)
    c = make_client(bus, return_delay_us=0)
    goal = T["goal_position"].address
    for k in range(4):  # Indirect Data 1-4 -> Goal Position bytes
        c.write_value(12, T[f"indirect_address_{k + 1}"], goal + k)
    c.write(12, T["indirect_data_1"].address, proto.to_bytes(1234, 4))
    assert bus.servo(12).get("goal_position") == 1234
    assert proto.from_bytes(c.read(12, T["indirect_data_1"].address, 4)) == 1234


def test_status_return_level_and_broadcasts(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0)
    c = make_client(bus, return_delay_us=0, retries=0, timeout_margin_ms=20)
    c.write(proto.BROADCAST_ID, T["led"].address, b"\x01")  # broadcast write: applied, no reply
    time.sleep(0.05)
    assert all(s.get("led") == 1 for s in bus.servos)
    c.write_value(13, T["status_return_level"], 0)
    assert c.ping(13)[0] == 1020  # PING is always answered
    with pytest.raises(CommError):
        c.read(13, T["led"].address, 1)
    c.write(13, T["status_return_level"].address, b"\x01", reply=False)
    assert c.read(13, T["led"].address, 1) == b"\x01"  # level 1: reads answered...
    with pytest.raises(CommError):
        c.write(13, T["led"].address, b"\x00")  # ...writes not
    with pytest.raises(CommError):
        c.ping(42)  # nobody with that id
    assert sorted(c.broadcast_ping(wait_s=0.2)) == [11, 12, 13, 14, 15]


def test_position_mapping_homing_offset_reverse_and_hidden_offsets(make_bus, make_client, spec):
    start = np.zeros(spec.num_joints)
    bus = make_bus(
        physics=False, return_delay_time=0, initial_position_rad=start, hidden_offsets_ticks=[0, 100, 0, 0, 0]
    )
    c = make_client(bus, return_delay_us=0)
    pos = T["present_position"]
    assert c.read_value(11, pos) == 2048 and c.read_value(12, pos) == 2148
    c.write_value(12, T["homing_offset"], -100)  # calibration cancels the hidden offset
    assert c.read_value(12, pos) == 2048
    c.write_value(11, T["drive_mode"], 1)  # reverse
    bus.plant.set_position(0, 0.1)
    assert c.read_value(11, pos) == round(2048 - 0.1 / RAD_PER_TICK)
    # goals map back through the same chain: the joint goes where the client meant
    c.write_value(11, T["goal_position"], 2048 - 200)
    c.write_value(11, T["torque_enable"], 1)
    assert bus.plant.position[0] == pytest.approx(200 * RAD_PER_TICK)
    # torque on by goal update (Drive Mode bit 3)
    c.write_value(13, T["drive_mode"], 8)
    c.write_value(13, T["goal_position"], 2100)
    assert c.read_value(13, T["torque_enable"]) == 1


def test_hardware_error_alert_shutdown_and_reboot(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0)
    c = make_client(bus, return_delay_us=0)
    c.write_value(12, T["torque_enable"], 1)
    bus.inject_hardware_error(12, HardwareError.OVERLOAD)
    _, _, error = c.ping(12)
    assert error.alert and error.ok
    assert c.read_value(12, T["hardware_error_status"]) == HardwareError.OVERLOAD
    assert c.read_value(12, T["torque_enable"]) == 0  # overload is in Shutdown (63): torque cut
    with pytest.raises(ServoError, match="result fail"):
        c.write_value(12, T["torque_enable"], 1)  # only a reboot gets out of a shutdown
    reply = c.sync_read(T["present_position"].address, 4, [11, 12])
    assert reply[12].status_error.alert and not reply[11].status_error.alert
    bus.inject_hardware_error(13, HardwareError.INPUT_VOLTAGE)  # not in Shutdown: alert only
    c.write_value(13, T["torque_enable"], 1)
    c.reboot(12)
    time.sleep(0.05)
    assert c.read_value(12, T["hardware_error_status"]) == 0
    c.write_value(12, T["torque_enable"], 1)


def test_bad_input_never_kills_the_bus(emanual_bus, raw_port):
    port = raw_port(emanual_bus)
    ping = h("FF FF FD 00 01 03 00 01 19 4E")
    ping_reply = h("FF FF FD 00 01 07 00 55 00 06 04 26 65 5D")
    bad_crc = ping[:-1] + b"\x00"
    # garbage, a truncated packet, a lying length, an instruction to nobody, broadcast READ
    port.write(os.urandom(64) + ping[:6] + proto.HEADER + b"\x01\xff\xff" + b"\x00" * 5)
    port.write(proto.encode_instruction(77, Instruction.PING))
    port.write(proto.encode_instruction(0xFE, Instruction.READ, proto.read_params(132, 4)))
    port.write(proto.encode_instruction(1, Instruction.READ, b"\x01"))  # parameters that do not parse
    time.sleep(0.1)
    port.reset_input_buffer()
    # a damaged instruction for id 1: the servo answers CRC error
    assert exchange(port, bad_crc, 11) == proto.encode_status(1, ResultCode.CRC_ERROR)
    assert exchange(port, ping, len(ping_reply)) == ping_reply
    assert emanual_bus.stats["crc_errors_received"] >= 1
    assert emanual_bus.running


def test_physics_tracks_the_goal_in_real_time(make_bus, make_client, spec):
    bus = make_bus(return_delay_time=0)
    c = make_client(bus, return_delay_us=0)
    pos, tick = T["present_position"], T["realtime_tick"]
    start = c.read_value(14, pos)
    t0 = c.read_value(14, tick)
    goal = start + 250  # ~0.38 rad
    c.write_value(14, T["goal_position"], goal)
    c.write_value(14, T["torque_enable"], 1)
    deadline = time.monotonic() + 5.0
    while abs(c.read_value(14, pos) - goal) > 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert abs(c.read_value(14, pos) - goal) <= 30
    assert c.read_value(14, tick) != t0  # the servo's clock runs
    # the effort is live too: joint 2 holding the arm against gravity draws current
    c.write_value(12, T["goal_position"], c.read_value(12, pos))
    c.write_value(12, T["torque_enable"], 1)
    time.sleep(0.3)
    assert c.read_value(12, T["present_current"]) != 0
    assert bus.plant.lag_events == 0 or bus.plant.lag_events < 5


def test_profile_velocity_limits_the_motion(make_bus, make_client):
    bus = make_bus(return_delay_time=0)
    c = make_client(bus, return_delay_us=0)
    pos = T["present_position"]
    start = c.read_value(11, pos)
    c.write_value(11, T["profile_velocity"], 10)  # 10 * 0.229 rpm ~ 0.24 rad/s
    c.write_value(11, T["goal_position"], start)
    c.write_value(11, T["torque_enable"], 1)
    c.write_value(11, T["goal_position"], start + 1000)
    time.sleep(0.5)
    moved = c.read_value(11, pos) - start
    assert 10 < moved < 250  # ~0.12 rad in 0.5 s, far from the 1000-tick goal


def test_corrupted_replies_are_counted_by_the_client(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0, faults=BusFaults(corrupt_rate=1.0, seed=1))
    c = make_client(bus, return_delay_us=0, retries=2, timeout_margin_ms=10)
    with pytest.raises(CommError, match="3 crc errors"):
        c.read(11, 132, 4)
    assert c.stats["crc_errors"] == bus.stats["replies_corrupted"] == 3
    bus.set_faults(corrupt_rate=0.0)
    assert len(c.read(11, 132, 4)) == 4


def test_dropped_replies_and_latency(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0, faults=BusFaults(drop_rate=1.0))
    c = make_client(bus, return_delay_us=0, retries=1, timeout_margin_ms=10)
    with pytest.raises(CommError, match="2 timeouts"):
        c.sync_read(132, 4, [11])
    # the bus thread may still be reading the retry when the client gives up on a loaded machine
    assert eventually(lambda: bus.stats["replies_dropped"] == 2)
    bus.set_faults(drop_rate=0.0, reply_latency_s=0.06)
    t0 = time.monotonic()
    with pytest.raises(CommError):
        c.read(11, 132, 4)  # 60 ms late against a ~12 ms deadline
    assert time.monotonic() - t0 < 1.0  # gave up on its own deadlines
    c.close()  # the port is locked while a client has it
    slow = make_client(bus, return_delay_us=0, timeout_margin_ms=200)
    time.sleep(0.2)
    assert len(slow.read(11, 132, 4)) == 4  # a generous deadline rides the latency out


def test_vanishing_device_and_link(make_bus, make_client, tmp_path):
    link = tmp_path / "arm"
    bus = make_bus(physics=False, return_delay_time=0, link=link)
    assert os.readlink(link) == bus.device_path
    assert bus.address == f"serial:{link}"
    c = make_client(bus, return_delay_us=0)
    assert c.ping(11)[0] == 1020
    bus.vanish()
    assert bus.vanished.is_set() and not link.exists()
    with pytest.raises(PortError):
        c.ping(11)


def test_vanish_after_is_scheduled(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0, faults=BusFaults(vanish_after_s=0.3))
    c = make_client(bus, return_delay_us=0)
    assert c.ping(11)[0] == 1020
    assert bus.vanished.wait(3.0)
    with pytest.raises(PortError):
        c.ping(11)


def test_parse_faults():
    faults = parse_faults(
        "latency_ms=5, drop=0.02,corrupt=0.01,hw_error=12:overload+13:voltage@1.5,vanish_after_s=3,seed=7"
    )
    assert faults.reply_latency_s == pytest.approx(0.005)
    assert (faults.drop_rate, faults.corrupt_rate, faults.vanish_after_s, faults.seed) == (0.02, 0.01, 3.0, 7)
    assert [(e.servo_id, e.bits, e.after_s) for e in faults.hardware_errors] == [(12, 0x20, 0.0), (13, 0x01, 1.5)]
    assert parse_faults(None) == BusFaults()
    for bad, match in [
        ("drop=2", "drop_rate"),
        ("nope=1", "unknown fault"),
        ("hw_error=12:melting", "hardware error kind"),
        ("hw_error=twelve", "expected ID:KIND"),
        ("latency_ms=x", "bad value"),
        ("drop", "key=value"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_faults(bad)


def test_scheduled_hardware_error(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0, faults=parse_faults("hw_error=15:overheating@0.2"))
    c = make_client(bus, return_delay_us=0)
    assert not c.ping(15)[2].alert
    time.sleep(0.4)
    assert c.ping(15)[2].alert
    assert c.read_value(15, T["hardware_error_status"]) == HardwareError.OVERHEATING
