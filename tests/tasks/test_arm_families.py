import json

import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.robot.safety import SafeRobot
from pearl_robot.robot.sim import SimRobot
from pearl_robot.tasks.base import Task
from pearl_robot.tasks.registry import make_family


@pytest.fixture(scope="module")
def reach():
    return make_family("arm-reach")


@pytest.fixture(scope="module")
def dyn():
    return make_family("arm-dynamics")


def test_arm_reach_builds_on_the_robot_stack(reach):
    env = reach.make_env(seed=0)
    assert isinstance(env.robot, SimRobot)
    assert env.observation_space.shape == (15,)  # joints, velocities, target offsets, end effector: no goal
    assert env.action_space.shape == (4,) and env.action_space.high.max() == 1
    assert not env.task.goal_observed
    check_env(env, skip_render_check=True)
    env.close()


def test_arm_reach_split_and_apply(reach):
    train, test = reach.split(0)
    assert (len(train), len(test)) == (80, 20) and reach.split(0) == (train, test)
    assert {tuple(t.params["goal"]) for t in train}.isdisjoint(tuple(t.params["goal"]) for t in test)
    json.dumps([t.params for t in train])
    env = reach.make_env(seed=0)
    for task in train[:2]:
        reach.apply(env, task)
        obs, _ = env.reset(seed=0)
        _, reward, _, truncated, info = env.step(np.zeros(4))
        ee = env.kinematics.end_effector(env.last_state.position)
        assert reward == pytest.approx(-np.linalg.norm(ee - task.params["goal"]))
        assert "sparse_reward" in info and not truncated
    env.close()


def test_arm_dynamics_builds_and_observes_the_goal(dyn):
    env = dyn.make_env(seed=0)
    assert env.observation_space.shape == (21,)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=4)
    np.testing.assert_allclose(obs[-3:], env.task.goal, atol=1e-6)
    goals = {tuple(env.reset(seed=s)[0][-3:]) for s in range(5)}
    assert len(goals) > 1  # a new goal per episode
    np.testing.assert_array_equal(env.reset(seed=2)[0], env.reset(seed=2)[0])
    env.close()


def test_arm_dynamics_tasks(dyn):
    train, test = dyn.split(0)
    assert (len(train), len(test)) == (40, 10) and dyn.split(0) == (train, test)
    assert {repr(t.params) for t in train}.isdisjoint(repr(t.params) for t in test)
    json.dumps([t.params for t in train])
    d = [ArmDynamics.from_dict(t.params) for t in train + test]
    gains = np.array([x.gain_scale for x in d])
    assert gains.min() >= 0.25 and gains.max() <= 4 and gains.max() / gains.min() > 5
    assert all(0 <= x.latency_s <= 0.3 for x in d) and all(0 <= x.payload_mass_kg <= 0.4 for x in d)


def test_arm_dynamics_apply_changes_the_model_and_the_behaviour(dyn):
    env = dyn.make_env(seed=0)
    sim = env.robot.unwrapped()
    kp0 = sim.model.actuator_gainprm[0, 0]
    soft = Task(dyn.name, 0, ArmDynamics(gain_scale=0.3, payload_mass_kg=0.3, latency_s=0.15).to_dict())
    stiff = Task(dyn.name, 1, ArmDynamics(gain_scale=3.0).to_dict())
    finals = {}
    for task in (soft, stiff):
        dyn.apply(env, task)
        env.reset(seed=0)
        assert sim.dynamics == ArmDynamics.from_dict(task.params)
        assert sim.model.actuator_gainprm[0, 0] == pytest.approx(kp0 * task.params["gain_scale"])
        positions = []
        for _ in range(10):
            env.step(np.array([0.0, 1.0, 0.0, 0.0]))
            positions.append(env.last_state.position[1])
        finals[task.index] = np.array(positions)
    # latency: the soft arm has not moved after 2 steps (0.1 s); the stiff one has
    start = env.robot_spec.home_rad[1]
    assert abs(finals[0][1] - start) < 0.06 < abs(finals[1][1] - start)
    assert np.abs(finals[0] - finals[1]).max() > 0.1
    env.close()


def test_arm_dynamics_center_and_calibration(tmp_path):
    fam = make_family("arm-dynamics", center={"gain_scale": 2.0, "latency_s": 0.05}, latency_range_s=[0, 0.1])
    tasks = fam.sample_tasks(30, np.random.default_rng(0))
    gains = np.array([t.params["gain_scale"] for t in tasks])
    assert gains.min() >= 0.5 and gains.max() <= 8 and gains.max() > 4
    assert all(0.05 <= t.params["latency_s"] <= 0.15 for t in tasks)
    per_joint = make_family("arm-dynamics", per_joint=True).sample_tasks(2, np.random.default_rng(0))
    assert len(per_joint[0].params["damping_scale"]) == 5
    cal = tmp_path / "arm.yaml"
    fitted = ArmDynamics(damping_scale=(1.5, 1.5, 1.5, 1.5, 1.0), latency_s=0.02).to_dict()
    cal.write_text(yaml.safe_dump({"robot_id": "openmanipulator_x", "joints": {"joint1": {}}, "dynamics": fitted}))
    fam = make_family("arm-dynamics", calibration=str(cal))
    assert fam.center == ArmDynamics.from_dict(fitted)
    task = fam.sample_tasks(1, np.random.default_rng(0))[0]
    assert task.params["latency_s"] >= 0.02 and len(task.params["damping_scale"]) == 5
    with pytest.raises(PearlRobotError):
        make_family("arm-dynamics", center={"no_such_field": 1})
    with pytest.raises(PearlRobotError):
        make_family("arm-dynamics", gain_range=[2, 1])


@pytest.mark.parametrize("name", ["arm-reach", "arm-dynamics"])
def test_safe_robot_changes_nothing_in_simulation(name):
    """The families skip SafeRobot on ``sim`` by default: RobotEnv applies the same limits and step cap."""
    trajectories = []
    for safe in (False, True):
        fam = make_family(name, safe=safe)
        env = fam.make_env(seed=0)
        assert isinstance(env.robot, SafeRobot) == safe
        fam.apply(env, fam.split(0)[0][3])
        env.reset(seed=5)
        actions = np.random.default_rng(0).uniform(-1.5, 1.5, (30, 4))
        trajectories.append([env.step(a)[0] for a in actions])
        if safe:
            assert env.robot.events["position_clamped"] == 0 and env.robot.events["step_capped"] == 0
        env.close()
    np.testing.assert_array_equal(trajectories[0], trajectories[1])


def test_arm_dynamics_cannot_set_the_dynamics_of_a_real_arm():
    fam = make_family("arm-dynamics", robot="mock")
    env = fam.make_env(seed=0)
    with pytest.raises(PearlRobotError, match="cannot be set"):
        fam.apply(env, fam.split(0)[0][0])
    env.close()


def test_arm_dynamics_reward_penalises_moving_away(dyn):
    env = dyn.make_env(seed=0)
    env.reset(seed=1)
    previous = np.linalg.norm(env.kinematics.end_effector(env.last_state.position) - env.task.goal)
    for action in np.random.default_rng(0).uniform(-1, 1, (15, 4)):
        _, reward, _, _, info = env.step(action)
        away = max(0.0, info["distance_m"] - previous)
        assert reward == pytest.approx(-info["distance_m"] - 10.0 * away)
        assert info["moved_away_m"] == pytest.approx(away)
        previous = info["distance_m"]
    env.close()
