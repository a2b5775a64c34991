import math
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pearl_robot.tasks.base import Task
from pearl_robot.tasks.registry import make_family

MUJOCO = {
    # name: (train, test, obs dim, action dim)
    "cheetah-vel": (100, 30, 17, 6),
    "cheetah-dir": (2, 2, 17, 6),
    "ant-dir": (2, 2, 27, 8),
    "ant-goal": (150, 30, 107, 8),
    "humanoid-dir": (100, 30, 348, 17),
    "walker-rand-params": (40, 10, 17, 6),
    "hopper-rand-params": (40, 10, 11, 3),
}


def _check_env(env):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")  # gymnasium's MuJoCo envs use unbounded boxes
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("name", list(MUJOCO))
def test_family_builds_with_paper_counts_and_spaces(name):
    n_train, n_test, obs_dim, act_dim = MUJOCO[name]
    fam = make_family(name)
    assert (fam.num_train_tasks, fam.num_test_tasks, fam.max_path_length) == (n_train, n_test, 200)
    env = fam.make_env(seed=0)
    assert env.observation_space.shape == (obs_dim,)
    assert env.action_space.shape == (act_dim,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    _check_env(env)
    train, test = fam.split(0)
    assert (len(train), len(test)) == (n_train, n_test)
    assert fam.split(0) == (train, test)
    assert [t.index for t in train + test] == list(range(n_train + n_test))
    fam.apply(env, test[0])
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize("name", ["cheetah-vel", "ant-goal", "humanoid-dir", "walker-rand-params"])
def test_continuous_families_split_disjoint(name):
    train, test = make_family(name).split(7)
    train_params = {repr(t.params) for t in train}
    assert train_params.isdisjoint(repr(t.params) for t in test)
    assert make_family(name).split(8)[0] != train


def test_task_distributions():
    vel = [t.params["velocity"] for t in sum(make_family("cheetah-vel").split(0), [])]
    assert min(vel) >= 0 and max(vel) <= 3 and max(vel) > 2.5
    goals = np.array([t.params["goal"] for t in sum(make_family("ant-goal").split(0), [])])
    radius = np.linalg.norm(goals, axis=1)
    assert radius.max() <= 3 and radius.max() > 2.7 and np.median(radius) > 1.5  # uniform on the disc
    angles = [t.params["angle"] for t in sum(make_family("humanoid-dir").split(0), [])]
    assert min(angles) >= 0 and max(angles) <= 2 * math.pi and max(angles) > 5.5
    # the dir families: the paper's forward / backward, the same two in train and test
    for name, key, values in [("cheetah-dir", "direction", {1.0, -1.0}), ("ant-dir", "angle", {0.0, math.pi})]:
        train, test = make_family(name).split(0)
        assert {t.params[key] for t in train} == values == {t.params[key] for t in test}


def _fly(env, vx):
    """Zero gravity, lifted off the floor, moving at vx along x: no contact, no force on the root."""
    env.reset(seed=0)
    env.unwrapped.model.opt.gravity[:] = 0
    qpos, qvel = env.unwrapped.init_qpos.copy(), np.zeros_like(env.unwrapped.data.qvel)  # joints at rest
    qpos[1] += 1.0  # rootz of the cheetah
    qvel[0] = vx
    env.unwrapped.set_state(qpos, qvel)


def test_cheetah_vel_reward_at_a_known_velocity():
    fam = make_family("cheetah-vel")
    env = fam.make_env(seed=0)
    fam.apply(env, Task(fam.name, 0, {"velocity": 2.0}))
    _fly(env, 2.0)
    _, reward, terminated, truncated, info = env.step(np.zeros(6))
    assert info["x_velocity"] == pytest.approx(2.0, abs=1e-6)
    assert reward == pytest.approx(0.0, abs=1e-6)
    action = np.full(6, 0.5)
    _, reward, _, _, info = env.step(action)
    assert reward == pytest.approx(-abs(info["x_velocity"] - 2.0) - 0.05 * 6 * 0.25)
    fam.apply(env, Task(fam.name, 1, {"velocity": 0.5}))
    _fly(env, 2.0)
    _, reward, *_ = env.step(np.zeros(6))
    assert reward == pytest.approx(-1.5, abs=1e-6)
    assert not terminated and not truncated


def test_cheetah_dir_reward_sign():
    fam = make_family("cheetah-dir")
    env = fam.make_env(seed=0)
    rewards = {}
    for direction in (1.0, -1.0):
        fam.apply(env, Task(fam.name, 0, {"direction": direction}))
        _fly(env, 1.5)
        _, rewards[direction], *_ = env.step(np.full(6, 0.2))
    ctrl = 0.05 * 6 * 0.04
    assert rewards[1.0] + ctrl == pytest.approx(-(rewards[-1.0] + ctrl), rel=1e-6)
    assert rewards[1.0] > 1.0


@pytest.mark.parametrize("name, key, values", [("ant-dir", "angle", (0.0, math.pi))])
def test_ant_dir_forward_term_flips_with_the_direction(name, key, values):
    fam = make_family(name)
    env = fam.make_env(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (10, 8))
    forward = []
    for value in values:
        fam.apply(env, Task(name, 0, {key: value}))
        env.reset(seed=3)
        forward.append([env.step(a)[4]["reward_forward"] for a in actions])
    np.testing.assert_allclose(forward[0], -np.array(forward[1]), atol=1e-9)


def test_ant_goal_reward_is_minus_l1_distance_and_costs():
    fam = make_family("ant-goal")
    env = fam.make_env(seed=0)
    fam.apply(env, Task(fam.name, 0, {"goal": [2.0, -1.0]}))
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(np.zeros(8))
    xy = env.unwrapped.data.qpos[:2]
    assert info["goal_distance_l1"] == pytest.approx(abs(xy[0] - 2) + abs(xy[1] + 1))
    assert reward == pytest.approx(-info["goal_distance_l1"] + info["reward_contact"])
    np.testing.assert_allclose(obs[:2], xy)  # ant-goal observes its position
    assert not terminated


def test_humanoid_actions_scale_to_the_model_controls():
    fam = make_family("humanoid-dir")
    env = fam.make_env(seed=0)
    env.reset(seed=0)
    env.step(np.ones(17))
    np.testing.assert_allclose(env.unwrapped.data.ctrl, env.unwrapped.model.actuator_ctrlrange[:, 1])
    fam.apply(env, Task(fam.name, 0, {"angle": math.pi / 2}))
    env.reset(seed=0)
    np.testing.assert_allclose(env.unwrapped.direction, [0, 1], atol=1e-12)


def test_paths_truncate_at_max_path_length():
    fam = make_family("cheetah-vel", max_path_length=5)
    env = fam.make_env(seed=0)
    env.reset(seed=0)
    flags = [env.step(np.zeros(6))[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]


@pytest.mark.parametrize("name", ["walker-rand-params", "hopper-rand-params"])
def test_rand_params_change_the_model_relative_to_nominal(name):
    fam = make_family(name)
    env = fam.make_env(seed=0)
    model = env.unwrapped.model
    nominal = {k: v.copy() for k, v in env.unwrapped.nominal.items()}
    train, _ = fam.split(0)
    for task in train[:2]:  # applied twice: relative to nominal, never compounding
        before = model.body_mass.copy()
        fam.apply(env, task)
        np.testing.assert_array_equal(model.body_mass, before)  # not before the next reset
        env.reset(seed=0)
        for key in ("body_mass", "body_inertia", "dof_damping", "geom_friction"):
            np.testing.assert_allclose(getattr(model, key), nominal[key] * np.array(task.params[key]))
    exps = np.log(np.array(train[0].params["body_mass"])) / np.log(1.5)
    assert np.all(np.abs(exps) <= 3)
    damping = np.array([t.params["dof_damping"] for t in train])
    assert np.all(np.abs(np.log(damping) / np.log(1.3)) <= 3)
    # behaviour changes: the same actions give a different trajectory under another task
    actions = np.random.default_rng(0).uniform(-1, 1, (20, env.action_space.shape[0]))
    finals = []
    for task in train[:2]:
        fam.apply(env, task)
        env.reset(seed=0)
        for a in actions:
            obs = env.step(a)[0]
        finals.append(obs)
    assert np.abs(finals[0] - finals[1]).max() > 1e-3


def test_cheetah_is_gymnasiums_half_cheetah_bit_for_bit(tmp_path, monkeypatch):
    """Our cheetah compiles half_cheetah.xml without the deprecated settotalmass and rescales after
    compiling; the physics must be gymnasium's exactly."""
    from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

    monkeypatch.chdir(tmp_path)  # MuJoCo writes its deprecation warning to MUJOCO_LOG.TXT in the cwd
    reference = HalfCheetahEnv()
    env = make_family("cheetah-dir").make_env(seed=0)
    np.testing.assert_array_equal(env.unwrapped.model.body_mass, reference.model.body_mass)
    np.testing.assert_array_equal(env.unwrapped.model.body_inertia, reference.model.body_inertia)
    obs, _ = env.reset(seed=3)
    ref_obs, _ = reference.reset(seed=3)
    np.testing.assert_array_equal(obs, ref_obs)
    for action in np.random.default_rng(0).uniform(-1, 1, (30, 6)):
        obs, reward, *_ = env.step(action)
        ref_obs, *_, info = reference.step(action)
        assert reward == pytest.approx(info["x_velocity"] - 0.05 * np.sum(action**2))
    np.testing.assert_array_equal(obs, ref_obs)


@pytest.mark.parametrize(("name", "frame_skip"), [("walker-rand-params", 5), ("hopper-rand-params", 4)])
def test_rand_params_run_at_the_references_timestep_and_frame_skip(name, frame_skip):
    """rand_param_envs' walker2d.xml / hopper.xml use timestep 0.004 (gymnasium's: 0.002); the walker steps
    5 frames (dt 0.02 s), the hopper 4 (dt 0.016 s). The velocity reward divides by that dt."""
    env = make_family(name).make_env(seed=0)
    model = env.unwrapped.model
    assert model.opt.timestep == 0.004 and env.unwrapped.frame_skip == frame_skip
    assert env.unwrapped.dt == pytest.approx(0.004 * frame_skip)
    x_before = env.unwrapped.data.qpos[0]
    _, _, _, _, info = env.step(np.full(env.action_space.shape, 0.5))
    velocity = (env.unwrapped.data.qpos[0] - x_before) / (0.004 * frame_skip)
    assert info["x_velocity"] == pytest.approx(velocity)


def test_walker_feet_friction_is_the_references():
    """The reference's walker2d.xml: right foot 0.9, left foot 1.9 (gymnasium's walker2d_v5.xml: 1.9 / 1.9);
    the task multipliers apply to those nominal values."""
    env = make_family("walker-rand-params").make_env(seed=0)
    model = env.unwrapped.model
    assert model.geom("foot_geom").friction[0] == pytest.approx(0.9)
    assert model.geom("foot_left_geom").friction[0] == pytest.approx(1.9)
    assert env.unwrapped.nominal["geom_friction"][model.geom("foot_geom").id, 0] == pytest.approx(0.9)
