"""The digital twin: the MJCF's geoms posed by MuJoCo forward kinematics, in rerun's shape conventions."""

from __future__ import annotations

import mujoco
import numpy as np

from pearl_robot.robot.kinematics import Kinematics
from pearl_robot.robot.spec import load_spec
from pearl_robot.viz.twin import ArmTwin


def test_the_twin_poses_the_arm_as_mujoco_does():
    spec = load_spec()
    twin = ArmTwin(spec)
    q = np.array([0.4, -0.6, 0.3, 0.5, 0.5])
    ee = twin.pose(q)
    assert np.allclose(ee, Kinematics(spec).end_effector(q))
    model, data = twin.model, twin.data
    # the gripper's mimic finger follows the gripper through the joint equality
    assert data.qpos[model.joint("gripper_mimic").qposadr[0]] == data.qpos[model.joint("gripper").qposadr[0]] == 0.5
    for group in twin.moving.values():
        pose = twin.poses(group)
        for i, gid in enumerate(group.ids):
            wxyz = np.zeros(4)
            mujoco.mju_mat2Quat(wxyz, data.geom_xmat[gid])
            x, y, z, w = pose.quaternions[i]
            assert np.allclose(np.sign(w) * np.array([w, x, y, z]), np.sign(wxyz[0]) * wxyz, atol=1e-9)


def test_capsules_start_at_one_end_as_rerun_draws_them():
    twin = ArmTwin(load_spec())
    twin.pose(np.array([0.0, -1.0, 0.3, 0.7, 0.0]))
    group = twin.moving["capsule"]
    pose = twin.poses(group)
    for i, gid in enumerate(group.ids):
        radius, half = group.sizes[i][:2]
        axis = twin.data.geom_xmat[gid].reshape(3, 3)[:, 2]
        assert np.allclose(pose.positions[i] + axis * half, twin.data.geom_xpos[gid])  # centre = start + half length
        assert radius == twin.model.geom_size[gid][0]


def test_geoms_welded_to_the_world_are_static():
    twin = ArmTwin(load_spec())
    assert set(twin.static["box"].names) >= {"table_top", "base_plate"}  # the floor plane: the grid
    assert "floor" not in twin.static["box"].names + twin.moving["box"].names and len(twin.moving["box"].ids) == 6
