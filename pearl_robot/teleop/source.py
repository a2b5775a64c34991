"""What a teleoperation device gives the control loop: per poll, a jog (joint deltas and/or a Cartesian
nudge of the end effector) and the operator's events. Sources never block: ``poll()`` returns what arrived
since the last poll, or None when nothing did."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pearl_robot.errors import PearlRobotError


class TeleopUnavailable(PearlRobotError):
    """The teleoperation device cannot be used here (no terminal, no gamepad, no permission)."""


class TeleopEvent(enum.Enum):
    TAKE_OVER = "take_over"  # the operator drives the arm; the policy's actions are replaced
    HAND_BACK = "hand_back"  # the policy drives again, starting from where the arm is
    TOGGLE = "toggle"  # take over when the policy drives, hand back when the operator does
    STOP = "stop"  # stop the session safely (as Ctrl-C or a STOP file)


@dataclass(frozen=True)
class TeleopCommand:
    """One poll's worth of operator input. ``joint_delta_rad``: a change of each joint target (spec order,
    rad); ``cartesian_delta_m``: a nudge of the end effector (world x, y, z, m); ``events`` in arrival order."""

    joint_delta_rad: np.ndarray | None = None
    cartesian_delta_m: np.ndarray | None = None
    events: tuple[TeleopEvent, ...] = field(default=())

    @property
    def moves(self) -> bool:
        return any(d is not None and np.any(d) for d in (self.joint_delta_rad, self.cartesian_delta_m))


class TeleopSource(Protocol):
    """A teleoperation device: a keyboard, a gamepad, a leader arm."""

    name: str

    def poll(self) -> TeleopCommand | None:
        """What arrived since the last poll; never blocks."""
        ...

    def close(self) -> None:
        """Release the device (and restore a terminal's mode); safe to call twice."""
        ...
