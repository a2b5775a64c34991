"""Give the one servo on the bus its id and baud rate, as a new arm is assembled one servo at a time.

Scan every baud rate of the link's protocol; exactly one servo may answer. Torque off, then ID and Baud
Rate in EEPROM (Dynamixel: 7 and 8; Feetech: 5 and 6, between Lock := 0 and Lock := 1 so that they
survive a power cycle), each only if different; then the servo must answer at the new id and baud
rate, and read both back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pearl_robot.bringup import eeprom
from pearl_robot.bringup.findings import Change
from pearl_robot.bringup.link import Link, scan
from pearl_robot.bringup.protocols import DYNAMIXEL, BusProtocol
from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.spec import RobotSpec
from pearl_robot.servo_bus import CommError

MAX_ID = DYNAMIXEL.max_id


@dataclass(frozen=True)
class SetupResult:
    model: str
    firmware: int
    old_id: int
    old_baud: int
    servo_id: int
    baud: int
    changes: tuple[Change, ...]


def check_target(servo_id: int, baud: int, protocol: BusProtocol = DYNAMIXEL) -> None:
    if not 0 <= servo_id <= protocol.max_id:
        raise PearlRobotError(f"servo id must be in 0..{protocol.max_id}, got {servo_id}")
    codes = protocol.baud_codes
    if baud not in codes:
        raise PearlRobotError(f"baud rate {baud} is not in the Baud Rate table ({', '.join(map(str, codes))})")


def find_single(link: Link, bauds: list[int], wait_s: float | None) -> tuple[int, int, int, int]:
    """(baud, id, model number, firmware) of the one servo that answers; PearlRobotError otherwise."""
    results = scan(link, bauds, wait_s)
    found = [(r.baud, i, model, fw) for r in results for i, (model, fw) in r.found.items()]
    damaged = {r.baud: r.crc_errors for r in results if r.crc_errors}
    note = f"; damaged answers at {damaged} (servos sharing an id?)" if damaged else ""
    if not found:
        raise PearlRobotError(
            f"no servo answers at any baud rate ({', '.join(map(str, bauds))}){note}: check its power, its cable "
            "and that the adapter is set to the servo's interface (TTL or RS-485)"
        )
    if len(found) > 1:
        listed = ", ".join(f"id {i} at {b} ({link.protocol.model_label(m)})" for b, i, m, _ in found)
        raise PearlRobotError(f"several servos answer: {listed}{note}; connect only the one to set up")
    if damaged:
        raise PearlRobotError(f"one servo answers, but{note[1:]}; connect only the one to set up")
    return found[0]


def setup_servo(
    link: Link,
    servo_id: int,
    baud: int,
    *,
    confirm: Callable[[str], bool],
    spec: RobotSpec | None = None,
    scan_wait_s: float | None = None,
) -> SetupResult:
    protocol = link.protocol
    check_target(servo_id, baud, protocol)
    bauds = [baud] + [b for b in link.scan_order() if b != baud]
    old_baud, old_id, model_number, firmware = find_single(link, bauds, scan_wait_s)
    table = protocol.model_table(model_number)
    if table is None:
        raise PearlRobotError(
            f"id {old_id} at {old_baud} is an unknown model ({model_number}): not a {protocol.family} servo"
        )
    joint = next((j for j in spec.joints if j.servo_id == servo_id), None) if spec else None
    named = joint is not None and (
        protocol.canonical_model(joint.model) == table.model or joint.model.upper().startswith(table.model)
    )
    if joint is not None and not named:
        raise PearlRobotError(
            f"{spec.source.name} says id {servo_id} ({joint.name}) is a {joint.model}; this is a {table.model}"
        )
    changes: list[Change] = []
    if (old_id, old_baud) != (servo_id, baud):
        question = f"set the {table.model} (id {old_id} at {old_baud}) to id {servo_id} at {baud}?"
        if not confirm(question):
            raise PearlRobotError("not confirmed: nothing written (--yes writes without asking)")
        changes = _write(link, table, old_id, old_baud, servo_id, baud)
    with link.open(baud) as bus:
        model_number, firmware = eeprom.wait_for(bus, protocol, servo_id)
        if changes:
            protocol.lock(bus, servo_id, table)  # the end of the unlocked writes: on Feetech they are kept
        code = protocol.read(bus, servo_id, table, "baud_rate")
    if model_number != table.model_number or code != protocol.baud_codes[baud]:
        raise PearlRobotError(f"id {servo_id} at {baud} answers, but reads back model {model_number}, baud code {code}")
    return SetupResult(table.model, firmware, old_id, old_baud, servo_id, baud, tuple(changes))


def _write(link: Link, table: Any, old_id: int, old_baud: int, servo_id: int, baud: int) -> list[Change]:
    """Torque off, unlock, then ID, then Baud Rate, each only if different; the ping afterwards checks
    them (and relocks, at the new id and baud rate)."""
    protocol, changes = link.protocol, []
    with link.open(old_baud, margin_ms=link.timeout_margin_ms + protocol.eeprom_commit_ms) as bus:
        eeprom.torque_off(bus, protocol, old_id, table, lambda _question: True)
        protocol.unlock(bus, old_id, table)
        if old_id != servo_id:
            _write_address(bus, protocol, old_id, table, "id", servo_id)
            eeprom.wait_for(bus, protocol, servo_id)
            changes.append(Change("id", old_id, protocol.read(bus, servo_id, table, "id"), servo_id, eeprom=True))
        if old_baud != baud:
            _write_address(bus, protocol, servo_id, table, "baud_rate", protocol.baud_codes[baud])
            changes.append(Change("baud_rate", old_baud, baud, servo_id, eeprom=True))
    return changes


def _write_address(bus: Any, protocol: BusProtocol, servo_id: int, table: Any, name: str, value: int) -> None:
    """A write of ID or Baud Rate. Its status packet (sent before the change takes effect) says the servo
    took it; one that never comes, or comes under the new id, is no error: the ping afterwards decides."""
    with contextlib.suppress(CommError):
        protocol.write_raw(bus, servo_id, table, name, value)
