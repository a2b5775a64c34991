"""EEPROM and Lock, the error bits, damaged packets and injected faults, seen through the vendor SDK."""

import time

import scservo_sdk as scs

from pearl_robot.feetech.control_table import STS3215
from pearl_robot.feetech.protocol import Instruction, StatusError, instruction_packet
from pearl_robot.virtual import parse_faults

LOCK = STS3215["lock"].address
ID = STS3215["id"].address
MAX_LIMIT = STS3215["max_position_limit"].address
GOAL = STS3215["goal_position"].address
POS = STS3215["present_position"].address
TORQUE = STS3215["torque_enable"].address


def test_an_eeprom_write_under_lock_takes_effect_but_is_lost_at_power_off(make_bus, make_sdk):
    bus = make_bus()
    sdk = make_sdk(bus)
    assert sdk.ph.read1ByteTxRx(sdk.port, 3, LOCK)[0] == 1  # locked at power-up
    assert sdk.write1(3, ID, 13) == (scs.COMM_SUCCESS, 0)
    assert sdk.ph.ping(sdk.port, 13)[1] == scs.COMM_SUCCESS
    bus.power_cycle(13)
    assert sdk.ph.ping(sdk.port, 13)[1] == scs.COMM_RX_TIMEOUT
    assert sdk.ph.ping(sdk.port, 3)[1] == scs.COMM_SUCCESS  # the EEPROM kept the old id


def test_an_eeprom_write_after_unlocking_survives_a_power_cycle(make_bus, make_sdk):
    bus = make_bus()
    sdk = make_sdk(bus)
    assert sdk.write1(3, LOCK, 0) == (scs.COMM_SUCCESS, 0)  # FeetechBus.write_eeprom: unlock, write, relock
    assert sdk.write2(3, MAX_LIMIT, 3000) == (scs.COMM_SUCCESS, 0)
    assert sdk.write1(3, ID, 13) == (scs.COMM_SUCCESS, 0)
    assert sdk.write1(13, LOCK, 1) == (scs.COMM_SUCCESS, 0)
    assert sdk.write2(13, MAX_LIMIT, 3500) == (scs.COMM_SUCCESS, 0)  # locked again: not kept
    bus.power_cycle()
    assert sdk.ph.read2ByteTxRx(sdk.port, 13, MAX_LIMIT) == (3000, scs.COMM_SUCCESS, 0)
    assert sdk.ph.read1ByteTxRx(sdk.port, 13, LOCK)[0] == 1
    assert sdk.ph.ping(sdk.port, 3)[1] == scs.COMM_RX_TIMEOUT


def test_recovery_and_reset_instructions(make_bus, make_sdk):
    bus = make_bus()
    sdk = make_sdk(bus)
    assert sdk.write1(2, TORQUE, 1) == (scs.COMM_SUCCESS, 0)
    assert sdk.write1(2, STS3215["return_delay_time"].address, 0) == (scs.COMM_SUCCESS, 0)  # locked: not kept
    sdk.port.writePort(instruction_packet(2, Instruction.RESET))  # the multi-turn count only: it answers
    sdk.port.setPacketTimeout(6)
    assert sdk.ph.rxPacket(sdk.port)[1] == scs.COMM_SUCCESS
    assert bus.servo(2).torque_on and bus.servo(2).get("return_delay_time") == 0
    assert sdk.write1(2, LOCK, 0) == (scs.COMM_SUCCESS, 0)
    assert sdk.write2(2, MAX_LIMIT, 3000) == (scs.COMM_SUCCESS, 0)
    sdk.port.writePort(instruction_packet(2, Instruction.RECOVERY))  # factory values, the id kept, a restart
    sdk.port.setPacketTimeout(6)
    assert sdk.ph.rxPacket(sdk.port)[1] == scs.COMM_SUCCESS
    assert not bus.servo(2).torque_on and bus.servo(2).get("return_delay_time") == 250
    assert sdk.ph.read2ByteTxRx(sdk.port, 2, MAX_LIMIT) == (4095, scs.COMM_SUCCESS, 0)


def test_a_goal_beyond_the_angle_limits_stops_at_the_limit_with_the_angle_bit(make_bus, make_sdk):
    bus = make_bus()
    sdk = make_sdk(bus)
    assert sdk.write1(1, LOCK, 0) == (scs.COMM_SUCCESS, 0)
    assert sdk.write2(1, MAX_LIMIT, 3000) == (scs.COMM_SUCCESS, 0)
    assert sdk.write1(1, TORQUE, 1) == (scs.COMM_SUCCESS, 0)
    assert sdk.write2(1, GOAL, 3500) == (scs.COMM_SUCCESS, StatusError.ANGLE)
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, POS) == (3000, scs.COMM_SUCCESS, StatusError.ANGLE)
    assert sdk.ph.read1ByteTxRx(sdk.port, 1, STS3215["status"].address)[0] == StatusError.ANGLE
    assert sdk.write2(1, GOAL, 2900) == (scs.COMM_SUCCESS, 0)  # back inside: the bit goes
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, POS) == (2900, scs.COMM_SUCCESS, 0)


