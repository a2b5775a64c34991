"""The real SerialRobot against the virtual bus through a pty: lifecycle, a 20 Hz RobotEnv episode,
and every fault the bus can produce (latency, dropped replies, corrupted CRCs, a servo hardware
error, the device vanishing mid-episode): counted, safely stopped, never hung."""

import dataclasses
import time

import numpy as np
import pytest
from waiting import eventually

from pearl_robot import open_robot
from pearl_robot.calibrate.model import Calibration, JointCalibration
from pearl_robot.calibrate.robot import CalibratedRobot
from pearl_robot.control.loop import RateLoop
from pearl_robot.dynamixel.control_table import RAD_PER_TICK, XM430_W350, HardwareError
from pearl_robot.envs.robot_env import RobotEnv
from pearl_robot.errors import ConfigError, LifecycleError, RobotFault
from pearl_robot.robot.base import Lifecycle
from pearl_robot.robot.safety import SafeRobot
from pearl_robot.robot.serial_robot import SerialRobot
from pearl_robot.robot.spec import load_spec
from pearl_robot.tasks.reach import ReachTask
from pearl_robot.virtual import BusFaults, VirtualServoBus

pytestmark = pytest.mark.timeout(120)
MARGIN_MS = 20.0  # timeout margin on a shared CI machine; real hardware runs the 5 ms default


@pytest.fixture
def spec():
    return load_spec()


@pytest.fixture
def make_bus(spec, start_virtual_bus):
    return lambda **options: start_virtual_bus(spec, **options)


@pytest.fixture
def identity_calibration(spec, tmp_path):
    """The virtual arm's servos are mounted as the joints are (no hidden offsets): identity calibration."""
    return Calibration.identity(spec).save(tmp_path / "identity.yaml")


@pytest.fixture
def make_robot(spec, identity_calibration):
    robots = []

    def make(bus, safe=True, **options):
        options.setdefault("timeout_margin_ms", MARGIN_MS)
        options.setdefault("calibration", identity_calibration)
        robot = open_robot(bus.address, spec, safe=safe, **options)
        robots.append(robot)
        return robot

    yield make
    for robot in robots:
        robot.close()


def servo_values(bus, name):
    return [s.get(name) for s in bus.servos]


def run_episode(robot, steps, amplitude=0.15, check=None):
    spec = robot.spec
    loop = RateLoop(spec.period_s)
    start = robot.read().position.copy()
    loop.start()
    for k in range(steps):
        target = start.copy()
        target[spec.arm_joint_indices] += amplitude * np.sin(2 * np.pi * k / 20)
        robot.write(target)
        loop.wait()
        state = robot.read()
        if check:
            check(k, state)
    return loop


def test_open_robot_gives_a_safe_serial_robot(make_bus, make_robot):
    robot = make_robot(make_bus(physics=False))
    assert isinstance(robot, SafeRobot) and isinstance(robot.unwrapped(), SerialRobot)
    assert robot.realtime and robot.watchdog_enabled


def test_lifecycle_on_the_wire(make_bus, make_robot, spec):
    bus = make_bus()
    robot = make_robot(bus)
    backend = robot.unwrapped()
    robot.connect()
    assert robot.lifecycle is Lifecycle.INACTIVE
    assert servo_values(bus, "torque_enable") == [0] * 5
    assert servo_values(bus, "return_delay_time") == [0] * 5  # configured at connect
    assert servo_values(bus, "status_return_level") == [2] * 5
    assert backend.stats["eeprom_writes"] == 5
    state = robot.read()
    assert state.ok and state.position.shape == (5,) and state.effort is not None
    with pytest.raises(LifecycleError):
        robot.write(state.position)
    # a stale goal in the servos must not make the arm jump on enable
    for s in bus.servos:
        s.set("goal_position", 3000)
    before = robot.read().position
    robot.enable()
    assert servo_values(bus, "torque_enable") == [1] * 5
    time.sleep(0.3)
    after = robot.read().position
    assert np.max(np.abs(after - before)) < 0.1
    assert all(abs(g - 3000) > 100 for g in servo_values(bus, "goal_position"))
    # commands move the arm
    goal = after.copy()
    goal[0] += 0.1
    for _ in range(30):
        robot.write(goal)
        time.sleep(0.02)
    assert robot.read().position[0] == pytest.approx(goal[0], abs=0.03)
    robot.disable()
    assert servo_values(bus, "torque_enable") == [0] * 5
    robot.enable()
    robot.close()
    assert servo_values(bus, "torque_enable") == [0] * 5  # confirmed before close() returned
    assert robot.lifecycle is Lifecycle.CLOSED
    # the second connect writes no EEPROM: it is already configured
    again = make_robot(bus)
    again.connect()
    assert again.unwrapped().stats["eeprom_writes"] == 0


