"""Give the one servo on the bus its id and baud rate, as a new arm is assembled one servo at a time.

Scan every X-series baud rate; exactly one servo may answer. Torque off, then ID (7) and Baud Rate (8)
in EEPROM, each only if different; then the servo must answer at the new id and baud rate, and read
both back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from pearl_robot.bringup import eeprom
from pearl_robot.bringup.findings import Change
from pearl_robot.bringup.link import BAUD_CODES, SCAN_BAUDS, Link, scan
from pearl_robot.dynamixel.bus import CommError, DynamixelBus
from pearl_robot.dynamixel.control_table import MODELS_BY_NUMBER, ControlTable, Field
from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.spec import RobotSpec

MAX_ID = 252


@dataclass(frozen=True)
class SetupResult:
    model: str
    firmware: int
    old_id: int
    old_baud: int
    servo_id: int
    baud: int
    changes: tuple[Change, ...]


def check_target(servo_id: int, baud: int) -> None:
    if not 0 <= servo_id <= MAX_ID:
        raise PearlRobotError(f"servo id must be in 0..{MAX_ID}, got {servo_id}")
    if baud not in BAUD_CODES:
        raise PearlRobotError(f"baud rate {baud} is not in the Baud Rate table ({', '.join(map(str, BAUD_CODES))})")


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
        listed = ", ".join(f"id {i} at {b} ({_model(m)})" for b, i, m, _ in found)
        raise PearlRobotError(f"several servos answer: {listed}{note}; connect only the one to set up")
    if damaged:
        raise PearlRobotError(f"one servo answers, but{note[1:]}; connect only the one to set up")
    return found[0]


def _model(number: int) -> str:
    table = MODELS_BY_NUMBER.get(number)
    return table.model if table else f"unknown model {number}"


def setup_servo(
    link: Link,
    servo_id: int,
    baud: int,
    *,
    confirm: Callable[[str], bool],
    spec: RobotSpec | None = None,
    scan_wait_s: float | None = None,
) -> SetupResult:
    check_target(servo_id, baud)
    bauds = [baud] + [b for b in link.scan_order(SCAN_BAUDS) if b != baud]
    old_baud, old_id, model_number, firmware = find_single(link, bauds, scan_wait_s)
    table = MODELS_BY_NUMBER.get(model_number)
    if table is None:
        raise PearlRobotError(f"id {old_id} at {old_baud} is an unknown model ({model_number}): not an X-series servo")
    joint = next((j for j in spec.joints if j.servo_id == servo_id), None) if spec else None
    if joint is not None and not joint.model.upper().startswith(table.model):
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
        model_number, firmware = eeprom.wait_for(bus, servo_id)
        code = bus.read_value(servo_id, table["baud_rate"])
    if model_number != table.model_number or code != BAUD_CODES[baud]:
        raise PearlRobotError(f"id {servo_id} at {baud} answers, but reads back model {model_number}, baud code {code}")
    return SetupResult(table.model, firmware, old_id, old_baud, servo_id, baud, tuple(changes))


def _write(link: Link, table: ControlTable, old_id: int, old_baud: int, servo_id: int, baud: int) -> list[Change]:
    """Torque off, then ID, then Baud Rate, each only if different; the ping afterwards checks them."""
    changes = []
    with link.open(old_baud) as bus:
        eeprom.torque_off(bus, old_id, table, lambda _question: True)
        if old_id != servo_id:
            _write_address(bus, old_id, table["id"], servo_id)
            eeprom.wait_for(bus, servo_id)
            changes.append(Change("id", old_id, bus.read_value(servo_id, table["id"]), servo_id, eeprom=True))
        if old_baud != baud:
            _write_address(bus, servo_id, table["baud_rate"], BAUD_CODES[baud])
            changes.append(Change("baud_rate", old_baud, baud, servo_id, eeprom=True))
    return changes


def _write_address(bus: DynamixelBus, servo_id: int, item: Field, value: int) -> None:
    """A write of ID or Baud Rate. Its status packet (sent before the change takes effect) says the servo
    took it; one that never comes, or comes under the new id, is no error: the ping afterwards decides."""
    with contextlib.suppress(CommError):
        bus.write_value(servo_id, item, value)
