"""Virtual hardware for hardware-in-the-loop tests: servo buses on a pseudo-terminal that answer real
packets, their physics from the MuJoCo arm. ``virtual_bus_from_spec(spec)`` picks the bus by the
hardware YAML's ``bus.protocol``: ``VirtualServoBus`` (Dynamixel Protocol 2.0, X-series servos, with
per-servo baud rates, FAST SYNC READ where the firmware has it, and the servos' Bus Watchdog) or
``VirtualFeetechBus`` (Feetech SCS/STS, the SO-101's STS3215, with its EEPROM lock and overload
protection). Both are ``PtyServoBus``es: optionally behind a stock USB adapter's latency timer
(``UsbAdapter``) or paced at the wire time of their baud rate, with faults on demand.
``VirtualOperator``: a scripted operator's hand that follows the joint calibration by the servos' LEDs."""

from pearl_robot.virtual.bus import UsbAdapter, VirtualServoBus
from pearl_robot.virtual.factory import bus_class, virtual_bus_from_spec
from pearl_robot.virtual.faults import BusFaults, parse_faults
from pearl_robot.virtual.feetech_bus import VirtualFeetechBus
from pearl_robot.virtual.feetech_servo import VirtualFeetechServo
from pearl_robot.virtual.operator import VirtualOperator
from pearl_robot.virtual.plant import Hand, IdealPlant, MujocoPlant
from pearl_robot.virtual.pty_bus import PtyServoBus
from pearl_robot.virtual.servo import VirtualServo

__all__ = [
    "BusFaults",
    "Hand",
    "IdealPlant",
    "MujocoPlant",
    "PtyServoBus",
    "UsbAdapter",
    "VirtualFeetechBus",
    "VirtualFeetechServo",
    "VirtualOperator",
    "VirtualServo",
    "VirtualServoBus",
    "bus_class",
    "parse_faults",
    "virtual_bus_from_spec",
]