def test_close_can_hold(make_bus, make_robot):
    bus = make_bus(physics=False, return_delay_time=0)
    robot = make_robot(bus, on_close="hold")
    robot.connect()
    robot.enable()
    robot.close()
    assert servo_values(bus, "torque_enable") == [1] * 5


def test_full_20hz_robot_env_episode(make_bus, make_robot, spec):
    bus = make_bus()
    robot = make_robot(bus)
    loop = RateLoop(spec.period_s)
    env = RobotEnv(robot, ReachTask(goal=np.array([0.2, 0.0, 0.15]), horizon=40), loop=loop)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    steps = 0
    truncated = False
    stale = 0
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        # a loaded machine may make a reply miss its deadline: then the state says so, and nothing else
        assert np.isfinite(reward) and all(f.startswith("stale_read") for f in info["faults"]), info["faults"]
        stale += bool(info["faults"])
        steps += 1
    assert steps == 40 and stale <= 3
    assert loop.stats.missed_deadlines <= 2  # a shared machine; the rate itself is the loop's business
    stats = robot.unwrapped().stats_dict()
    assert stats["bus_failures"] <= stale and stats.get("safe_stops", 0) == 0
    assert robot.events["estop"] == 0
    env.close()


def test_one_transaction_each_way_per_cycle(make_bus, make_robot):
    bus = make_bus(physics=False, return_delay_time=0)
    robot = make_robot(bus, safe=False)
    robot.connect()
    robot.enable()
    hold = robot.read().position
    before = dict(bus.stats)
    for _ in range(10):
        robot.write(hold)
        robot.read()
    assert eventually(lambda: bus.stats["instructions"] - before["instructions"] == 20)
    assert bus.stats["replies"] - before["replies"] == 10 * 5


def test_latency_within_the_deadline_is_harmless(make_bus, make_robot):
    bus = make_bus(physics=False, return_delay_time=0, faults=BusFaults(reply_latency_s=0.004))
    robot = make_robot(bus)
    robot.connect()
    robot.enable()
    t0 = time.monotonic()
    robot.read()
    assert time.monotonic() - t0 >= 0.004
    run_episode(robot, 10)
    assert robot.unwrapped().stats_dict()["bus_retries"] == 0


def test_latency_beyond_the_deadline_is_flagged_then_stops_safely_with_a_clear_error(make_bus, make_robot):
    """Replies 250 ms late (in order, as a stalled servo chain answers): every state that is older than
    its read is flagged and keeps the time its data arrived; once no fresh reply comes for five reads
    the arm is told to hold and the robot is in ERROR, with a clear error, in bounded time. (A reply
    that answers an older instruction but was sampled after this read went out is fresh data.)"""
    bus = make_bus(physics=False, return_delay_time=0)
    robot = make_robot(bus, retries=2, timeout_margin_ms=10.0)
    robot.connect()
    robot.enable()
    home = robot.read().position
    bus.set_faults(reply_latency_s=0.25)
    t0 = time.monotonic()
    unflagged = flagged = 0
    late = r"(no valid status packet .* after \d attempts?|\d reads in a row without a fresh reply).*ERROR"
    # the fault surfaces in this thread's read or write, or first in SafeRobot's keepalive thread, which
    # puts the robot in ERROR, so that this thread's next command is refused
    with pytest.raises((RobotFault, LifecycleError), match=late + "|refused unless ACTIVE; this robot is error"):
        for k in range(60):
            goal = home.copy()
            goal[0] += (k % 5) * 0.01
            sent = robot.write(goal)
            state = robot.read()
            stale = [f for f in state.faults if f.kind == "stale_read"]
            flagged += bool(stale)
            unflagged += abs(state.position[0] - sent[0]) > 1e-3 and not stale
            if stale:
                assert "ms old" in str(stale[0]) and state.timestamp < time.monotonic() - 0.02
    assert time.monotonic() - t0 < 20.0
    assert unflagged == 0 and flagged >= 1
    assert robot.lifecycle is Lifecycle.ERROR
    backend = robot.unwrapped()
    assert backend.stats["stale_reads"] >= 1
    assert backend.stats["safe_stops"] == 1 and backend.stats["comm_failures"] == 1
    with pytest.raises(LifecycleError):
        robot.write(home)
    bus.set_faults(reply_latency_s=0.0)
    time.sleep(0.3)
    robot.disable()  # from ERROR back to INACTIVE once the bus answers again
    assert robot.lifecycle is Lifecycle.INACTIVE
    assert servo_values(bus, "torque_enable") == [0] * 5


