"""TakeoverRobot on a SafeRobot-wrapped mock arm, driven from a keyboard on a real pty: the operator's
targets replace the policy's and go through the same SafeRobot (limits, step cap, e-stop); the target is
leashed to the measured position; hand-back holds a lagging arm first, then starts the policy from where the
arm is (no jump); the stop key hands the stop to the caller; jogging between episodes."""

import threading
import time

import numpy as np
import pytest

from pearl_robot import open_robot
from pearl_robot.envs.robot_env import RobotEnv
from pearl_robot.errors import PearlRobotError
from pearl_robot.tasks.reach import ReachTask
from pearl_robot.teleop.bindings import KEYBOARD_JOG_STEP_RAD
from pearl_robot.teleop.takeover import Control, TakeoverRobot, executed_action

TOL = 1e-9


@pytest.fixture
def arm(keyboard):
    """(takeover, type_keys, safe robot) on an enabled mock arm."""
    source, type_keys = keyboard(num_joints=5)
    robot = open_robot("mock")
    takeover = TakeoverRobot(robot, source)
    with robot:
        takeover.enable()
        yield takeover, type_keys, robot


def step(takeover, policy_target):
    """One control step as the env makes it: poll, write, read."""
    takeover.poll()
    position = takeover.read().position
    sent = np.asarray(takeover.write(policy_target), dtype=float)
    return position, sent


def test_the_policy_drives_until_the_operator_takes_over(arm):
    takeover, type_keys, robot = arm
    target = robot.read().position + 0.05
    _, sent = step(takeover, target)
    np.testing.assert_allclose(sent, target)
    assert not takeover.intervened and takeover.control is Control.POLICY
    type_keys(b" ")
    _, sent_after = step(takeover, target + 0.05)
    assert takeover.intervened and takeover.control is Control.OPERATOR and takeover.takeovers == 1
    np.testing.assert_allclose(sent_after, sent)  # take-over starts from the last target sent: the arm holds


def test_limits_step_cap_and_leash_hold_while_jogging(arm):
    takeover, type_keys, robot = arm
    spec, cap, arm_joints = robot.spec, robot.step_cap, robot.spec.arm_joint_indices
    type_keys(b" 3")  # take over, joint 3
    first = robot.read().position
    last = first.copy()
    for _ in range(16):
        type_keys(b"+" * 10)  # ten presses a period: twice the step cap
        position, sent = step(takeover, np.full(5, 5.0))  # the policy asks for the far end of every joint
        assert takeover.intervened
        assert np.all(sent <= spec.position_max + TOL) and np.all(sent >= spec.position_min - TOL)
        assert np.all(np.abs(sent - last) <= cap + TOL)  # SafeRobot's step cap
        assert np.all(np.abs(sent[arm_joints] - position[arm_joints]) <= cap[arm_joints] + TOL)  # the leash
        np.testing.assert_allclose(np.delete(sent, 2), np.delete(first, 2))  # only joint 3 moves
        last = sent
    assert last[2] == pytest.approx(spec.position_max[2])  # reached its limit and held there
    type_keys(b"-")
    _, sent = step(takeover, np.full(5, 5.0))
    assert sent[2] == pytest.approx(spec.position_max[2] - KEYBOARD_JOG_STEP_RAD)  # no wind-up past the limit


def test_an_estop_refuses_the_operator_too(arm):
    takeover, type_keys, robot = arm
    type_keys(b" 1")
    step(takeover, np.zeros(5))
    held = robot.read().position
    robot.estop("test")
    type_keys(b"+++")
    _, sent = step(takeover, np.zeros(5))
    np.testing.assert_allclose(sent, held)
    assert robot.events["command_refused_estop"] == 1


