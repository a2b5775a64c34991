"""Timing: the fixed-rate control loop."""

from pearl_robot.control.loop import LoopStats, RateLoop

__all__ = ["LoopStats", "RateLoop"]
