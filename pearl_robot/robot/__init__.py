"""The robot layer: one interface (Robot), its backends, and the wrappers that are Robots too."""

from pearl_robot.robot.base import Fault, Lifecycle, Robot, RobotState
from pearl_robot.robot.registry import BACKENDS, open_robot
from pearl_robot.robot.spec import JointSpec, RobotSpec, load_spec

__all__ = ["BACKENDS", "Fault", "JointSpec", "Lifecycle", "Robot", "RobotSpec", "RobotState", "load_spec", "open_robot"]
