"""Every key and gamepad control of teleoperation, in one place (the sources and the help text read
these tables; nothing else names a key).

Keyboard (a terminal in cbreak mode; held keys repeat at the terminal's rate):

    1-9          select joint N (spec order: joint1 ... gripper)
    left/right   select the previous/next joint
    up, +, =     jog the selected joint up (one jog step per key press)
    down, -      jog the selected joint down
    w/s          nudge the end effector +x/-x (forward/back)
    a/d          nudge the end effector +y/-y (left/right)
    r/f          nudge the end effector +z/-z (up/down)
    space        take over / hand back (toggle)
    t            take over
    g            hand back to the policy
    q, Esc       stop the session safely

Gamepad (Linux joystick API, Xbox-style layout as the xpad driver numbers it): the left stick jogs arm
joints 1 (x) and 2 (y), the right stick arm joints 4 (x) and 3 (y), X/Y arm joint 5 down/up, LB/RB the
gripper, the d-pad nudges the end effector (up/down: z, left/right: y); A toggles take-over, B stops.
Stick rates are in ``GAMEPAD_RATE_RAD_S`` at full deflection, past a dead zone of ``GAMEPAD_DEADZONE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pearl_robot.teleop.source import TeleopEvent

# ---- keyboard ---------------------------------------------------------------------------------

# terminal escape sequences (normal and application cursor mode) -> key names
ESCAPE_SEQUENCES: dict[bytes, str] = {
    b"\x1b[A": "up", b"\x1b[B": "down", b"\x1b[C": "right", b"\x1b[D": "left",
    b"\x1bOA": "up", b"\x1bOB": "down", b"\x1bOC": "right", b"\x1bOD": "left",
}  # fmt: skip
ESC = b"\x1b"


@dataclass(frozen=True)
class KeyBinding:
    keys: tuple[str, ...]  # single characters, or names: up down left right esc space
    action: tuple[Any, ...]  # ("select", i) ("select_step", +-1) ("jog", +-1) ("nudge", axis, +-1) ("event", E)
    meaning: str


KEYBOARD: tuple[KeyBinding, ...] = (
    *(KeyBinding((str(i),), ("select", i - 1), f"select joint {i}") for i in range(1, 10)),
    KeyBinding(("left",), ("select_step", -1), "select the previous joint"),
    KeyBinding(("right",), ("select_step", +1), "select the next joint"),
    KeyBinding(("up", "+", "="), ("jog", +1), "jog the selected joint up"),
    KeyBinding(("down", "-"), ("jog", -1), "jog the selected joint down"),
    KeyBinding(("w",), ("nudge", 0, +1), "end effector +x"),
    KeyBinding(("s",), ("nudge", 0, -1), "end effector -x"),
    KeyBinding(("a",), ("nudge", 1, +1), "end effector +y"),
    KeyBinding(("d",), ("nudge", 1, -1), "end effector -y"),
    KeyBinding(("r",), ("nudge", 2, +1), "end effector +z"),
    KeyBinding(("f",), ("nudge", 2, -1), "end effector -z"),
    KeyBinding(("space",), ("event", TeleopEvent.TOGGLE), "take over / hand back"),
    KeyBinding(("t",), ("event", TeleopEvent.TAKE_OVER), "take over"),
    KeyBinding(("g",), ("event", TeleopEvent.HAND_BACK), "hand back to the policy"),
    KeyBinding(("q", "esc"), ("event", TeleopEvent.STOP), "stop the session safely"),
)
KEY_ACTIONS: dict[str, tuple[Any, ...]] = {key: b.action for b in KEYBOARD for key in b.keys}

KEYBOARD_JOG_STEP_RAD = 0.02  # per key press
KEYBOARD_NUDGE_M = 0.005  # per key press


def key_name(char: str) -> str:
    return {" ": "space", "\x1b": "esc"}.get(char, char.lower())


def keyboard_help(num_joints: int) -> str:
    """One line for the operator's terminal (the table above, in short)."""
    return (
        f"teleop keys: 1-{min(num_joints, 9)} or left/right select a joint, up/down (+/-) jog it, "
        "w/s a/d r/f nudge the end effector in x y z, space take over / hand back (t / g), q or Esc stop"
    )


GAMEPAD_HELP = (
    "teleop gamepad: sticks, X/Y and LB/RB jog joints, d-pad nudges the end effector, A take over / hand back, B stop"
)


# ---- gamepad (Linux joystick API, xpad numbering) -----------------------------------------------

# axis number -> (joint group, index within it, sign); group "arm" counts arm joints, "gripper" the others
GAMEPAD_AXES: dict[int, tuple[str, int, int]] = {0: ("arm", 0, -1), 1: ("arm", 1, +1), 3: ("arm", 3, +1),
                                                 4: ("arm", 2, +1)}  # fmt: skip
# d-pad axis number -> (Cartesian axis, sign): up on the d-pad reads negative
GAMEPAD_NUDGE_AXES: dict[int, tuple[int, int]] = {7: (2, -1), 6: (1, -1)}
# button number -> a held jog (group, index, sign) or a pressed event
GAMEPAD_BUTTONS: dict[int, tuple[Any, ...]] = {
    0: ("event", TeleopEvent.TOGGLE),
    1: ("event", TeleopEvent.STOP),
    2: ("jog", "arm", 4, -1),
    3: ("jog", "arm", 4, +1),
    4: ("jog", "gripper", 0, -1),
    5: ("jog", "gripper", 0, +1),
}
GAMEPAD_RATE_RAD_S = 0.5  # a joint's jog rate at full deflection (or a held button)
GAMEPAD_NUDGE_M_S = 0.05  # the end effector's speed with a d-pad direction held
GAMEPAD_DEADZONE = 0.15  # of full deflection: a resting stick's drift is not a command
AXIS_FULL_SCALE = 32767