def test_hand_back_starts_from_the_measured_position(arm):
    takeover, type_keys, robot = arm
    cap, arm_joints = robot.step_cap, robot.spec.arm_joint_indices
    type_keys(b" 1")
    for _ in range(3):
        type_keys(b"+" * 10)
        _, last = step(takeover, np.zeros(5))
    robot.unwrapped().position[0] -= 0.45  # someone pushes the arm well away from its target
    type_keys(b"+" * 10)
    _, last = step(takeover, np.zeros(5))
    type_keys(b" ")
    settling = 0
    while True:
        policy_target = last.copy()
        policy_target[arm_joints] += cap[arm_joints]  # a policy pushing every joint by a full step
        position, sent = step(takeover, policy_target)
        if not takeover.intervened:
            break
        settling += 1  # the target is brought to the arm first: still the operator's step
        assert takeover.control is Control.HANDING_BACK and settling < 10
        last = sent
    assert settling >= 1
    assert takeover.control is Control.POLICY
    assert np.all(np.abs(sent[arm_joints] - position[arm_joints]) <= cap[arm_joints] + TOL)  # no jump
    np.testing.assert_allclose(sent[arm_joints], position[arm_joints] + cap[arm_joints])  # the policy's increment


def test_the_stop_key_hands_the_stop_to_the_caller(arm):
    takeover, type_keys, robot = arm
    type_keys(b" ")
    takeover.poll()
    type_keys(b"q")
    target = robot.read().position + 0.01
    _, sent = step(takeover, target)
    assert takeover.stop_reason == "teleop stop (keyboard: stop key)"
    assert takeover.control is Control.POLICY and not takeover.intervened
    np.testing.assert_allclose(sent, target)  # the caller's safe stop is not replaced


def test_safety_counters_read_through(arm):
    takeover, _, robot = arm
    assert takeover.events is robot.events and takeover.estopped is False


def test_teleoperation_needs_the_safety_layer(keyboard):
    source, _ = keyboard()
    with pytest.raises(PearlRobotError, match="SafeRobot"):
        TakeoverRobot(open_robot("mock", safe=False), source)


def test_jog_between_episodes_until_hand_back(keyboard):
    source, type_keys = keyboard(num_joints=5)
    robot = open_robot("mock")
    takeover = TakeoverRobot(robot, source, reset_jog=True)

    def operator():
        deadline = time.monotonic() + 10
        while takeover.control is not Control.OPERATOR and time.monotonic() < deadline:
            time.sleep(0.005)
        type_keys(b"4+++")
        time.sleep(0.3)  # a few control periods
        type_keys(b"g")

    with robot:
        takeover.enable()
        start = robot.read().position
        takeover.before_episode(0, first=True, stop_requested=lambda: False)  # nothing before the first
        assert takeover.control is Control.POLICY and takeover.takeovers == 0
        thread = threading.Thread(target=operator)
        thread.start()
        try:
            takeover.before_episode(1, first=False, stop_requested=lambda: False)
        finally:
            thread.join(timeout=15)
        end = robot.read().position
    assert takeover.takeovers == 1 and takeover.control is Control.POLICY
    np.testing.assert_allclose(end - start, [0, 0, 0, 3 * KEYBOARD_JOG_STEP_RAD, 0], atol=1e-9)


def test_jog_between_episodes_ends_on_a_stop(keyboard):
    source, type_keys = keyboard()
    robot = open_robot("mock")
    takeover = TakeoverRobot(robot, source, reset_jog=True)
    with robot:
        takeover.enable()
        started = time.monotonic()
        takeover.before_episode(1, first=False, stop_requested=lambda: time.monotonic() - started > 0.2)
    assert time.monotonic() - started < 2 and takeover.control is Control.POLICY


def test_executed_action_is_the_increment_in_action_scales():
    env = RobotEnv(open_robot("mock"), ReachTask(np.zeros(3)))
    before = env.robot_spec.home_rad.copy()
    sent = before.copy()
    sent[env.arm] += 0.5 * env.action_scale_rad
    np.testing.assert_allclose(executed_action(env, before, sent), [0.5] * 4)
    assert executed_action(env, before, None) is None
