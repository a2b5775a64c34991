"""Configs: every shipped config loads, every family has a -small variant, errors name the field."""

from __future__ import annotations

import pytest

from pearl_robot.errors import ConfigError
from pearl_robot.pearl.config import (
    PEARLConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    save_config,
    shipped_configs,
)
from pearl_robot.tasks.registry import FAMILIES


def test_every_family_ships_a_config_and_a_small_variant():
    names = set(shipped_configs())
    for family in FAMILIES:
        assert family in names and f"{family}-small" in names
        assert load_config(family).family == family
        small = load_config(f"{family}-small")
        assert small.family == family and small.net_size <= 128 and small.meta_batch <= 8


def test_paper_hyperparameters():
    cheetah = load_config("cheetah-vel")
    assert (cheetah.meta_batch, cheetah.num_steps_prior, cheetah.num_extra_rl_steps_posterior) == (16, 400, 600)
    assert (cheetah.embedding_batch_size, cheetah.num_exp_traj_eval, cheetah.reward_scale) == (100, 2, 5.0)
    assert (cheetah.latent_size, cheetah.net_size, cheetah.batch_size, cheetah.tau, cheetah.lr) == (
        5,
        300,
        256,
        0.005,
        3e-4,
    )
    sparse = load_config("sparse-point-robot")
    assert sparse.sparse_rewards and sparse.gamma == 0.9 and sparse.kl_lambda == 1.0
    assert (sparse.num_steps_prior, sparse.num_steps_posterior, sparse.num_extra_rl_steps_posterior) == (100, 900, 0)
    assert load_config("ant-goal").kl_lambda == 1.0
    assert load_config("walker-rand-params").use_next_obs_in_context
    assert load_config("point-robot").reward_scale == 100.0


def test_unknown_fields_and_bad_types_are_refused():
    with pytest.raises(ConfigError, match="'num_iteratons': unknown field"):
        apply_overrides(PEARLConfig(), ["num_iteratons=3"])
    with pytest.raises(ConfigError, match="'meta_batch': expected int"):
        apply_overrides(PEARLConfig(), ["meta_batch=many"])
    with pytest.raises(ConfigError, match="'sparse_rewards': expected bool"):
        apply_overrides(PEARLConfig(), ["sparse_rewards=3"])
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides(PEARLConfig(), ["meta_batch"])
    with pytest.raises(ConfigError, match="'meta_batch': must be > 0"):
        apply_overrides(PEARLConfig(), ["meta_batch=0"])
    with pytest.raises(ConfigError, match="unknown field"):
        config_from_dict({"family": "point-robot", "discount": 0.9})
    with pytest.raises(ConfigError, match="no such shipped config"):
        load_config("no-such-family")


def test_overrides_parse_yaml_values(tmp_path):
    cfg = apply_overrides(
        PEARLConfig(),
        ["meta_batch=8", "lr=1e-3", "sparse_rewards=true", "max_path_length=null", "family_params={goal_radius: 0.3}",
         "family_params.num_train_tasks=7", "reward_scale=5"],
    )  # fmt: skip
    assert cfg.meta_batch == 8 and cfg.lr == 1e-3 and cfg.sparse_rewards and cfg.max_path_length is None
    assert cfg.family_params == {"goal_radius": 0.3, "num_train_tasks": 7}
    assert isinstance(cfg.reward_scale, float)
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


PAPER_FAMILIES = [
    "point-robot", "sparse-point-robot", "cheetah-vel", "cheetah-dir", "ant-dir", "ant-goal", "humanoid-dir",
    "walker-rand-params", "hopper-rand-params",
]  # fmt: skip
TERMINATING = {"ant-dir", "humanoid-dir", "walker-rand-params", "hopper-rand-params"}


@pytest.mark.parametrize("family", PAPER_FAMILIES)
def test_paper_configs_use_the_references_data_mix_and_evaluation_rule(family):
    for name in (family, f"{family}-small"):
        cfg = load_config(name)
        assert cfg.posterior_block_starts_from_prior, name
        assert cfg.eval_rule == ("steps" if family in TERMINATING else "trajectories"), name


def test_eval_rule_and_init_are_validated():
    assert PEARLConfig().eval_rule == "trajectories" and PEARLConfig().init == "fan_in"
    assert not PEARLConfig().posterior_block_starts_from_prior
    assert apply_overrides(PEARLConfig(), ["eval_rule=steps", "init=reference"]).init == "reference"
    with pytest.raises(ConfigError, match="'eval_rule': must be trajectories or steps"):
        apply_overrides(PEARLConfig(), ["eval_rule=episodes"])
    with pytest.raises(ConfigError, match="'init': must be fan_in or reference"):
        apply_overrides(PEARLConfig(), ["init=xavier"])
