"""Virtual hardware for hardware-in-the-loop tests: a Dynamixel servo bus on a pseudo-terminal that
answers real Protocol 2.0 packets, its physics from the MuJoCo arm (``VirtualServoBus.from_spec``),
optionally behind a stock USB adapter's latency timer (``UsbAdapter``) or paced at the wire time of
its baud rate, with per-servo baud rates, FAST SYNC READ where the firmware has it, and the servos'
Bus Watchdog; ``VirtualOperator``, a scripted operator's hand that follows the joint
calibration by the servos' LEDs."""

from pearl_robot.virtual.bus import UsbAdapter, VirtualServoBus
from pearl_robot.virtual.faults import BusFaults, parse_faults
from pearl_robot.virtual.operator import VirtualOperator
from pearl_robot.virtual.plant import Hand, IdealPlant, MujocoPlant
from pearl_robot.virtual.servo import VirtualServo

__all__ = [
    "BusFaults",
    "Hand",
    "IdealPlant",
    "MujocoPlant",
    "UsbAdapter",
    "VirtualOperator",
    "VirtualServo",
    "VirtualServoBus",
    "parse_faults",
]
