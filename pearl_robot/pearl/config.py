"""The PEARL run configuration: one typed dataclass, the field names of the reference (PEARL.md).

A config is a flat YAML mapping of these fields. Shipped configs live in ``sim/configs/<name>.yaml``
(one per task family and a ``-small`` variant of each); ``load_config`` takes a path or such a name.
Unknown fields and ill-typed values are refused with a ConfigError naming the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pearl_robot.errors import ConfigError
from pearl_robot.paths import sim_dir


@dataclass
class PEARLConfig:
    # ---- what to learn -------------------------------------------------------------------------
    family: str = "point-robot"  # a task-family name (pearl_robot.tasks.registry)
    family_params: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the family
    seed: int = 0
    device: str = "auto"  # cpu | cuda | auto
    torch_threads: int = 0  # 0: torch's default; 1 when a control loop shares the CPU

    # ---- meta-training schedule (reference names) ---------------------------------------------
    num_iterations: int = 500
    meta_batch: int = 16  # tasks per gradient step
    num_train_steps_per_itr: int = 2000
    num_initial_steps: int = 2000  # per train task, iteration 0, z ~ prior
    num_tasks_sample: int = 5  # tasks collected for per iteration
    num_steps_prior: int = 400  # z ~ prior, both buffers
    num_steps_posterior: int = 0  # z ~ posterior, both buffers
    num_extra_rl_steps_posterior: int = 400  # z ~ posterior, RL buffer only
    update_post_train: int = 1  # re-infer the posterior every this many trajectories
    batch_size: int = 256  # RL transitions per task per gradient step
    embedding_batch_size: int = 64  # context transitions per task per gradient step
    max_path_length: int | None = None  # None: the family's own
    replay_buffer_size: int = 1_000_000  # per task and buffer (storage grows on demand)
    num_collect_envs: int = 4  # envs stepped in lockstep for independent trajectories (prior / extra blocks)

    # ---- networks -------------------------------------------------------------------------------
    latent_size: int = 5
    net_size: int = 300  # hidden width of policy, Q and V (3 hidden layers)
    encoder_net_size: int = 200  # hidden width of the context encoder (3 hidden layers)
    num_hidden_layers: int = 3
    use_information_bottleneck: bool = True  # False: deterministic encoder, no KL
    recurrent: bool = False  # GRU encoder over contiguous context instead of the product of Gaussians
    init: str = "fan_in"  # "fan_in": hidden +-1/sqrt(fan_in), last layers +-3e-3; "reference": rlkit's (docs/pearl.md)

    # ---- losses ---------------------------------------------------------------------------------
    reward_scale: float = 5.0
    kl_lambda: float = 0.1
    gamma: float = 0.99
    tau: float = 0.005
    lr: float = 3e-4
    policy_mean_reg_weight: float = 1e-3
    policy_std_reg_weight: float = 1e-3
    learned_temperature: bool = False  # True: SAC-v2's learned alpha instead of the paper's fixed 1 (docs/pearl.md)
    target_entropy: float | None = None  # the learned alpha's entropy target; None: -action_dim

    # ---- context options --------------------------------------------------------------------------
    use_next_obs_in_context: bool = False
    use_context: bool = True  # False: z fixed at 0, no encoder -- multi-task SAC without context (a baseline)
    sparse_rewards: bool = False  # context and reporting on info['sparse_reward'], critic on the dense reward
    posterior_block_starts_from_prior: bool = False  # True: the reference's quirk (see docs/pearl.md)

    # ---- evaluation (the paper's protocol) --------------------------------------------------------
    num_exp_traj_eval: int = 1  # trajectories with z ~ prior before posterior sampling
    num_steps_per_eval: int = 600  # per test task and run; how it sets the trajectory count: eval_rule
    # "trajectories": num_steps_per_eval // max_path_length trajectories per task and run;
    # "steps": the reference's: whole trajectories until num_steps_per_eval steps, the last one scored
    eval_rule: str = "trajectories"
    num_evals: int = 1  # independent evaluation runs per task
    num_eval_train_tasks: int | None = None  # train tasks evaluated too; None: as many as test tasks
    eval_every: int = 1  # iterations; the last iteration is always evaluated

    # ---- run ----------------------------------------------------------------------------------------
    checkpoint_every: int = 10  # iterations; the last iteration is always checkpointed
    tensorboard: bool = True

    def validate(self, source: object = "<config>") -> PEARLConfig:
        positive = [
            "num_iterations", "meta_batch", "num_train_steps_per_itr", "batch_size", "embedding_batch_size",
            "latent_size", "net_size", "encoder_net_size", "num_hidden_layers", "update_post_train",
            "num_steps_per_eval", "num_evals", "eval_every", "checkpoint_every", "replay_buffer_size",
            "num_collect_envs",
        ]  # fmt: skip
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(source, name, f"must be > 0, got {getattr(self, name)}")
        non_negative = [
            "num_initial_steps", "num_tasks_sample", "num_steps_prior", "num_steps_posterior",
            "num_extra_rl_steps_posterior", "num_exp_traj_eval", "torch_threads", "kl_lambda", "reward_scale",
        ]  # fmt: skip
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(source, name, f"must be >= 0, got {getattr(self, name)}")
        if self.max_path_length is not None and self.max_path_length <= 0:
            raise ConfigError(source, "max_path_length", "must be > 0 or null (the family's own)")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(source, "gamma", f"must be in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(source, "tau", f"must be in (0, 1], got {self.tau}")
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise ConfigError(source, "device", f"must be cpu, cuda, cuda:N or auto, got '{self.device}'")
        if self.recurrent and not self.use_information_bottleneck:
            raise ConfigError(source, "recurrent", "the recurrent encoder is probabilistic only")
        if self.init not in ("fan_in", "reference"):
            raise ConfigError(source, "init", f"must be fan_in or reference, got '{self.init}'")
        if self.eval_rule not in ("trajectories", "steps"):
            raise ConfigError(source, "eval_rule", f"must be trajectories or steps, got '{self.eval_rule}'")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(PEARLConfig)}
_HINTS = typing.get_type_hints(PEARLConfig)


def _check_type(name: str, value: Any, source: object) -> Any:
    """``value`` converted to the field's type, or ConfigError."""
    hint = _HINTS[name]
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    optional = is_union and type(None) in typing.get_args(hint)
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if is_union else hint
    if value is None:
        if optional:
            return None
        raise ConfigError(source, name, "must not be null")
    origin = typing.get_origin(base) or base
    if origin is bool:
        if isinstance(value, bool):
            return value
    elif origin is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif origin is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif origin is str and isinstance(value, str):
        return value
    elif origin is dict and isinstance(value, dict):
        return dict(value)
    type_name = getattr(origin, "__name__", str(origin))
    raise ConfigError(source, name, f"expected {type_name}{' or null' if optional else ''}, got {value!r}")


