"""pearl-robot: sim-to-real meta-reinforcement learning with PEARL on robot arms."""

from pearl_robot.robot import Robot, RobotState, load_spec, open_robot

__all__ = ["Robot", "RobotState", "load_spec", "open_robot"]
__version__ = "0.1.0"
