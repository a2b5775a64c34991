import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pearl_robot.errors import PearlRobotError
from pearl_robot.tasks.base import Task
from pearl_robot.tasks.registry import FAMILIES, make_family


def test_unknown_family_lists_known_names():
    with pytest.raises(PearlRobotError) as err:
        make_family("no-such-family")
    assert "point-robot" in str(err.value) and "cheetah-vel" in str(err.value)


def test_bad_parameter_is_a_config_error():
    with pytest.raises(PearlRobotError):
        make_family("point-robot", no_such_option=3)


def test_every_registered_family_resolves():
    from pearl_robot.tasks.registry import family_class

    for name in FAMILIES:
        assert family_class(name).name == name


def test_counts_can_be_overridden():
    fam = make_family("point-robot", num_train_tasks=5, num_test_tasks=2)
    train, test = fam.split(0)
    assert (len(train), len(test)) == (5, 2)


@pytest.mark.parametrize("name", ["point-robot", "sparse-point-robot"])
def test_point_family_basics(name):
    fam = make_family(name)
    assert (fam.num_train_tasks, fam.num_test_tasks, fam.max_path_length) == (80, 20, 20)
    env = fam.make_env(seed=0)
    assert env.observation_space.shape == (2,) and env.action_space.shape == (2,)
    assert env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    check_env(env, skip_render_check=True)
    train, test = fam.split(3)
    train2, test2 = fam.split(3)
    assert train == train2 and test == test2
    assert [t.index for t in train + test] == list(range(100))
    goals = {tuple(t.params["goal"]) for t in train}
    assert goals.isdisjoint(tuple(t.params["goal"]) for t in test)
    assert fam.split(4)[0] != train


def test_point_robot_goals_and_reward():
    fam = make_family("point-robot")
    train, _ = fam.split(0)
    goals = np.array([t.params["goal"] for t in train])
    assert goals.min() >= -1 and goals.max() <= 1
    env = fam.make_env(seed=0)
    fam.apply(env, Task("point-robot", 0, {"goal": [0.5, -0.5]}))
    obs, _ = env.reset()
    obs2, reward, terminated, truncated, info = env.step(np.array([1.0, -5.0]))  # clipped to [0.1, -0.1]
    np.testing.assert_allclose(obs2 - obs, [0.1, -0.1], atol=1e-6)
    assert reward == pytest.approx(-np.linalg.norm(obs2.astype(float) - [0.5, -0.5]), abs=1e-6)
    assert not terminated and not truncated and "sparse_reward" not in info
    for _ in range(19):
        *_, truncated, _ = env.step(np.zeros(2))
    assert truncated


def test_sparse_point_robot_goals_and_sparse_reward():
    fam = make_family("sparse-point-robot")
    train, test = fam.split(0)
    goals = np.array([t.params["goal"] for t in train + test])
    np.testing.assert_allclose(np.linalg.norm(goals, axis=1), 1.0)
    assert goals[:, 1].min() >= 0
    env = fam.make_env(seed=0)
    fam.apply(env, Task(fam.name, 0, {"goal": [0.0, 1.0]}))
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, [0, 0])
    _, reward, _, _, info = env.step(np.array([0.0, 1.0]))
    assert reward == pytest.approx(-0.9) and info["sparse_reward"] == 0.0
    for _ in range(8):
        _, reward, _, _, info = env.step(np.array([0.0, 1.0]))
    assert reward == pytest.approx(-0.1)
    assert info["sparse_reward"] == pytest.approx(0.9)  # 1 - distance inside the radius
    assert math.isclose(info["distance"], -reward)


def test_env_speed_helper():
    from pearl_robot.tasks.speed import env_steps_per_second

    result = env_steps_per_second("point-robot", steps=200)
    assert result["family"] == "point-robot" and result["steps"] == 200 and result["resets"] == 10
    assert result["steps_per_s"] > 1000


def test_importing_the_tasks_package_needs_no_mujoco_envs():
    import subprocess
    import sys

    code = (
        "import sys; import pearl_robot.tasks; from pearl_robot.tasks import make_family; "
        "make_family('point-robot').make_env(0); "
        "assert not any(m.startswith('gymnasium.envs.mujoco') for m in sys.modules), 'mujoco envs imported'; "
        "assert 'mujoco' not in sys.modules, 'mujoco imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
