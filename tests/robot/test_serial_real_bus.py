"""The serial path on the hardware people plug in, through the real pty: a stock USB adapter that
hands every reply over 16 ms late, factory Return Delay Times, a controlling process killed with -9
(the servos' Bus Watchdog stops them), a joint resting outside its limits at enable, and errors that
say which case they are."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from waiting import eventually

from pearl_robot import open_robot
from pearl_robot.bench.serial import late_replies_run
from pearl_robot.calibrate.model import Calibration
from pearl_robot.errors import RobotFault
from pearl_robot.robot.serial_robot import SerialRobot
from pearl_robot.robot.spec import load_spec

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def spec():
    return load_spec()


@pytest.fixture
def make_bus(spec, start_virtual_bus):
    return lambda **options: start_virtual_bus(spec, **options)


def test_a_stock_adapter_gives_no_stale_state_without_a_flag_and_no_needless_eeprom_write(spec):
    # 200 cycles, every reply 16 ms late (an FTDI/U2D2 at its factory latency timer), a goal of its
    # own each cycle so every state says which cycle it answers; factory Return Delay Time (250)
    result = late_replies_run(spec, 200, adapter_latency_ms=16.0, rate_hz=40.0)
    assert result["stale_unflagged"] == 0
    assert result["eeprom_writes_first_connect"] == spec.num_joints  # Return Delay Time 250 -> 0, once
    assert result["eeprom_writes"] == 0  # the second connect finds every value set
    assert 14.0 < result["measured_lateness_ms"] < 30.0
    assert result["cycle_ms_p50"] > 16.0  # the 16 ms are real: the states are not older than that


def test_late_replies_are_flagged_never_taken_for_the_next_cycle(make_bus, spec):
    bus = make_bus(physics=False, return_delay_time=0)
    robot = SerialRobot(spec, bus.device_path, timeout_margin_ms=5.0, retries=0)
    with robot:
        robot.enable()
        home = robot.read().position
        bus.adapter.latency_s = 0.030  # the adapter gets slower than measured at connect
        unflagged = 0
        for k in range(30):
            goal = home.copy()
            goal[0] += (k % 5) * 0.01
            sent = robot.write(goal)
            state = robot.read()
            stale = any(f.kind == "stale_read" for f in state.faults)
            unflagged += abs(state.position[0] - sent[0]) > 1e-3 and not stale
        stats = robot.stats_dict()
    assert unflagged == 0
    assert stats["bus_late_replies"] >= 1 and stats["bus_deadlines_widened"] >= 1
    assert stats["stale_reads"] <= 3  # the deadlines widened to cover the slower adapter


def test_however_late_a_reply_is_it_never_passes_for_a_later_read(make_bus, spec):
    """Replies 150 ms late, past any deadline or settling window: each comes back during some later
    read, the same instruction with the same size. The servos' Realtime Tick in every reply shows it
    was sampled before that read went out: flagged stale, never taken as fresh."""
    bus = make_bus(physics=False, return_delay_time=0)
    # a 30 ms deadline and a 62 ms settling window: the answer to read 1 lands inside read 3's window
    robot = SerialRobot(spec, bus.device_path, timeout_margin_ms=30.0, retries=0)
    unflagged = flagged = 0
    with robot:
        robot.enable()
        home = robot.read().position
        bus.set_faults(reply_latency_s=0.150)  # the servos answer 150 ms late, in order
        with pytest.raises(RobotFault, match="without a fresh reply|no valid status packet"):
            for k in range(40):
                goal = home.copy()
                goal[0] += (k % 7) * 0.01
                sent = robot.write(goal)
                state = robot.read()
                stale = any(f.kind == "stale_read" for f in state.faults)
                answers_older = abs(state.position[0] - sent[0]) > 1e-3
                unflagged += answers_older and not stale
                flagged += stale
        stats = robot.stats_dict()
    assert unflagged == 0 and flagged >= 1
    assert stats.get("replies_answering_earlier_reads", 0) >= 1  # late replies that landed in a read's window


def test_replies_later_than_any_cycle_allows_say_so(make_bus, spec):
    bus = make_bus(physics=False, return_delay_time=0, adapter_latency_ms=45.0)
    with pytest.raises(RobotFault, match=r"answer, but up to \d+\.\d ms late: no room for a 20 Hz control cycle"):
        SerialRobot(spec, bus.device_path).connect()


def test_one_reply_held_up_at_connect_is_measured_again_not_refused(make_bus, spec):
    """A busy host delays one ping's reply past what a cycle allows: the connect measures again and
    goes on; the deadlines follow the second measurement."""
    bus = make_bus(physics=False, return_delay_time=0, adapter_latency_ms=16.0)
    bus.set_faults(reply_latency_s=0.030)  # 16 + 30 ms: more than the 30 ms a 20 Hz cycle has room for

    def clear_after_the_first_ping():
        assert eventually(lambda: bus.stats["instructions"] >= 1, timeout_s=10.0)
        bus.set_faults(reply_latency_s=0.0)

    clearer = threading.Thread(target=clear_after_the_first_ping)
    robot = SerialRobot(spec, bus.device_path)
    clearer.start()
    with robot:
        clearer.join()
        assert bus.stats["instructions"] >= 2 * 3 * spec.num_joints  # two rounds of 3 pings per servo
        assert 14.0 < robot.bus_latency_ms < 30.0  # the adapter's 16 ms, not the held-up reply
        assert np.all(np.isfinite(robot.read().position))


def test_no_reply_at_all_says_power_wiring_id_baud(make_bus, spec):
    bus = make_bus(physics=False)
    bus.set_faults(drop_rate=1.0)
    with pytest.raises(RobotFault, match=r"no servo answers a ping \(no reply at all\); check power, wiring"):
        SerialRobot(spec, bus.device_path, retries=0).connect()


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from pearl_robot import open_robot
    robot = open_robot("serial:" + sys.argv[1], calibration=sys.argv[2])
    robot.connect()
    robot.enable()
    home = robot.read().position.copy()
    print("active", flush=True)
    k = 0
    while True:
        target = home.copy()
        target[0] += 0.05 * np.sin(k / 5.0)
        robot.write(target)
        robot.read()
        k += 1
        time.sleep(0.05)
    """
)


