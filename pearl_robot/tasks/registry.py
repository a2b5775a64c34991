"""``make_family``: the one place a task-family name becomes a TaskFamily.

Families are imported lazily (``"module:Class"``), so the point robots load with numpy alone and
the MuJoCo locomotion families import gymnasium's MuJoCo envs only when one is built.
"""

from __future__ import annotations

import importlib
from typing import Any

from pearl_robot.errors import ConfigError
from pearl_robot.tasks.base import TaskFamily

# family name -> "module:Class"; each class takes its parameters as keyword arguments.
FAMILIES: dict[str, str] = {
    "point-robot": "pearl_robot.tasks.point:PointRobotFamily",
    "sparse-point-robot": "pearl_robot.tasks.point:SparsePointRobotFamily",
    "cheetah-vel": "pearl_robot.tasks.locomotion:CheetahVelFamily",
    "cheetah-dir": "pearl_robot.tasks.locomotion:CheetahDirFamily",
    "ant-dir": "pearl_robot.tasks.locomotion:AntDirFamily",
    "ant-goal": "pearl_robot.tasks.locomotion:AntGoalFamily",
    "humanoid-dir": "pearl_robot.tasks.locomotion:HumanoidDirFamily",
    "walker-rand-params": "pearl_robot.tasks.rand_params:WalkerRandParamsFamily",
    "hopper-rand-params": "pearl_robot.tasks.rand_params:HopperRandParamsFamily",
    "arm-reach": "pearl_robot.tasks.arm:ArmReachFamily",
    "arm-dynamics": "pearl_robot.tasks.arm:ArmDynamicsFamily",
    "arm-fleet": "pearl_robot.tasks.arm:ArmFleetFamily",
}


def family_class(name: str) -> type[TaskFamily]:
    if name not in FAMILIES:
        raise ConfigError("<task family>", "env", f"unknown task family '{name}' (known: {', '.join(FAMILIES)})")
    module_name, class_name = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def make_family(name: str, **params: Any) -> TaskFamily:
    """The task family ``name`` built with ``params`` (e.g. ``num_train_tasks=10``, ``hardware=...``).

    An unknown name or parameter raises ConfigError naming what is accepted.
    """
    cls = family_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError("<task family>", name, f"bad parameters {sorted(params)}: {exc}") from None
