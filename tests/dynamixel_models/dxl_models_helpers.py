"""Helpers of the Dynamixel model tests (a module of its own: conftest names clash across folders)."""

import dataclasses

from pearl_robot.dynamixel.control_table import ControlTable, control_table
from pearl_robot.robot.spec import RobotSpec


def spec_tables(spec: RobotSpec) -> list[ControlTable]:
    return [control_table(j.model) for j in spec.joints]


def with_models(spec: RobotSpec, models: dict[str, str]) -> RobotSpec:
    """``spec`` with some joints' models replaced (joint name -> model), as a wrong hardware file has them."""
    joints = tuple(dataclasses.replace(j, model=models.get(j.name, j.model)) for j in spec.joints)
    return dataclasses.replace(spec, joints=joints)