def test_a_killed_controller_leaves_servos_that_stop_by_themselves(make_bus, spec, tmp_path):
    bus = make_bus(return_delay_time=0)
    calibration = Calibration.identity(spec).save(tmp_path / "identity.yaml")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, bus.device_path, str(calibration)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "active"
        time.sleep(0.5)
        units = [s.get("bus_watchdog") for s in bus.servos]
        assert all(s.torque_on for s in bus.servos) and len(set(units)) == 1 and units[0] > 0
        watchdog_s = units[0] * 0.020
        os.kill(child.pid, signal.SIGKILL)
        killed = time.monotonic()
        child.wait(timeout=10)
        while any(s.get("bus_watchdog") != -1 for s in bus.servos) and time.monotonic() - killed < 3.0:
            time.sleep(0.002)
        stopped_after = time.monotonic() - killed
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        child.stdout.close()
    assert [s.get("bus_watchdog") for s in bus.servos] == [-1] * 5
    assert stopped_after <= watchdog_s + spec.period_s
    held = [s.get("goal_position") for s in bus.servos]
    far = {s.id: held[i] + 200 for i, s in enumerate(bus.servos)}
    from pearl_robot.dynamixel.bus import DynamixelBus  # a goal write now is ignored, as on real servos

    with DynamixelBus.open(bus.device_path, timeout_margin_ms=20.0) as raw:
        raw.sync_write_value(bus.servos[0].table["goal_position"], far)
        time.sleep(0.05)
    assert [s.get("goal_position") for s in bus.servos] == held

    # the next connect explains, clears and continues
    robot = open_robot(bus.address, spec, calibration=calibration, timeout_margin_ms=20.0)
    with robot:
        backend = robot.unwrapped()
        assert backend.stats["bus_watchdog_cleared"] == 5
        assert any("Bus Watchdog had stopped it" in note for note in backend.notices)
        assert [s.get("bus_watchdog") for s in bus.servos] == [0] * 5
        robot.enable()
        robot.write(robot.read().position)
        assert robot.read().ok


