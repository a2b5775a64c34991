"""Feetech SCS/STS servos (STS3215 of the SO-101 arm): the packet codec (``protocol``), control tables
as data (``control_table``) and a bus client with sync read/write, timeouts and retries (``bus``).

Nothing here knows about robots: ``pearl_robot.robot.feetech_robot`` builds the arm on top of it, and
``pearl_robot.virtual.feetech_bus`` answers the same packets from simulated servos.
"""

from pearl_robot.feetech.bus import FeetechBus, FeetechError
from pearl_robot.feetech.control_table import MODELS, FeetechControlTable, FeetechField, control_table
from pearl_robot.feetech.protocol import (
    BROADCAST_ID,
    Instruction,
    Packet,
    PacketParser,
    Rejected,
    StatusError,
    checksum,
    error_names,
    from_signed,
    instruction_packet,
    status_packet,
    to_signed,
)

__all__ = [
    "BROADCAST_ID",
    "MODELS",
    "FeetechBus",
    "FeetechControlTable",
    "FeetechError",
    "FeetechField",
    "Instruction",
    "Packet",
    "PacketParser",
    "Rejected",
    "StatusError",
    "checksum",
    "control_table",
    "error_names",
    "from_signed",
    "instruction_packet",
    "status_packet",
    "to_signed",
]
