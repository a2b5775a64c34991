"""The arm-fleet family and what its policies act through: controller actions, the tolerance reward, the
current limit and the oracle's observation."""

import math

import numpy as np
import pytest

from pearl_robot.errors import ConfigError
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.tasks.arm import dynamics_features
from pearl_robot.tasks.arm_control import ControllerActions, tolerance_reward
from pearl_robot.tasks.registry import make_family


def test_tolerance_reward_is_dm_control_gaussian_tolerance_minus_one():
    assert tolerance_reward(0.0, 0.01, 0.05) == 0.0
    assert tolerance_reward(0.01, 0.01, 0.05) == 0.0
    assert tolerance_reward(0.06, 0.01, 0.05) == pytest.approx(0.1 - 1.0)
    assert -1.0 <= tolerance_reward(0.5, 0.01, 0.05) < -0.999


def test_controller_action_maps_to_gain_and_blend():
    assert ControllerActions.gain(-1) == pytest.approx(0.05)
    assert ControllerActions.gain(1) == pytest.approx(1.5)
    assert ControllerActions.gain(0) == pytest.approx(math.sqrt(0.05 * 1.5))
    assert ControllerActions.blend(-1) == 0.0 and ControllerActions.blend(0) == 0.5


def test_fleet_tasks_are_remote_or_loaded_and_reproducible():
    fam = make_family("arm-fleet")
    train, test = fam.split(3)
    again, _ = fam.split(3)
    assert [t.params for t in train] == [t.params for t in again]
    kinds = {t.params["extra"]["kind"] for t in train + test}
    assert kinds == {"remote", "loaded"}
    for task in train:
        d = ArmDynamics.from_dict(task.params)
        if task.params["extra"]["kind"] == "remote":
            assert 0.3 <= d.latency_s <= 0.6 and d.current_limit_scale == 1.0
        else:
            assert d.latency_s <= 0.05 and 0.4 <= d.current_limit_scale <= 0.8 and d.payload_mass_kg >= 0.2


def test_controller_env_steps_and_holds_on_bad_actions():
    fam = make_family("arm-fleet", num_train_tasks=2, num_test_tasks=1)
    env = fam.make_env(seed=0)
    try:
        assert env.action_space.shape == (6,)
        fam.apply(env, fam.split(0)[0][0])
        env.reset(seed=0)
        _, reward, _, _, info = env.step(np.zeros(6))
        assert info["controller_gain"] == pytest.approx(math.sqrt(0.05 * 1.5))
        assert info["controller_blend"] == 0.5
        assert -1.0 <= reward <= 0.0
        held = env.last_state.position.copy()
        for bad in (np.full(6, np.nan), np.zeros(4)):
            _, _, _, _, info = env.step(bad)
            assert "controller_gain" not in info
            np.testing.assert_allclose(info["requested_target"], env._target, atol=1e-9)
        assert np.all(np.isfinite(env.last_state.position)) and held.shape == env.last_state.position.shape
    finally:
        env.close()


def test_residual_scale_zero_leaves_gain_and_blend():
    env = make_family("arm-fleet", residual_scale=0.0).make_env(seed=0)
    try:
        assert env.action_space.shape == (2,)
        env.step(np.array([0.5, -1.0]))
    finally:
        env.close()


def test_current_limit_scales_the_actuator_force_range():
    fam = make_family("arm-fleet")
    env = fam.make_env(seed=0)
    try:
        model = env.robot.unwrapped().model
        nominal = model.actuator_forcerange.copy()
        env.set_dynamics(ArmDynamics(current_limit_scale=0.5))
        env.reset(seed=0)
        actuators = env.robot.unwrapped()._act
        np.testing.assert_allclose(model.actuator_forcerange[actuators], 0.5 * nominal[actuators])
    finally:
        env.close()


def test_oracle_observes_the_task_parameters():
    fam = make_family("arm-fleet", observe_dynamics=True)
    plain = make_family("arm-fleet").make_env(seed=0)
    env = fam.make_env(seed=0)
    try:
        task = fam.split(0)[0][0]
        fam.apply(env, task)
        obs, _ = env.reset(seed=0)
        features = dynamics_features(ArmDynamics.from_dict(task.params))
        assert obs.shape[0] == plain.observation_space.shape[0] + len(features)
        np.testing.assert_allclose(obs[-len(features) :], features, rtol=1e-5)
        assert env.observation_space.contains(obs)
    finally:
        env.close()
        plain.close()


@pytest.mark.parametrize("params", [{"action_mode": "joints"}, {"reward_mode": "sparse"}, {"remote_share": 2}])
def test_bad_family_params_are_one_line_errors(params):
    with pytest.raises(ConfigError):
        make_family("arm-fleet", **params)


def test_a_bad_range_names_the_family_it_belongs_to():
    with pytest.raises(ConfigError, match=r"arm-fleet\.loaded_gain"):
        make_family("arm-fleet", loaded_gain=[2, 1])
    with pytest.raises(ConfigError, match=r"arm-fleet\.damping_range"):
        make_family("arm-fleet", damping_range=[0, 1])
    with pytest.raises(ConfigError, match=r"arm-dynamics\.gain_range"):
        make_family("arm-dynamics", gain_range=[2, 1])