def test_an_idle_active_arm_does_not_trip_the_watchdog_and_a_fired_one_is_a_fault(make_bus, spec, tmp_path):
    bus = make_bus(return_delay_time=0)
    calibration = Calibration.identity(spec).save(tmp_path / "identity.yaml")
    robot = open_robot(bus.address, spec, calibration=calibration, timeout_margin_ms=20.0)
    with robot:
        robot.enable()
        robot.write(robot.read().position)
        time.sleep(1.0)  # the policy paused: SafeRobot holds (and keeps the servos hearing from us)
        assert [s.get("bus_watchdog") for s in bus.servos] == [robot.unwrapped().bus_watchdog_units] * 5
        assert robot.read().ok
        # a servo whose watchdog fired anyway (say, a bus glitch) is a fault on the next read, not a frozen arm
        bus.servo(13).set("bus_watchdog", -1)
        state = robot.read()
        assert [f.kind for f in state.faults] == ["bus_watchdog"] and state.faults[0].joint == "joint3"
        assert robot.estopped and "Bus Watchdog" in robot.estop_reason
        robot.disable()
        assert [s.get("bus_watchdog") for s in bus.servos] == [0] * 5  # disable clears it


def test_enable_outside_limits_never_moves_a_goal_by_more_than_the_cap(make_bus, spec, tmp_path):
    start = spec.home_rad.copy()
    start[3] = 2.52  # joint4 rests past its 2.042 rad limit
    bus = make_bus(return_delay_time=0, physics=False, initial_position_rad=start)
    calibration = Calibration.identity(spec).save(tmp_path / "identity.yaml")
    robot = open_robot(bus.address, spec, calibration=calibration, timeout_margin_ms=20.0)
    with robot:
        robot.enable()
        cap = robot.step_cap
        goals = [np.array([s.get("goal_position") for s in bus.servos])]
        for _ in range(12):
            robot.write(robot.read().position)  # "hold where you are"
            time.sleep(0.01)
            goals.append(np.array([s.get("goal_position") for s in bus.servos]))
        final = robot.read().position
    steps = np.abs(np.diff(np.array(goals), axis=0)) * (2 * np.pi / 4096)
    assert steps.max() <= cap.max() + 1e-9
    assert final[3] <= spec.position_max[3] + 1e-6  # brought into range at the capped rate


def test_a_slow_latency_timer_is_set_low_or_named_with_the_command_to_run(make_bus, spec, monkeypatch):
    """The adapter lookup itself is tested on a sysfs tree in tests/bringup; here: what connect does
    with its answer (a pty has no latency timer, so the adapter is described as a stock FTDI)."""
    from pearl_robot.dynamixel.adapter import AdapterInfo
    from pearl_robot.robot import servo_arm

    timer = "/sys/bus/usb-serial/devices/ttyUSB0/latency_timer"
    ftdi = AdapterInfo("/dev/ttyUSB0", "ttyUSB0", True, "ftdi_sio", 16, timer)
    monkeypatch.setattr(servo_arm, "inspect_adapter", lambda device: ftdi)
    attempts = []

    def refuse(device, port=None):
        attempts.append(port)
        return False, "no permission to write the latency timer"

    monkeypatch.setattr(servo_arm, "set_low_latency", refuse)
    bus = make_bus(physics=False, return_delay_time=0)
    robot = SerialRobot(spec, bus.device_path, timeout_margin_ms=20.0)
    with robot:
        assert attempts and attempts[0] is not None  # it tried, on the open port
        assert any("latency timer is 16 ms" in n and "echo 1 | sudo tee" in n for n in robot.notices)
    robot = SerialRobot(spec, bus.device_path, timeout_margin_ms=20.0, low_latency=False)
    attempts.clear()
    with robot:
        assert attempts == []


def test_the_bus_watchdog_can_be_set_or_turned_off(make_bus, spec, tmp_path):
    bus = make_bus(physics=False, return_delay_time=0)
    calibration = Calibration.identity(spec).save(tmp_path / "identity.yaml")
    for option, units in (("bus_watchdog_ms=500", 25), ("bus_watchdog_ms=0", 0)):
        robot = open_robot(f"{bus.address}?{option}&timeout_margin_ms=20", spec, calibration=calibration)
        with robot:
            robot.enable()
            assert [s.get("bus_watchdog") for s in bus.servos] == [units] * 5
