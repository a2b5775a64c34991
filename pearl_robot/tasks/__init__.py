"""Tasks and task families: ``make_family(name, **params)`` builds one (see ``registry.FAMILIES``)."""

from pearl_robot.tasks.base import Task, TaskFamily
from pearl_robot.tasks.registry import FAMILIES, make_family

__all__ = ["FAMILIES", "Task", "TaskFamily", "make_family"]
