"""Careful control-table writes: read, compare, write only if different, read back."""

from __future__ import annotations

import time
from collections.abc import Callable

from pearl_robot.bringup.findings import Change
from pearl_robot.dynamixel.bus import CommError, DynamixelBus, DynamixelError
from pearl_robot.dynamixel.control_table import ControlTable

Confirm = Callable[[str], bool]


def torque_off(bus: DynamixelBus, servo_id: int, table: ControlTable, confirm: Confirm) -> bool:
    """Torque off where it is on and ``confirm`` agrees (the arm may drop). False: left on."""
    item = table["torque_enable"]
    if not bus.read_value(servo_id, item):
        return True
    if not confirm(f"id {servo_id} has torque on; turn it off (support the arm first: it may drop)?"):
        return False
    bus.write_value(servo_id, item, 0)
    return True


def write_if_different(
    bus: DynamixelBus, servo_id: int, table: ControlTable, name: str, value: int, note: str = ""
) -> Change | None:
    """Set one item; None when it already holds ``value``. DynamixelError if the read-back differs."""
    item = table[name]
    before = bus.read_value(servo_id, item)
    if before == value:
        return None
    bus.write_value(servo_id, item, value)
    after = bus.read_value(servo_id, item)
    if after != value:
        raise DynamixelError(f"id {servo_id}: wrote {name} = {value} but it reads back {after}")
    return Change(name, before, after, servo_id, eeprom=item.eeprom, note=note)


def wait_for(bus: DynamixelBus, servo_id: int, timeout_s: float = 2.0) -> tuple[int, int]:
    """Ping until ``servo_id`` answers (after a reboot or an id change): (model number, firmware)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            model, firmware, _ = bus.ping(servo_id)
            return model, firmware
        except CommError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
