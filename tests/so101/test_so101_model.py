"""The SO-101's hardware file and MJCF: they load, agree with each other and with the published arm
(TheRobotStudio SO-ARM100, Simulation/SO101/so101_new_calib.xml), and the servos behave like STS3215s."""

import math

import mujoco
import numpy as np
import pytest

from pearl_robot.robot.sim import SimRobot, load_model
from pearl_robot.robot.spec import load_spec

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
STALL_TORQUE_NM = 1.91  # STS3215 at 7.4 V: 19.5 kg*cm


@pytest.fixture(scope="module")
def spec():
    return load_spec("so101")


@pytest.fixture(scope="module")
def model(spec):
    return load_model(spec)


def test_the_hardware_file_describes_a_feetech_bus_of_six_sts3215(spec):
    assert spec.robot_id == "so101"
    assert (spec.bus.protocol, spec.bus.baudrate, spec.bus.latency_timer_ms) == ("feetech", 1_000_000, 1.0)
    assert spec.joint_names == JOINTS
    assert [j.servo_id for j in spec.joints] == [1, 2, 3, 4, 5, 6]
    assert {j.model for j in spec.joints} == {"STS3215"}
    assert [j.role for j in spec.joints] == ["arm"] * 5 + ["gripper"]
    assert np.all(spec.position_min < spec.home_rad) and np.all(spec.home_rad < spec.position_max)
    # the no-load speed at 7.4 V is 5.45 rad/s; the file's limit is the loaded top speed, below it
    assert np.all((spec.velocity_max > 2.0) & (spec.velocity_max < 5.45))
    assert spec.mjcf.name == "so101.xml" and spec.end_effector_site == "end_effector"


def test_the_published_joint_ranges_in_both_files(spec, model):
    published = {  # so101_new_calib.xml, radians
        "shoulder_pan": (-1.91986, 1.91986),
        "shoulder_lift": (-1.74533, 1.74533),
        "elbow_flex": (-1.69, 1.69),
        "wrist_flex": (-1.65806, 1.65806),
        "wrist_roll": (-2.74385, 2.84121),
        "gripper": (-0.17453, 1.74533),
    }
    for joint in spec.joints:
        np.testing.assert_allclose((joint.min_rad, joint.max_rad), published[joint.name], atol=1e-4)
        np.testing.assert_allclose(model.joint(joint.name).range, (joint.min_rad, joint.max_rad), atol=1e-9)
        actuator = model.actuator(joint.name)
        np.testing.assert_allclose(actuator.ctrlrange, (joint.min_rad, joint.max_rad), atol=1e-9)
        assert model.jnt_limited[model.joint(joint.name).id]


def test_the_mjcf_has_what_the_project_looks_up(spec, model):
    assert model.site("end_effector") and model.body("payload")
    assert math.isclose(spec.period_s / model.opt.timestep, round(spec.period_s / model.opt.timestep))
    for name in JOINTS:
        actuator = model.actuator(name)
        np.testing.assert_allclose(actuator.forcerange, (-STALL_TORQUE_NM, STALL_TORQUE_NM))
        assert actuator.gainprm[0] > 0 and actuator.biasprm[1] == -actuator.gainprm[0]  # a position servo
        dof = model.joint(name).dofadr[0]
        assert model.dof_damping[dof] > 0 and model.dof_armature[dof] > 0 and model.dof_frictionloss[dof] > 0
    # the published link masses: 0.147 (base) + 0.100 + 0.103 + 0.104 + 0.079 + 0.087 + 0.012 kg
    moving = sum(model.body(b).mass[0] for b in ("shoulder", "upper_arm", "lower_arm", "wrist", "gripper_link"))
    assert moving + model.body("moving_jaw").mass[0] == pytest.approx(0.485, abs=0.002)


def test_the_servos_hold_home_against_gravity_and_top_out_at_the_loaded_speed(spec):
    robot = SimRobot(spec)
    with robot:
        robot.enable()
        for _ in range(20):
            robot.write(spec.home_rad)
        state = robot.read()
        assert np.max(np.abs(state.position - spec.home_rad)) < 0.05  # a P-only servo sags a little
        assert np.all(np.abs(state.effort) <= STALL_TORQUE_NM + 1e-9)
        goal = spec.home_rad.copy()
        goal[0] = spec.position_max[0] - 0.1  # a 1.8 rad step of the base joint (no gravity load)
        speeds = []
        for _ in range(20):
            robot.write(goal)
            speeds.append(abs(robot.read().velocity[0]))
        # saturated at stall torque / damping (1.91 / 0.60 = 3.2 rad/s), as the hardware file's limit says
        assert max(speeds) == pytest.approx(spec.velocity_max[0], rel=0.1)
        assert abs(robot.read().position[0] - goal[0]) < 0.01


def test_the_end_effector_workspace_is_the_published_arm(spec, model):
    data = mujoco.MjData(model)
    qpos = [model.joint(n).qposadr[0] for n in JOINTS]
    site = model.site("end_effector").id
    lift = model.body("upper_arm").id

    def reach(q):
        data.qpos[qpos] = q
        mujoco.mj_kinematics(model, data)
        return data.site_xpos[site].copy(), data.xpos[lift].copy()

    # zero pose: upper arm up, forearm and gripper forward; the shoulder-lift axis at about 0.12 m height
    ee, shoulder = reach(np.zeros(6))
    assert ee[0] > 0.3 and abs(ee[1]) < 1e-3 and shoulder[2] == pytest.approx(0.117, abs=0.005)
    # stretched out, the reach from the shoulder is the sum of the links: upper arm 116 mm, forearm 135 mm, wrist
    # 64 mm, wrist roll to between the jaws' tips 98 mm (the published joint offsets)
    links = [model.body(b).pos for b in ("lower_arm", "wrist", "gripper_link")] + [model.site("end_effector").pos]
    stretched = sum(np.linalg.norm(v) for v in links)
    assert stretched == pytest.approx(0.413, abs=0.002)
    rng = np.random.default_rng(0)
    lo, hi = spec.position_min, spec.position_max
    reaches = [np.linalg.norm(np.subtract(*reach(rng.uniform(lo, hi)))) for _ in range(2000)]
    assert 0.9 * stretched < max(reaches) <= stretched
    ee, _ = reach(spec.home_rad)
    assert 0.25 < ee[0] < 0.35 and abs(ee[1]) < 1e-3 and 0.12 < ee[2] < 0.24  # the ready pose, above the table