def test_damaged_or_foreign_frames_are_ignored_and_the_next_packet_is_found(make_bus, make_sdk):
    bus = make_bus()
    sdk = make_sdk(bus)
    good = instruction_packet(1, Instruction.PING)
    bad = bytearray(instruction_packet(2, Instruction.WRITE, bytes((TORQUE, 1))))
    bad[-1] ^= 0x5A
    sdk.port.writePort(bytes(bad))
    sdk.port.writePort(b"\x00\x13\xff\x42")  # line noise
    sdk.port.writePort(bytes((0xFF, 0xFF, 3, 1)))  # a frame whose length says nothing follows
    sdk.port.writePort(bytes((0xFF, 0xFF, 4, 2, 0x00, 0xF9)))  # a status packet: no instruction
    sdk.port.writePort(good)
    sdk.port.setPacketTimeout(6)
    status, result = sdk.ph.rxPacket(sdk.port)
    assert result == scs.COMM_SUCCESS and status[2] == 1  # only the intact PING was answered
    time.sleep(0.05)
    assert sdk.port.getBytesAvailable() == 0
    assert not bus.servo(2).torque_on
    assert bus.stats["crc_errors_received"] == 1 and bus.stats["malformed_received"] >= 2
    assert bus.stats["instructions"] == 1


def test_drop_and_corrupt_faults_reach_the_sdk_as_timeouts_and_corrupt_packets(make_bus, make_sdk):
    bus = make_bus(faults=parse_faults("drop=1,seed=3"))
    sdk = make_sdk(bus)
    assert sdk.ph.ping(sdk.port, 1)[1] == scs.COMM_RX_TIMEOUT
    bus.set_faults(drop_rate=0.0, corrupt_rate=1.0)
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, POS)[1] == scs.COMM_RX_CORRUPT
    bus.set_faults(corrupt_rate=0.0, reply_latency_s=0.01)
    started = time.perf_counter()
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, POS) == (2048, scs.COMM_SUCCESS, 0)
    assert time.perf_counter() - started >= 0.01
    assert bus.stats["replies_dropped"] == 1 and bus.stats["replies_corrupted"] == 1


def test_scheduled_hardware_errors_set_feetech_bits_and_unload_the_servo(make_bus, make_sdk):
    bus = make_bus(faults=parse_faults("hw_error=2:overload+5:voltage@0.2"))
    sdk = make_sdk(bus)
    assert sdk.ph.ping(sdk.port, 2)[2] == StatusError.OVERLOAD
    assert sdk.write1(2, TORQUE, 1) == (scs.COMM_SUCCESS, 0)  # torque on clears a latched overload
    assert sdk.write1(5, TORQUE, 1) == (scs.COMM_SUCCESS, 0)
    time.sleep(0.3)
    assert sdk.ph.ping(sdk.port, 5)[2] == StatusError.VOLTAGE  # not in the unloading condition (44): torque stays
    assert bus.servo(5).torque_on
    bus.inject_hardware_error(2, StatusError.OVERLOAD)
    assert not bus.servo(2).torque_on
    assert sdk.ph.read1ByteTxRx(sdk.port, 2, STS3215["status"].address)[0] == StatusError.OVERLOAD


def test_torque_enable_128_makes_the_present_position_the_middle(make_bus, make_sdk):
    bus = make_bus(hidden_offsets_ticks=[300, -500, 0, 0, 0, 0])
    sdk = make_sdk(bus)
    offset = STS3215["homing_offset"].address
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, POS)[0] == 2348
    assert sdk.write1(1, TORQUE, 128) == (scs.COMM_SUCCESS, 0)
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, POS)[0] == 2048
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, offset)[0] == 300
    assert sdk.ph.read1ByteTxRx(sdk.port, 1, TORQUE)[0] == 0  # torque as it was
    bus.power_cycle(1)  # written under Lock: gone
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, POS)[0] == 2348
    assert sdk.write1(2, LOCK, 0) == (scs.COMM_SUCCESS, 0)
    assert sdk.write1(2, TORQUE, 128) == (scs.COMM_SUCCESS, 0)
    bus.power_cycle(2)
    raw = sdk.ph.read2ByteTxRx(sdk.port, 2, offset)[0]
    assert scs.SCS_TOHOST(raw, 11) == -500 and sdk.ph.read2ByteTxRx(sdk.port, 2, POS)[0] == 2048
