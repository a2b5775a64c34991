"""The SO-101 in MuJoCo behind the virtual bus: the SDK drives servos to goals, reads their motion with
signs, and an arm held against its goal trips the servo's overload protection."""

import math
import time

import scservo_sdk as scs

from pearl_robot.feetech.control_table import STS3215, STS_RAD_PER_TICK
from pearl_robot.feetech.protocol import StatusError

POS = STS3215["present_position"].address
SPEED = STS3215["present_speed"].address
GOAL = STS3215["goal_position"].address
TORQUE = STS3215["torque_enable"].address
MOVING = STS3215["moving"].address


def poll(sdk, ids, seconds, address=POS, length=11):
    """Sync reads of ``length`` bytes from ``address`` for ``seconds``: a list of {id: bytes}."""
    reader = scs.GroupSyncRead(sdk.port, sdk.ph, address, length)
    for i in ids:
        reader.addParam(i)
    samples, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        if reader.txRxPacket() == scs.COMM_SUCCESS:
            samples.append({i: bytes(reader.data_dict[i]) for i in ids})
        time.sleep(0.01)
    return samples


def word(data: bytes, offset: int) -> int:
    return scs.SCS_TOHOST(data[offset] | data[offset + 1] << 8, 15)


def test_the_sdk_drives_a_servo_to_its_goal_through_the_physics(make_bus, make_sdk):
    bus = make_bus(physics=True, return_delay_time=0, hidden_directions=[1, 1, 1, 1, -1, 1])
    sdk = make_sdk(bus)
    start = sdk.ph.read2ByteTxRx(sdk.port, 5, POS)[0]
    assert abs(start - 2048) <= 2  # wrist roll at zero
    assert sdk.write1(5, TORQUE, 1) == (scs.COMM_SUCCESS, 0)
    assert sdk.write2(5, GOAL, 2048 + 600) == (scs.COMM_SUCCESS, 0)
    samples = poll(sdk, [5], 1.5, SPEED - 2, 11)
    positions = [word(s[5], 0) for s in samples]
    speeds = [word(s[5], 2) for s in samples]
    moving = [s[5][MOVING - POS] for s in samples]
    assert abs(positions[-1] - 2648) <= 8, positions[-1]  # there, within the servo model's steady error
    assert next(v for v in speeds if v) > 0 and max(speeds) > 1000  # steps/s, toward the goal at speed
    assert 1 in moving[:10] and moving[-1] == 0
    q = bus.plant.joint_state(4)[0]
    assert math.isclose(q, -600 * STS_RAD_PER_TICK, abs_tol=10 * STS_RAD_PER_TICK)  # hidden direction -1

    assert sdk.write2(5, GOAL, 2048 - 300) == (scs.COMM_SUCCESS, 0)  # back past the start: negative speeds
    speeds = [word(s[5], 2) for s in poll(sdk, [5], 0.6, SPEED - 2, 4)]
    assert min(speeds) < -100


def test_goal_speed_limits_how_fast_the_servo_moves(make_bus, make_sdk):
    bus = make_bus(physics=True, return_delay_time=0)
    sdk = make_sdk(bus)
    assert sdk.write2(1, STS3215["goal_speed"].address, 400) == (scs.COMM_SUCCESS, 0)  # steps/s
    assert sdk.write1(1, TORQUE, 1) == (scs.COMM_SUCCESS, 0)
    assert sdk.write2(1, GOAL, 2048 + 800) == (scs.COMM_SUCCESS, 0)
    positions = [word(s[1], 0) for s in poll(sdk, [1], 1.0, POS, 2)]
    assert 2048 + 250 < positions[-1] < 2048 + 600  # about 400 steps in a second, not all 800
    assert bus.servo(1).get("goal_position") == 2848


def test_an_arm_held_against_its_goal_trips_the_overload_protection(make_bus, make_sdk):
    bus = make_bus(physics=True, return_delay_time=0)
    sdk = make_sdk(bus)
    assert sdk.write1(2, STS3215["lock"].address, 0) == (scs.COMM_SUCCESS, 0)
    assert sdk.write1(2, STS3215["protection_time"].address, 20) == (scs.COMM_SUCCESS, 0)  # 0.2 s
    bus.hand.hold(1, 0.0, speed_rad_s=None)  # someone holds the shoulder where it is
    assert sdk.write1(2, TORQUE, 1) == (scs.COMM_SUCCESS, 0)
    assert sdk.write2(2, GOAL, 2048 + 700) == (scs.COMM_SUCCESS, 0)  # the servo pushes at its stall torque
    samples = poll(sdk, [2], 0.8, STS3215["present_load"].address, 6)
    loads = [scs.SCS_TOHOST(s[2][0] | s[2][1] << 8, 10) for s in samples]
    assert max(loads) > 800  # 0.1 % of the maximum torque: above Overload Torque (80 %)
    assert not bus.servo(2).torque_on
    assert bus.stats["protection_stops"] == 1
    assert sdk.ph.ping(sdk.port, 2)[2] == StatusError.OVERLOAD
    bus.hand.release()