@pytest.mark.parametrize("fault", ["drop_rate", "corrupt_rate"])
def test_bad_replies_at_a_rate_are_retried_and_counted(make_bus, make_robot, fault):
    bus = make_bus(return_delay_time=0, faults=BusFaults(seed=3))
    robot = make_robot(bus)
    robot.connect()
    robot.enable()
    bus.set_faults(**{fault: 0.05})
    run_episode(robot, 40)
    stats = robot.unwrapped().stats_dict()
    if fault == "corrupt_rate":
        assert bus.stats["replies_corrupted"] > 0
        assert stats["bus_crc_errors"] == bus.stats["replies_corrupted"]
    else:
        assert bus.stats["replies_dropped"] > 0
        assert stats["bus_timeouts"] == bus.stats["replies_dropped"]
    assert stats["bus_retries"] > 0
    # a read that ran out of its retries within the period came back flagged stale, never silently old
    assert stats["bus_failures"] == stats.get("stale_reads", 0)
    assert robot.lifecycle is Lifecycle.ACTIVE and robot.events["estop"] == 0


def test_servo_hardware_error_is_a_fault_and_the_arm_holds(make_bus, make_robot):
    bus = make_bus(return_delay_time=0)
    robot = make_robot(bus)
    robot.connect()
    robot.enable()
    faults_seen = []

    def check(k, state):
        if k == 10:
            bus.inject_hardware_error(12, HardwareError.OVERLOAD)
        faults_seen.append(state.faults)

    run_episode(robot, 25, check=check)
    first = next(i for i, f in enumerate(faults_seen) if f)
    fault = faults_seen[first][0]
    assert (fault.kind, fault.joint) == ("overload", "joint2") and "overload" in fault.detail
    assert robot.estopped and "overload" in robot.estop_reason
    assert robot.lifecycle is Lifecycle.ACTIVE  # holding, not dropped: the other servos keep torque
    # the arm holds: commands are refused, goals stay where the joints are
    state = robot.read()
    sent = robot.write(state.position + 0.1)
    assert np.allclose(sent, state.position, atol=2 * RAD_PER_TICK)
    assert robot.events["command_refused_estop"] >= 1
    backend = robot.unwrapped()
    assert backend.hardware_errors == {12: int(HardwareError.OVERLOAD)}
    # the way out: make it safe, reboot the servo, clear the e-stop, enable again
    robot.disable()
    with pytest.raises(RobotFault, match="overload"):
        backend.enable()
    backend.clear_faults()
    assert backend.hardware_errors == {}
    robot.clear_estop()
    robot.enable()
    assert robot.read().ok


def test_device_vanishing_mid_episode_is_a_clear_error_not_a_hang(make_bus, make_robot, tmp_path):
    bus = make_bus(return_delay_time=0, link=tmp_path / "arm")
    robot = make_robot(bus)
    robot.connect()
    robot.enable()

    def check(k, state):
        if k == 8:
            bus.vanish()

    t0 = time.monotonic()
    with pytest.raises(RobotFault, match=r"serial device .*(failed|disconnected).*ERROR"):
        run_episode(robot, 30, check=check)
    assert time.monotonic() - t0 < 5.0
    assert robot.lifecycle is Lifecycle.ERROR
    assert robot.unwrapped().stats["comm_failures"] == 1
    t0 = time.monotonic()
    robot.close()  # nothing left to talk to: closes without raising or hanging
    assert time.monotonic() - t0 < 2.0
    assert robot.lifecycle is Lifecycle.CLOSED


def test_connect_errors_are_clear(make_bus, spec, tmp_path):
    with pytest.raises(RobotFault, match="cannot open serial device"):
        SerialRobot(spec, str(tmp_path / "nothing")).connect()
    bus = make_bus(physics=False, return_delay_time=0)
    wrong_model = dataclasses.replace(
        spec, joints=(dataclasses.replace(spec.joints[0], model="XL430-W250"), *spec.joints[1:])
    )
    robot = SerialRobot(wrong_model, bus.device_path, timeout_margin_ms=MARGIN_MS)
    with pytest.raises(ConfigError, match="reports model number 1020"):
        robot.connect()
    assert robot.lifecycle is Lifecycle.UNCONFIGURED
    missing = dataclasses.replace(spec, joints=(*spec.joints[:4], dataclasses.replace(spec.joints[4], servo_id=42)))
    robot = SerialRobot(missing, bus.device_path, timeout_margin_ms=MARGIN_MS, retries=1)
    with pytest.raises(RobotFault, match=r"gripper \(id 42\) does not answer"):
        robot.connect()
    with pytest.raises(ConfigError, match="unknown Dynamixel model"):
        SerialRobot(dataclasses.replace(spec, joints=(dataclasses.replace(spec.joints[0], model="AX-12"),)), "x")


