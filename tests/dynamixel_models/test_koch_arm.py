"""The Koch v1.1 follower (XL430-W250 shoulder, XL330-M288 from the elbow on): its hardware file and MJCF
agree with the servos' tables, and a SerialRobot connects, enables, reads and moves it through the
virtual bus on a real pty (MuJoCo physics and ideal servos), from the library and from the CLI."""

import math
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pearl_robot.dynamixel.control_table import control_table
from pearl_robot.robot.serial_robot import SerialRobot
from pearl_robot.robot.sim import SimRobot, load_model
from pearl_robot.virtual import BusFaults

pytestmark = pytest.mark.timeout(120)
MARGIN_MS = 20.0
TICK = 2 * math.pi / 4096


def test_the_hardware_file_names_the_koch_servos(koch):
    assert koch.robot_id == "koch" and koch.control_rate_hz == 20 and koch.bus.baudrate == 1_000_000
    assert [(j.name, j.servo_id, j.model) for j in koch.joints] == [
        ("shoulder_pan", 1, "XL430-W250"),
        ("shoulder_lift", 2, "XL430-W250"),
        ("elbow_flex", 3, "XL330-M288"),
        ("wrist_flex", 4, "XL330-M288"),
        ("wrist_roll", 5, "XL330-M288"),
        ("gripper", 6, "XL330-M288"),
    ]
    assert [j.role for j in koch.joints].count("gripper") == 1
    assert koch.mjcf.name == "koch.xml" and koch.end_effector_site == "end_effector"


def test_the_mjcf_actuators_are_the_servos_of_the_hardware_file(koch):
    """Force range = the servo's stall torque; kp = the stiffness of its position loop at the factory
    Position P Gain (full PWM, 885, at an error of 885 / (P / 128) ticks); joint damping = back-EMF
    (stall torque / no-load speed) x 1.275; the ranges are the hardware file's."""
    model = load_model(koch)
    for joint in koch.joints:
        table = control_table(joint.model)
        act = model.actuator(joint.name)
        assert tuple(act.forcerange) == (-table.stall_torque_nm, table.stall_torque_nm)
        p_gain = table["position_p_gain"].default
        kp = table.stall_torque_nm * (p_gain / 128) / TICK / 885
        assert act.gainprm[0] == pytest.approx(kp, abs=0.01)
        no_load_rad_s = table.no_load_speed_rpm * 2 * math.pi / 60
        damping = model.dof_damping[model.joint(joint.name).dofadr[0]]
        assert damping == pytest.approx(table.stall_torque_nm / no_load_rad_s * 1.275, rel=0.01)
        assert tuple(model.joint(joint.name).range) == pytest.approx((joint.min_rad, joint.max_rad), abs=1e-6)
        assert tuple(act.ctrlrange) == pytest.approx((joint.min_rad, joint.max_rad), abs=1e-6)
    links = ("shoulder", "upper_arm", "forearm", "wrist", "gripper_base", "jaw")
    moving = sum(model.body_mass[model.body(name).id] for name in links)
    assert moving == pytest.approx(0.2519, abs=1e-3)  # the published links' masses, 0.252 kg past the base


def test_sim_robot_holds_the_koch_arm_at_home(koch):
    robot = SimRobot(koch)
    with robot:
        robot.enable()
        for _ in range(20):  # one second at 20 Hz
            robot.write(koch.home_rad)
        state = robot.read()
        site = robot.data.site("end_effector").xpos
    assert np.abs(state.position - koch.home_rad).max() < 0.2  # an XL330's elbow sags ~0.1 rad at P 400
    assert 0.2 < site[0] < 0.3 and 0.03 < site[2] < 0.15  # in front of the base, above the table


def test_serial_robot_moves_the_koch_arm_through_the_virtual_bus(koch, start_virtual_bus):
    bus = start_virtual_bus(koch, return_delay_time=0)  # MuJoCo physics behind the pty
    robot = SerialRobot(koch, bus.device_path, timeout_margin_ms=MARGIN_MS)
    with robot:
        assert robot.state_read == "bulk_read"  # XL430 blocks at 224, XL330 blocks at 208
        robot.enable()
        target = robot.read().position.copy()
        target[0] += 0.4  # shoulder pan: no gravity on it
        target[5] = -0.5  # open the gripper
        for _ in range(50):
            robot.write(target)
            state = robot.read()
            time.sleep(0.03)
        for k in (0, 5):
            assert state.position[k] == pytest.approx(target[k], abs=0.05)
        # effort in each model's own units: an XL330 reports its current in 1 mA (-> A), an XL430 a load
        _, _, tau_elbow = bus.plant.joint_state(2)
        _, _, tau_lift = bus.plant.joint_state(1)
        elbow, lift = control_table("XL330-M288"), control_table("XL430-W250")
        assert state.effort[2] == pytest.approx(tau_elbow * elbow.stall_current_a / elbow.stall_torque_nm, rel=0.2)
        assert state.effort[1] == pytest.approx(tau_lift / lift.stall_torque_nm, rel=0.2)
        assert abs(state.effort[2]) > 0.05  # the elbow holds the forearm: tens of mA
        assert not state.faults
    assert not any(bus.servo(j.servo_id).torque_on for j in koch.joints)  # closed: torque off


def test_ideal_koch_servos_reach_each_target_to_the_tick(koch, start_virtual_bus):
    bus = start_virtual_bus(koch, physics=False, return_delay_time=0)
    robot = SerialRobot(koch, bus.device_path, timeout_margin_ms=MARGIN_MS)
    with robot:
        robot.enable()
        target = koch.home_rad + np.array([0.1, -0.1, 0.1, -0.1, 0.1, -0.1])
        for _ in range(3):
            sent = robot.write(target)
            state = robot.read()
        assert np.abs(state.position - target).max() <= TICK
        assert np.array_equal(state.position, sent)
        assert robot.stats_dict()["bus_failures"] == 0


def test_bulk_reads_recover_from_lost_replies(koch, start_virtual_bus):
    bus = start_virtual_bus(koch, physics=False, return_delay_time=0, faults=BusFaults(drop_rate=0.1, seed=3))
    robot = SerialRobot(koch, bus.device_path, timeout_margin_ms=MARGIN_MS, retries=3)
    with robot:
        robot.enable()
        for _ in range(40):
            robot.write(koch.home_rad)
            robot.read()
        stats = robot.stats_dict()
    assert bus.stats["replies_dropped"] > 0 and stats["bus_retries"] > 0
    assert stats.get("comm_failures", 0) == 0


@pytest.fixture
def cli_bus():
    procs = []

    def start(*args: str) -> tuple[subprocess.Popen, str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pearl_robot.cli.main", "virtual-bus", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        ready, _, _ = select.select([proc.stdout], [], [], 60.0)
        assert ready, "the virtual bus printed no device path"
        return proc, proc.stdout.readline().strip()

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            stream.close()


def test_the_virtual_bus_cli_serves_the_koch_arm(koch, cli_bus):
    proc, device = cli_bus("--hardware", str(koch.source), "--return-delay-time", "0")
    robot = SerialRobot(koch, device, timeout_margin_ms=MARGIN_MS)
    with robot:
        robot.enable()
        target = robot.read().position.copy()
        target[0] += 0.2
        for _ in range(40):
            robot.write(target)
            state = robot.read()
            time.sleep(0.03)
        assert state.position[0] == pytest.approx(target[0], abs=0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    log = proc.stderr.read()
    assert "koch" in log and device in log and "elbow_flex=3" in log and "stopped" in log
