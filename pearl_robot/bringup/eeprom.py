"""Careful control-table writes: read, compare, write only if different (through the protocol: on
Feetech an EEPROM item goes through the Lock register), read back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pearl_robot.bringup.findings import Change
from pearl_robot.bringup.protocols import BusProtocol
from pearl_robot.servo_bus import BusError, CommError

Confirm = Callable[[str], bool]


def torque_off(bus: Any, protocol: BusProtocol, servo_id: int, table: Any, confirm: Confirm) -> bool:
    """Torque off where it is on and ``confirm`` agrees (the arm may drop). False: left on."""
    if not protocol.read(bus, servo_id, table, "torque_enable"):
        return True
    if not confirm(f"id {servo_id} has torque on; turn it off (support the arm first: it may drop)?"):
        return False
    protocol.write(bus, servo_id, table, "torque_enable", 0)
    return True


def write_if_different(
    bus: Any, protocol: BusProtocol, servo_id: int, table: Any, name: str, value: int, note: str = ""
) -> Change | None:
    """Set one item; None when it already holds ``value``. BusError if the read-back differs."""
    before = protocol.read(bus, servo_id, table, name)
    if before == value:
        return None
    protocol.write(bus, servo_id, table, name, value)
    after = protocol.read(bus, servo_id, table, name)
    if after != value:
        raise BusError(f"id {servo_id}: wrote {name} = {value} but it reads back {after}")
    return Change(name, before, after, servo_id, eeprom=table[name].eeprom, note=note)


def wait_for(bus: Any, protocol: BusProtocol, servo_id: int, timeout_s: float = 2.0) -> tuple[int, int]:
    """Ping until ``servo_id`` answers (after a reboot or an id change): (model number, firmware)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return protocol.identify(bus, servo_id)
        except CommError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
