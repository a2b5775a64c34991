"""Gymnasium environments over the Robot interface."""

from pearl_robot.envs.robot_env import RobotEnv

__all__ = ["RobotEnv"]
