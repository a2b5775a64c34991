"""The arm families on the SO-101 (``family_params.hardware: so101``): they build, reset and step with finite
rewards, their reach goals lie in the arm's workspace and a scripted controller reaches them, and the shipped
so101-fleet-small config trains."""

import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pearl_robot.control.scripted import ScriptedReacher
from pearl_robot.errors import ConfigError
from pearl_robot.pearl.config import load_config
from pearl_robot.robot.spec import load_spec
from pearl_robot.tasks.reach import goal_region, sample_reachable_goals
from pearl_robot.tasks.registry import make_family

ARM_JOINTS = 5  # shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll; the gripper holds


@pytest.fixture(scope="module")
def spec():
    return load_spec("so101")


@pytest.mark.parametrize(
    "name, observations, actions",
    [
        ("arm-reach", 3 * ARM_JOINTS + 3, ARM_JOINTS),
        ("arm-dynamics", 3 * ARM_JOINTS + 9, ARM_JOINTS),
        ("arm-fleet", 3 * ARM_JOINTS + 9, 2 + ARM_JOINTS),
    ],
)
def test_each_family_resets_and_steps_on_the_so101(name, observations, actions):
    family = make_family(name, hardware="so101", num_train_tasks=3, num_test_tasks=1)
    assert family.spec.robot_id == "so101"
    env = family.make_env(seed=0)
    assert env.observation_space.shape == (observations,) and env.action_space.shape == (actions,)
    check_env(env, skip_render_check=True)
    rng = np.random.default_rng(0)
    for task in family.split(0)[0]:
        family.apply(env, task)
        obs, _ = env.reset(seed=1)
        for _ in range(10):
            obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, actions))
            assert np.isfinite(reward) and np.all(np.isfinite(obs)) and not terminated
            assert env.observation_space.contains(obs)
        assert np.all(np.isfinite(env.last_state.position)) and 0 <= info["distance_m"] < 1.0
        assert np.all(env.last_state.position >= env.robot_spec.position_min - 0.05)
        assert np.all(env.last_state.position <= env.robot_spec.position_max + 0.05)
    env.close()


def test_goals_lie_in_the_workspace_of_the_hardware_file(spec):
    region = goal_region(spec)
    assert region == {"min_radius_m": 0.10, "max_height_m": 0.35}
    goals = sample_reachable_goals(spec, 300, np.random.default_rng(0))
    radius = np.hypot(goals[:, 0], goals[:, 1])
    assert np.all(radius >= 0.10) and np.all((goals[:, 2] >= 0.05) & (goals[:, 2] <= 0.35))
    # out to most of the arm's reach (the shoulder-lift axis 69 mm in front of the base, the stretched arm 0.413 m)
    assert 0.4 < radius.max() < 0.069 + 0.413
    assert np.mean(goals[:, 0] > 0) > 0.8 and goals[:, 1].min() < -0.2 < 0.2 < goals[:, 1].max()


def test_a_scripted_controller_reaches_the_goals(spec):
    """The sampled goals fit the SO-101: the damped-least-squares reacher brings the nominal arm there."""
    family = make_family("arm-dynamics", hardware="so101", goal_pool_size=6)
    env = family.make_env(seed=0)
    reacher = ScriptedReacher(env.kinematics, env.arm, env.action_scale_rad, gain=0.5)
    finals = []
    for seed in range(6):
        env.reset(seed=seed)
        for _ in range(80):
            _, _, _, _, info = env.step(reacher.act(env.last_state.position, env.task.goal))
        finals.append(info["distance_m"])
    env.close()
    assert len({tuple(g) for g in family.goal_pool()}) == 6
    assert max(finals) < 0.005, finals


def test_a_workspace_that_excludes_everything_is_a_config_error_not_a_hang(spec):
    narrow = spec.__class__(**{**spec.__dict__, "extra": {"workspace": {"min_radius_m": 2.0}}})
    with pytest.raises(ConfigError, match="workspace.*too narrow"):
        sample_reachable_goals(narrow, 2, np.random.default_rng(0))
    for bad, where in (({"max_reach_m": 1}, "workspace.max_reach_m"), ({"min_radius_m": "far"}, "min_radius_m"),
                       ([0.1], "workspace")):  # fmt: skip
        wrong = spec.__class__(**{**spec.__dict__, "extra": {"workspace": bad}})
        with pytest.raises(ConfigError, match=where):
            goal_region(wrong)


def test_the_so101_fleet_is_scaled_to_its_servos():
    cfg = load_config("so101-fleet-small")
    assert cfg.family == "arm-fleet" and cfg.family_params["hardware"] == "so101"
    family = make_family(cfg.family, **cfg.family_params)
    tasks = family.sample_tasks(200, np.random.default_rng(0))
    payload = {kind: [t.params["payload_mass_kg"] for t in tasks if t.params["extra"]["kind"] == kind]
               for kind in ("remote", "loaded")}  # fmt: skip
    assert min(payload["remote"]) >= 0 and max(payload["remote"]) <= 0.1
    assert min(payload["loaded"]) >= 0.05 and max(payload["loaded"]) <= 0.15
    limits = [np.mean(t.params["current_limit_scale"]) for t in tasks if t.params["extra"]["kind"] == "loaded"]
    assert min(limits) >= 0.6 and max(limits) <= 1.0 and not math.isclose(min(limits), max(limits))


def test_tuning_per_arm_pays_on_the_so101_fleet():
    """As on the OpenManipulator-X's fleet (tests/tasks/test_task_inference.py): the scripted controller tuned
    per arm beats the best single tuning by a quarter of the way from that tuning to random actions."""
    from pearl_robot.bench.adapt_baselines import Grid, grid_returns, random_returns

    cfg = load_config("so101-fleet-small")
    family = make_family(cfg.family, **{**cfg.family_params, "action_mode": "joint"})
    tasks = family.split(0)[0][:8]
    grid = Grid()
    returns = grid_returns(family, tasks, grid)
    random = random_returns(family, tasks, grid)
    tuned, single = returns.max(axis=1).mean(), returns.mean(axis=0).max()
    value = (tuned - single) / (single - np.mean(random))
    print(f"so101 fleet: tuned {tuned:.2f}, best single {single:.2f}, random {np.mean(random):.2f}, value {value:.3f}")
    assert value >= 0.25
    blends = {t.params["extra"]["kind"]: [] for t in tasks}
    for task, k in zip(tasks, returns.argmax(axis=1)):
        blends[task.params["extra"]["kind"]].append(grid.points()[k][1])
    assert min(blends["remote"]) > max(blends["loaded"])  # remote arms trust their commands, loaded ones the sensors
