"""Jogs applied to joint targets: joint deltas add, a Cartesian nudge moves the end effector the way it
asks (damped least squares on the arm's Jacobian from its MJCF), the result stays within the joint limits;
and where the policy's actions are controller parameters, an operator's step has no action to be."""

import argparse

import numpy as np
import pytest

from pearl_robot import open_robot
from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.kinematics import Kinematics
from pearl_robot.robot.spec import load_spec
from pearl_robot.tasks.arm import ArmTaskEnv
from pearl_robot.tasks.reach import ReachTask
from pearl_robot.teleop.jog import Jogger
from pearl_robot.teleop.options import check_context_option
from pearl_robot.teleop.source import TeleopCommand
from pearl_robot.teleop.takeover import executed_action

SPEC = load_spec()


def test_joint_deltas_add_and_stay_within_the_limits():
    jogger = Jogger(SPEC)
    target = SPEC.home_rad.copy()
    moved = jogger.apply(target, TeleopCommand(joint_delta_rad=np.array([0.1, 0, 0, 0, -0.05])))
    np.testing.assert_allclose(moved - target, [0.1, 0, 0, 0, -0.05])
    far = jogger.apply(target, TeleopCommand(joint_delta_rad=np.full(5, 10.0)))
    np.testing.assert_allclose(far, SPEC.position_max)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_cartesian_nudge_moves_the_end_effector_that_way(axis):
    jogger, kinematics = Jogger(SPEC), Kinematics(SPEC)
    target = SPEC.home_rad.copy()
    delta = np.zeros(3)
    delta[axis] = 0.004
    moved = jogger.apply(target, TeleopCommand(cartesian_delta_m=delta))
    shift = kinematics.end_effector(moved) - kinematics.end_effector(target)
    np.testing.assert_allclose(shift, delta, atol=5e-4)  # first order, a few mm
    assert moved[4] == target[4]  # the gripper is not an arm joint


def test_an_operator_step_has_no_action_where_actions_are_controller_parameters():
    env = ArmTaskEnv(open_robot("mock"), ReachTask(np.zeros(3)), action_mode="controller")
    before = SPEC.home_rad.copy()
    assert executed_action(env, before, before + 0.01) is None
    with pytest.raises(PearlRobotError, match="controller parameters"):
        check_context_option(argparse.Namespace(context_includes_interventions=True), env)
    check_context_option(argparse.Namespace(context_includes_interventions=None), env)
