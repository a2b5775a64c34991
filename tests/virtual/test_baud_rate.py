"""Baud rates and ids as on real servos: each servo hears only instructions sent at its own Baud Rate
(8), read from the speed the client set on the pty; new ids and baud rates take effect after the
status packet. Unknown models and speeds in a hardware file are one-line ConfigErrors."""

import dataclasses
import os
import tty

import pytest
import serial

from pearl_robot.dynamixel.bus import CommError, DynamixelBus
from pearl_robot.dynamixel.control_table import BAUD_RATES
from pearl_robot.dynamixel.control_table import XM430_W350 as T
from pearl_robot.errors import ConfigError
from pearl_robot.virtual import VirtualServoBus
from pearl_robot.virtual.bus import host_baud


def test_the_master_side_sees_the_speed_pyserial_set():
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        for bps in BAUD_RATES.values():  # 4.5 Mbps is not a termios constant (BOTHER): read via termios2
            with serial.Serial(os.ttyname(slave), bps):
                assert host_baud(master) == bps
    finally:
        os.close(master)
        os.close(slave)
    r, w = os.pipe()
    try:
        assert host_baud(r) is None  # not a tty: unknown, which every servo takes as its own speed
    finally:
        os.close(r)
        os.close(w)


def scan(bus) -> dict[int, list[int]]:
    """What a doctor's scan finds: bps -> the ids that answer a broadcast ping at that speed."""
    found = {}
    for bps in BAUD_RATES.values():
        with DynamixelBus.open(bus.device_path, bps, return_delay_us=0, retries=0) as client:
            found[bps] = sorted(client.broadcast_ping(wait_s=0.05))
    return found


def test_each_servo_answers_only_at_its_own_baud_rate(make_bus):
    bus = make_bus(
        physics=False, return_delay_time=0, servo_baud_rates=[57_600, 1_000_000, 1_000_000, 4_500_000, 57_600]
    )
    assert [s.get("baud_rate") for s in bus.servos] == [1, 3, 3, 7, 1]
    found = scan(bus)
    assert found.pop(57_600) == [11, 15] and found.pop(1_000_000) == [12, 13] and found.pop(4_500_000) == [14]
    assert not any(found.values())
    assert bus.stats["wrong_baud"] == len(found)


def test_from_spec_uses_the_bus_baud_rate_and_the_factory_return_delay(make_bus, make_client):
    bus = make_bus(physics=False)
    assert {s.baud_bps for s in bus.servos} == {1_000_000}
    assert {s.get("return_delay_time") for s in bus.servos} == {250}  # 500 us, as shipped
    c = make_client(bus)
    assert c.read_value(11, T["baud_rate"]) == 3


def test_new_baud_rate_and_id_take_effect_after_the_status_packet(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0)
    c = make_client(bus, return_delay_us=0, retries=0, timeout_margin_ms=10)
    c.write_value(11, T["id"], 21)  # answered by id 11: the instruction was for it
    assert c.ping(21)[0] == 1020
    with pytest.raises(CommError):
        c.ping(11)
    c.write_value(21, T["baud_rate"], 1)  # answered at 1 Mbps, then it listens at 57600
    with pytest.raises(CommError):
        c.ping(21)
    c.close()
    slow = make_client(bus, baudrate=57_600, return_delay_us=0)
    assert slow.ping(21)[0] == 1020 and sorted(slow.broadcast_ping(wait_s=0.05)) == [21]


def test_unknown_model_or_speed_is_a_config_error(spec):
    joints = list(spec.joints)
    joints[1] = dataclasses.replace(joints[1], model="XM999-W1")
    with pytest.raises(ConfigError, match=r"joints\[1\]\.model.*XM999-W1.*known: .*XL430-W250, XM430-W210"):
        VirtualServoBus.from_spec(dataclasses.replace(spec, joints=tuple(joints)), physics=False)
    odd_bus = dataclasses.replace(spec.bus, baudrate=500_000)
    with pytest.raises(ConfigError, match="bus.baudrate.*500000 bps is not a Dynamixel X-series baud rate"):
        VirtualServoBus.from_spec(dataclasses.replace(spec, bus=odd_bus), physics=False)
    with pytest.raises(ValueError, match="one value per joint"):
        VirtualServoBus.from_spec(spec, physics=False, servo_baud_rates=[57_600])