def _unknown(key: str) -> str:
    close = difflib.get_close_matches(key, FIELDS, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown field ({hint}known: {', '.join(FIELDS)})"


def config_from_dict(data: dict[str, Any], source: object = "<config>") -> PEARLConfig:
    if not isinstance(data, dict):
        raise ConfigError(source, "<top>", "a config is a mapping of field: value")
    values = {}
    for key, value in data.items():
        if key not in FIELDS:
            raise ConfigError(source, str(key), _unknown(str(key)))
        values[key] = _check_type(key, value, source)
    return PEARLConfig(**values).validate(source)


def configs_dir() -> Path:
    return sim_dir() / "configs"


def shipped_configs() -> list[str]:
    """Names of the shipped configs (``<family>`` and ``<family>-small``), sorted."""
    return sorted(p.stem for p in configs_dir().glob("*.yaml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise ConfigError(path, "<file>", "no such config file")
        return path
    shipped = configs_dir() / f"{name_or_path}.yaml"
    if not shipped.exists():
        raise ConfigError(name_or_path, "<name>", f"no such shipped config (known: {', '.join(shipped_configs())})")
    return shipped


def load_config(name_or_path: str | Path, overrides: list[str] | None = None) -> PEARLConfig:
    """A shipped config name or a YAML path, with ``key=value`` overrides applied."""
    path = resolve_config_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(path, "<yaml>", f"not valid YAML: {exc}") from None
    cfg = config_from_dict(data, path)
    return apply_overrides(cfg, overrides or [])


def parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` with the value parsed as YAML (``meta_batch=8``, ``family_params={goal_radius: 0.3}``)."""
    if "=" not in item:
        raise ConfigError("--set", item, "expected key=value")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError("--set", key, f"value is not valid YAML: {exc}") from None
    return key, value


def apply_overrides(cfg: PEARLConfig, overrides: list[str]) -> PEARLConfig:
    """``cfg`` with ``key=value`` items applied; ``family_params.KEY=value`` sets one family parameter."""
    data = cfg.to_dict()
    for item in overrides:
        key, value = parse_override(item)
        if key.startswith("family_params."):
            data["family_params"] = {**data["family_params"], key.split(".", 1)[1]: value}
            continue
        if key not in FIELDS:
            raise ConfigError("--set", key, _unknown(key))
        data[key] = value
    return config_from_dict(data, "--set")


def save_config(cfg: PEARLConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
