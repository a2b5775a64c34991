import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pearl_robot import open_robot
from pearl_robot.control.loop import RateLoop
from pearl_robot.control.scripted import ScriptedReacher
from pearl_robot.envs import RobotEnv
from pearl_robot.envs.robot_env import REACH_ERROR_UNIT_M
from pearl_robot.tasks.reach import ReachTask, sample_reachable_goals


@pytest.fixture
def goal():
    return sample_reachable_goals(open_robot("sim").spec, 1, np.random.default_rng(0))[0]


@pytest.mark.parametrize("goal_observed", [True, False])
def test_env_checker(backend, goal, goal_observed):
    env = RobotEnv(open_robot(backend), ReachTask(goal=goal, horizon=10, goal_observed=goal_observed))
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (12 + 3 + (6 if goal_observed else 0),)
    env.close()


def test_episode_runs_and_truncates(goal):
    env = RobotEnv(open_robot("sim"), ReachTask(goal=goal, horizon=7))
    obs, _ = env.reset(seed=1)
    for t in range(7):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and not terminated
        assert truncated == (t == 6)
        assert reward == pytest.approx(-info["distance_m"])
    env.close()


def test_actions_are_bounded_joint_target_changes(goal):
    env = RobotEnv(open_robot("mock"), ReachTask(goal=goal, horizon=5))
    env.reset(seed=0)
    before = env.last_state.position.copy()
    env.step(np.ones(4, dtype=np.float32) * 5)  # out-of-range action: clipped to 1
    moved = env.last_state.position - before
    assert np.allclose(moved[:4], env.action_scale_rad, atol=1e-6) and moved[4] == pytest.approx(0.0)


def test_nan_action_holds(goal):
    env = RobotEnv(open_robot("mock"), ReachTask(goal=goal, horizon=5))
    env.reset(seed=0)
    before = env.last_state.position.copy()
    env.step(np.array([np.nan, 0, 0, 0]))
    assert np.allclose(env.last_state.position, before)


def test_observation_carries_the_target_offset_and_the_reach_error(goal):
    """The policy moves a target it would otherwise not see: the observation holds target - position (in
    action-scale units), zero after a reset and the not-yet-followed part of the command while the arm lags;
    and the reach error goal - end effector (in REACH_ERROR_UNIT_M) before the goal."""
    env = RobotEnv(open_robot("sim"), ReachTask(goal=goal, horizon=5))
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs[8:12], 0.0)
    action = np.array([1.0, -1.0, 0.5, 0.0], dtype=np.float32)
    obs, _, _, _, info = env.step(action)
    lag = info["sent_target"][:4] - env.last_state.position[:4]
    np.testing.assert_allclose(obs[8:12] * env.action_scale_rad, lag, atol=1e-6)
    assert np.sign(lag[0]) == np.sign(action[0])  # the base joint has not fully followed in one period
    ee = env.kinematics.end_effector(env.last_state.position)
    np.testing.assert_allclose(obs[12:15], ee, atol=1e-6)
    np.testing.assert_allclose(obs[15:18] * REACH_ERROR_UNIT_M, goal - ee, atol=1e-6)
    np.testing.assert_allclose(obs[18:], goal, atol=1e-6)
    env.close()


def test_scripted_reach_converges_in_real_time(goal):
    """The foundation demo's job: a 20 Hz paced episode on the MuJoCo arm reaches its goal."""
    robot = open_robot("sim")
    loop = RateLoop(robot.spec.period_s)
    env = RobotEnv(robot, ReachTask(goal=goal, horizon=40), loop=loop)
    env.reset(seed=0)
    reacher = ScriptedReacher(env.kinematics, env.arm, env.action_scale_rad)
    truncated = False
    while not truncated:
        _, _, _, truncated, info = env.step(reacher.act(env.last_state.position, goal))
    assert info["distance_m"] < 0.01
    assert loop.stats.cycles == 40 and loop.stats.missed_deadlines == 0
    env.close()


def test_reset_by_motion_when_robot_cannot_teleport(goal):
    robot = open_robot("mock")
    robot.inner.__class__ = type("NoTeleportMock", (type(robot.inner),), {"can_teleport": property(lambda s: False)})
    env = RobotEnv(robot, ReachTask(goal=goal, horizon=5), reset_noise_rad=0.0)
    robot.connect()
    robot.enable()
    robot.teleport(robot.spec.home_rad + np.array([0.3, 0.2, -0.2, 0.1, 0.0]))
    env.reset(seed=0)
    assert np.allclose(env.last_state.position, robot.spec.home_rad, atol=0.02)
    assert robot.events["step_capped"] == 0  # the reset motion itself respects the step cap
