"""Dynamixel Protocol 2.0: the packet codec and CRC (``protocol``, ``crc``), FAST SYNC READ's combined
status packet (``fast_sync``), X-series control tables as data (``control_table``), and a bus client
with (fast) sync read/write, timeouts and retries (``bus``).

Nothing here knows about robots: ``pearl_robot.robot.serial_robot`` builds the arm on top of it, and
``pearl_robot.virtual`` answers the same packets from a simulated chain of servos.
"""

from pearl_robot.dynamixel.bus import CommError, DynamixelBus, PortError, SerialTransport, ServoError
from pearl_robot.dynamixel.control_table import MODELS, ControlTable, Field, HardwareError, OperatingMode, control_table
from pearl_robot.dynamixel.crc import crc16
from pearl_robot.dynamixel.protocol import (
    BROADCAST_ID,
    Instruction,
    Packet,
    PacketParser,
    Rejected,
    ResultCode,
    StatusError,
    encode_instruction,
    encode_status,
)

__all__ = [
    "BROADCAST_ID",
    "MODELS",
    "CommError",
    "ControlTable",
    "DynamixelBus",
    "Field",
    "HardwareError",
    "Instruction",
    "OperatingMode",
    "Packet",
    "PacketParser",
    "PortError",
    "Rejected",
    "ResultCode",
    "SerialTransport",
    "ServoError",
    "StatusError",
    "control_table",
    "crc16",
    "encode_instruction",
    "encode_status",
]