def test_operating_mode_is_set_to_position_control(make_bus, make_robot):
    bus = make_bus(physics=False, return_delay_time=0)
    bus.servo(13).set("operating_mode", 1)  # velocity mode left over from another program
    robot = make_robot(bus)
    robot.connect()
    assert bus.servo(13).get("operating_mode") == 3


def test_calibration_maps_raw_servo_angles_to_joint_angles(make_bus, make_robot, spec, tmp_path):
    """SerialRobot reads raw angles, (ticks - 2048) * 2pi/4096; CalibratedRobot, from the calibration
    file, makes them joint angles: a hidden offset and a reversed servo are undone, both ways."""
    start = np.zeros(spec.num_joints)
    offsets, directions = [0, 300, 0, 0, 0], [-1, 1, 1, 1, 1]
    bus = make_bus(
        physics=False,
        return_delay_time=0,
        initial_position_rad=start,
        hidden_offsets_ticks=offsets,
        hidden_directions=directions,
    )
    raw = SerialRobot(spec, bus.device_path, timeout_margin_ms=MARGIN_MS)
    with raw:
        assert raw.read().position[1] == pytest.approx(300 * RAD_PER_TICK)
    joints = {
        name: JointCalibration(offset_rad=o * RAD_PER_TICK, direction=d)
        for name, o, d in zip(spec.joint_names, offsets, directions)
    }
    path = Calibration(spec.robot_id, joints, {j.name: j.servo_id for j in spec.joints}).save(tmp_path / "cal.yaml")
    calibrated = make_robot(bus, safe=False, calibration=path)
    assert isinstance(calibrated, CalibratedRobot) and isinstance(calibrated.unwrapped(), SerialRobot)
    calibrated.connect()
    bus.hand.hold(0, 0.2)  # the true joint angle
    position = calibrated.read().position
    assert position[1] == pytest.approx(0.0, abs=1e-9)
    assert position[0] == pytest.approx(0.2, abs=RAD_PER_TICK)
    bus.hand.release()
    calibrated.enable()
    calibrated.write(np.array([0.1, 0.05, 0.0, 0.0, 0.0]))
    assert eventually(lambda: bus.servo(11).get("goal_position") == round(2048 - 0.1 / RAD_PER_TICK))
    assert bus.servo(12).get("goal_position") == round(2048 + 300 + 0.05 / RAD_PER_TICK)
    assert bus.plant.goal[:2] == pytest.approx([0.1, 0.05], abs=RAD_PER_TICK)  # the true joint goes there


def test_serial_robot_needs_a_calibration(make_bus, spec, tmp_path):
    bus = make_bus(physics=False, return_delay_time=0)
    robot = open_robot(bus.address, spec, calibration=tmp_path / "missing.yaml", timeout_margin_ms=MARGIN_MS)
    with robot:
        assert robot.read().ok  # raw angles stay readable (the calibration procedure needs them)
        with pytest.raises(ConfigError, match=r"not calibrated.*pearl-robot calibrate joints --robot serial:"):
            robot.enable()
        assert servo_values(bus, "torque_enable") == [0] * 5


def test_goals_are_clipped_to_joint_and_servo_limits(make_bus, make_robot, spec):
    bus = make_bus(physics=False, return_delay_time=0)
    bus.servo(11).set("max_position_limit", 2100)
    robot = make_robot(bus, safe=False)
    robot.connect()
    robot.enable()
    sent = robot.write(np.array([3.0, -3.0, 0.0, 0.0, 0.0]))
    assert eventually(lambda: bus.servo(11).get("goal_position") == 2100)
    assert sent[0] == pytest.approx(52 * RAD_PER_TICK)
    assert sent[1] == pytest.approx(spec.position_min[1], abs=RAD_PER_TICK)


def test_mixed_models_and_xl430_load(make_bus, spec):
    mixed = dataclasses.replace(
        spec, joints=(*spec.joints[:4], dataclasses.replace(spec.joints[4], model="XL430-W250"))
    )
    bus = VirtualServoBus.from_spec(mixed, physics=False, return_delay_time=0).start()
    try:
        robot = SerialRobot(mixed, bus.device_path, timeout_margin_ms=MARGIN_MS)
        with robot:
            robot.enable()
            assert robot._state_block == (224, 14)  # the same indirect block: still one SYNC READ
            assert robot.read().effort.shape == (5,)
            assert bus.servo(15).table.model_number == 1060
    finally:
        bus.stop()
    assert XM430_W350["present_current"].address == 126
