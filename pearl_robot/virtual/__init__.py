"""Virtual hardware for hardware-in-the-loop tests: a Dynamixel servo bus on a pseudo-terminal that
answers real Protocol 2.0 packets, its physics from the MuJoCo arm (``VirtualServoBus.from_spec``)."""

from pearl_robot.virtual.bus import VirtualServoBus
from pearl_robot.virtual.faults import BusFaults, parse_faults
from pearl_robot.virtual.plant import Hand, IdealPlant, MujocoPlant
from pearl_robot.virtual.servo import VirtualServo

__all__ = ["BusFaults", "Hand", "IdealPlant", "MujocoPlant", "VirtualServo", "VirtualServoBus", "parse_faults"]
