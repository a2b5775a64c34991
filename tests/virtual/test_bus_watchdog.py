"""Bus Watchdog (98) as the e-manual describes it, over the real pty: it stops a servo that hears no
instruction for longer than its setting, makes the goals read-only and only writing 0 clears it."""

import time

import pytest

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import ServoError
from pearl_robot.dynamixel.control_table import XM430_W350 as T
from pearl_robot.dynamixel.protocol import ResultCode

WATCHDOG = 5  # 100 ms


def range_error(client, servo_id: int, item, value: int) -> None:
    with pytest.raises(ServoError) as info:
        client.write_value(servo_id, item, value)
    assert info.value.error.result == ResultCode.DATA_RANGE_ERROR


def test_watchdog_stops_a_silent_servo_holds_it_and_locks_the_goals(make_bus, make_client):
    bus = make_bus(return_delay_time=0)
    c = make_client(bus, return_delay_us=0)
    servo = bus.servo(11)
    pos = T["present_position"]
    start = c.read_value(11, pos)
    range_error(c, 11, T["bus_watchdog"], -1)  # -1 is the error status, not a setting
    c.write_value(11, T["profile_velocity"], 10)  # ~0.24 rad/s: the joint is still moving when it stops
    c.write_value(11, T["torque_enable"], 1)
    c.write_value(11, T["goal_position"], start + 1000)
    c.write_value(11, T["bus_watchdog"], WATCHDOG)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:  # reads to it and broadcasts (a SYNC READ of another id) keep it alive
        sent = time.monotonic()
        if sent < end - 0.25:
            c.read_value(11, pos)
        else:
            c.sync_read(pos.address, pos.size, [12])
        answered = time.monotonic()
        time.sleep(0.02)
    assert servo.get("bus_watchdog") == WATCHDOG
    # from now on only instructions to another id: they do not count for servo 11
    fired_at = None
    while fired_at is None and time.monotonic() - sent < 0.5:
        c.ping(12)
        if servo.get("bus_watchdog") == -1:
            fired_at = time.monotonic()
        time.sleep(0.001)
    assert fired_at is not None
    assert fired_at - sent >= 0.100 and fired_at - answered < 0.100 + 0.008
    held = c.read_value(11, pos)
    assert c.read_value(11, T["bus_watchdog"]) == -1 and c.read_value(11, T["torque_enable"]) == 1
    assert held - start > 50  # it had moved: it stopped on the way, not at the goal
    c.sync_write_value(T["goal_position"], {11: start - 1000})  # ignored without a word
    range_error(c, 11, T["goal_position"], start - 1000)
    range_error(c, 11, T["goal_velocity"], 0)
    range_error(c, 11, T["bus_watchdog"], WATCHDOG)  # only 0 clears it
    time.sleep(0.3)
    assert abs(c.read_value(11, pos) - held) <= 10  # it holds where it stopped
    assert servo.get("goal_position") == start + 1000 and bus.stats["watchdog_stops"] == 1
    c.write_value(11, T["bus_watchdog"], 0)  # clear
    c.write_value(11, T["profile_velocity"], 0)
    c.write_value(11, T["goal_position"], held + 100)  # goals accepted again, the joint moves
    time.sleep(0.4)
    assert abs(c.read_value(11, pos) - (held + 100)) <= 30


def test_watchdog_only_runs_with_torque_on(make_bus, make_client):
    bus = make_bus(physics=False, return_delay_time=0)
    c = make_client(bus, return_delay_us=0)
    c.write_value(13, T["bus_watchdog"], 1)  # 20 ms, torque off: not monitored
    time.sleep(0.1)
    assert c.read_value(13, T["bus_watchdog"]) == 1
    c.write_value(13, T["torque_enable"], 1)
    time.sleep(0.05)
    assert c.read_value(13, T["bus_watchdog"]) == -1
    c.reboot(13)  # RAM back to defaults: the watchdog is off again
    time.sleep(0.05)
    assert c.read_value(13, T["bus_watchdog"]) == 0
    c.write(13, T["goal_position"].address, proto.to_bytes(2100, 4))
