"""One virtual Feetech servo (STS3215; any ``FeetechControlTable``): its memory table and how it answers.

The memory is the control table byte for byte, in the table's byte order (STS little endian, SCS big
endian), signed items in sign-magnitude (``FeetechField.sign_bit``). Reads of any range return those
bytes (undocumented addresses and those past the table read 0), with the present values refreshed
from the plant first. Writes follow the firmware, which stores bytes rather than checking items: a
byte of a read-only or undocumented address is ignored, an item whose new value is outside its
documented range keeps its old value, everything else is stored (no error bit tells a client: the
Feetech status byte has none for it).

EEPROM (addresses below 40) and Lock (55 on STS, 48 on SCS), as the manual and the vendor library's
``unLockEprom``/``LockEprom`` describe them: an EEPROM write takes effect at once either way, but it
survives a power cycle (``power_cycle``) only if Lock was 0 when it was
written. Lock is 1 again after every power-up.

Errors (``protocol.StatusError``): the status byte of every reply and Status (65) carry

- conditions the servo sees now: VOLTAGE (Present Voltage outside Min/Max Voltage Limit), OVERHEAT
  (Present Temperature above Max Temperature Limit), ANGLE (the last Goal Position was outside
  Min/Max Position Limit: the servo drives to the nearest limit instead; limits 0 and 0 mean none);
- latched faults: OVERLOAD when the load stays above Overload Torque (36, %) for Protection Time
  (35, 10 ms units), and whatever ``raise_hardware_error`` injects. Writing Torque Enable 1 clears a
  latched OVERLOAD/OVERCURRENT (the servo tries again); the rest last until a power cycle.

Any of them that Unloading Condition (19) selects turns the torque off, as the firmware's protection does.

Position mapping, from the plant's joint angle q to what the servo reports (STS: single-turn, 0-4095)::

    encoder = 2048 + hidden_direction * q / rad_per_tick + hidden_offset_ticks
    present = (encoder - Homing Offset) mod 4096

A goal is a position in the turn the joint is in now, as the servo's position loop sees it: it never
crosses 4095/0 (where the horn puts that seam inside the joint's range, the joint takes the long way
round, as on the real arm). Goal Speed (46, steps/s; 0: full speed) limits the motion;
Acceleration, Goal Time and Torque Limit are stored but do not shape it. Only Operating Mode 0
(position) holds torque. ``hidden_*`` model how the horn happens to be mounted: invisible to a client,
found by calibration. Torque Enable 128 sets the Homing Offset so that the present position reads 2048.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pearl_robot.feetech.control_table import (
    BAUD_RATES,
    EEPROM_END,
    SECONDS_PER_RETURN_DELAY_UNIT,
    TORQUE_ENABLE_CALIBRATE_MIDDLE,
    FeetechControlTable,
    FeetechField,
    OperatingMode,
)
from pearl_robot.feetech.protocol import StatusError
from pearl_robot.virtual.plant import Plant

PRESENT_VOLTAGE = 74  # 7.4 V, the SO-101's supply (0.1 V units)
PRESENT_TEMPERATURE = 32  # deg C
MOVING_SPEED_STEPS_S = 10  # Moving (66) is 1 while the present speed is above this
CLEARED_BY_TORQUE_ON = StatusError.OVERLOAD | StatusError.OVERCURRENT
TORQUE_ENABLE_VALUES = (0, 1, TORQUE_ENABLE_CALIBRATE_MIDDLE)
GOAL_INPUTS = frozenset({"goal_position", "homing_offset", "min_position_limit", "max_position_limit"})
LIVE_FIRST, LIVE_END = 56, 71  # present position .. present current: refreshed before a read


class _Item(NamedTuple):
    address: int
    end: int
    lowest: int  # what the item's bytes can hold (sign-magnitude where it has a sign bit)
    highest: int


class VirtualFeetechServo:
    def __init__(
        self,
        table: FeetechControlTable,
        servo_id: int,
        plant: Plant,
        joint_index: int,
        *,
        hidden_offset_ticks: int = 0,
        hidden_direction: int = 1,
        sensor_noise_ticks: float = 0.0,
        noise_seed: int | None = None,
    ) -> None:
        """The arguments of ``VirtualServo`` (``PtyServoBus.from_spec`` builds both alike)."""
        if hidden_direction not in (1, -1):
            raise ValueError("hidden_direction must be 1 or -1")
        self.table, self.plant, self.joint_index = table, plant, joint_index
        self.hidden_offset_ticks, self.hidden_direction = int(hidden_offset_ticks), hidden_direction
        self.sensor_noise_ticks = float(sensor_noise_ticks)  # std of Gaussian encoder noise
        self._noise = np.random.default_rng(noise_seed)
        self.voltage = PRESENT_VOLTAGE  # 0.1 V units: change it to see VOLTAGE
        self.temperature = PRESENT_TEMPERATURE  # deg C: raise it above the limit to see OVERHEAT
        self._order = table.byte_order
        self._items = {f.name: _item(f) for f in table.fields}
        lo, hi = table.position_range
        self._center = (lo + hi + 1) // 2
        self._ticks = hi - lo + 1
        self._wraps = self._ticks == round(table.ticks_per_revolution)  # a magnetic encoder turns round
        self._effort = "present_current" if "present_current" in table else None
        self.memory = bytearray(table.size)
        self.flash = bytearray(EEPROM_END)  # what the EEPROM holds over a power cycle
        self.latched = 0  # latched StatusError bits
        self.angle_error = False
        self.registered: tuple[int, bytes] | None = None
        self._overload_since: float | None = None
        self.factory_reset(keep_id=False)
        self.set("id", servo_id)
        self.save_eeprom()
        self.power_cycle()

    # ---- raw memory -------------------------------------------------------------------------------
    def get(self, name: str) -> int:
        item = self._items[name]
        return self.table.decode(name, self.memory[item.address : item.end])

    def set(self, name: str, value: int) -> None:
        """Store a value, saturated to what the item's bytes can hold."""
        item = self._items[name]
        value = min(max(int(value), item.lowest), item.highest)
        self.memory[item.address : item.end] = self.table.encode(name, value)

    @property
    def id(self) -> int:
        return self.get("id")

    @property
    def torque_on(self) -> bool:
        return self.get("torque_enable") == 1

    @property
    def baud_bps(self) -> int:
        return BAUD_RATES.get(self.get("baud_rate"), BAUD_RATES[0])

    @property
    def status_return_level(self) -> int:
        return self.get("status_return_level")

    @property
    def return_delay_s(self) -> float:
        return self.get("return_delay_time") * SECONDS_PER_RETURN_DELAY_UNIT

    # ---- power ------------------------------------------------------------------------------------
    def factory_reset(self, *, keep_id: bool = True) -> None:
        """Every item to its factory value (the id kept unless ``keep_id`` is False), kept in flash."""
        saved_id = self.get("id") if keep_id else None
        for f in self.table.fields:
            self.set(f.name, f.default)
        self.set("model_number", self.table.model_number)
        self.set("firmware_major_version", self.table.firmware_version)
        if saved_id is not None:
            self.set("id", saved_id)
        self.save_eeprom()

    def save_eeprom(self) -> None:
        """Keep the EEPROM as it is now over a power cycle (as a write with Lock 0 does)."""
        self.flash[:] = self.memory[:EEPROM_END]

    def power_cycle(self) -> None:
        """Power off and on: EEPROM from flash, RAM to its defaults (Lock 1, torque off), errors cleared,
        the goal where the joint is."""
        self.memory[:EEPROM_END] = self.flash
        for f in self.table.fields:
            if not f.eeprom and f.writable:
                self.set(f.name, f.default)
        self.latched = 0
        self.angle_error = False
        self.registered = None
        self._overload_since = None
        self.plant.set_torque(self.joint_index, False)
        self.plant.set_profile_velocity(self.joint_index, None)
        self.refresh()
        self.set("goal_position", self.get("present_position"))
        self.plant.set_goal(self.joint_index, self._goal_rad(self.get("goal_position")))

    # ---- plant <-> ticks ----------------------------------------------------------------------------
    def _unwrapped(self, q: float) -> float:
        """Encoder ticks minus the homing offset, before the single-turn wrap."""
        encoder = self._center + self.hidden_direction * q / self.table.rad_per_tick + self.hidden_offset_ticks
        return encoder - self._homing_offset()

    def _homing_offset(self) -> int:
        """Homing Offset (31) on an STS; an SCS has none."""
        return self.get("homing_offset") if "homing_offset" in self._items else 0

    def _reported(self, unwrapped: float) -> int:
        ticks = int(round(unwrapped))
        if self._wraps:
            return ticks % self._ticks
        return min(max(ticks, 0), self._ticks - 1)

    def _goal_rad(self, goal: int) -> float:
        """The joint angle the position loop drives to for ``goal`` (clamped to the angle limits)."""
        lo, hi = self.get("min_position_limit"), self.get("max_position_limit")
        limited = bool(lo or hi)
        self.angle_error = limited and not lo <= goal <= hi
        if limited:
            goal = min(max(goal, lo), hi)
        target = goal
        if self._wraps:  # in the turn the joint is in now
            ticks = int(round(self._unwrapped(self.plant.joint_state(self.joint_index)[0])))
            target += ticks - ticks % self._ticks
        encoder = target + self._homing_offset()
        return (encoder - self._center - self.hidden_offset_ticks) * self.table.rad_per_tick * self.hidden_direction

    def refresh(self) -> None:
        """Present values from the plant, as the firmware samples them."""
        q, qd, tau = self.plant.joint_state(self.joint_index)
        unwrapped = self._unwrapped(q)
        if self.sensor_noise_ticks:
            unwrapped += self._noise.normal(0.0, self.sensor_noise_ticks)
        speed = int(round(self.hidden_direction * qd / self.table.rad_per_tick))
        load = self.hidden_direction * tau / self.table.stall_torque_nm
        self.set("present_position", self._reported(unwrapped))
        self.set("present_speed", speed)
        self.set("present_load", int(round(min(max(load, -1.0), 1.0) * 1000)))
        if self._effort is not None:
            amps = abs(tau) / self.table.stall_torque_nm * self.table.stall_current_a
            self.set(self._effort, int(round(amps / self.table[self._effort].scale)))
        self.set("present_voltage", self.voltage)
        self.set("present_temperature", self.temperature)
        self.set("moving", int(abs(speed) > MOVING_SPEED_STEPS_S))
        self.set("registered_instruction", int(self.registered is not None))
        self.set("status", self.error_bits())

    # ---- errors and protection -------------------------------------------------------------------
    def error_bits(self) -> int:
        """The StatusError bits a reply carries now."""
        bits = self.latched
        if not self.get("min_voltage_limit") <= self.voltage <= self.get("max_voltage_limit"):
            bits |= StatusError.VOLTAGE
        if self.temperature > self.get("max_temperature_limit"):
            bits |= StatusError.OVERHEAT
        if self.angle_error:
            bits |= StatusError.ANGLE
        return int(bits)

    def raise_hardware_error(self, bits: int) -> None:
        """The firmware detected a fault (``StatusError`` bits): latched; torque off where Unloading
        Condition (19) selects it."""
        self.latched |= int(bits)
        self.protect()

    def protect(self) -> bool:
        """Turn the torque off if an error that Unloading Condition selects is present; True if it did."""
        if self.torque_on and self.error_bits() & self.get("unloading_condition"):
            self._torque(False)
            return True
        return False

    def heard(self, now: float) -> None:
        """An instruction for this servo arrived (no bus watchdog on Feetech servos)."""

    def protection_deadline(self) -> float | None:
        """When the overload protection trips unless the load drops first (None: not overloaded)."""
        if self._overload_since is None:
            return None
        return self._overload_since + self.get("protection_time") * 0.01

    def check_protection(self, now: float) -> bool:
        """Watch the load as the firmware does; True if this check turned the torque off."""
        _, _, tau = self.plant.joint_state(self.joint_index)
        overloaded = self.torque_on and abs(tau) / self.table.stall_torque_nm * 100 > self.get("overload_torque")
        if not overloaded:
            self._overload_since = None
        elif self._overload_since is None:
            self._overload_since = now
        elif now >= self.protection_deadline():  # type: ignore[operator]
            self._overload_since = None
            self.latched |= StatusError.OVERLOAD
        return self.protect()

    # ---- reads and writes ---------------------------------------------------------------------------
    def read_range(self, address: int, length: int) -> tuple[int, bytes]:
        """(status error byte, the bytes): zeros past the table's end."""
        end = address + length
        if address < LIVE_END and end > LIVE_FIRST:
            self.refresh()
        data = bytes(self.memory[address:end]).ljust(length, b"\0")
        return self.error_bits(), data

    def write_range(self, address: int, data: bytes) -> int:
        """Store what the firmware stores (see the module docstring); the status error byte after it."""
        table = self.table
        old = bytes(self.memory)
        touched: dict[str, FeetechField] = {}
        for k, byte in enumerate(data):
            item = table.field_at(address + k)
            if item is not None and item.writable:
                self.memory[address + k] = byte
                touched[item.name] = item  # type: ignore[assignment]
        for name, item in list(touched.items()):
            value = self.get(name)
            if not item.in_range(value) or (name == "torque_enable" and value not in TORQUE_ENABLE_VALUES):
                self.memory[item.address : item.end] = old[item.address : item.end]
                del touched[name]
        if old[table.lock.address] == 0 and any(item.eeprom for item in touched.values()):
            self.save_eeprom()  # unlocked: the write is kept over a power cycle
        self._apply(touched, torque_was_on=old[table["torque_enable"].address] == 1)
        return self.error_bits()

    def _apply(self, touched: dict[str, FeetechField], *, torque_was_on: bool) -> None:
        """Side effects of the items just written."""
        if "goal_speed" in touched:
            speed = abs(self.get("goal_speed"))
            self.plant.set_profile_velocity(self.joint_index, speed * self.table.rad_per_tick or None)
        if "torque_enable" in touched and self.get("torque_enable") == TORQUE_ENABLE_CALIBRATE_MIDDLE:
            self.set("torque_enable", int(torque_was_on))
            self._calibrate_middle()
        elif "torque_enable" in touched and self.torque_on:
            self.latched &= ~CLEARED_BY_TORQUE_ON
        if touched.keys() & GOAL_INPUTS:
            self.plant.set_goal(self.joint_index, self._goal_rad(self.get("goal_position")))
        if touched.keys() & {"torque_enable", "operating_mode"}:
            self._torque(self.torque_on)
        self.protect()

    def _torque(self, on: bool) -> None:
        self.set("torque_enable", int(on))
        holds = on and self.get("operating_mode") == OperatingMode.POSITION
        if holds:  # the position loop starts from where the joint is now
            self.plant.set_goal(self.joint_index, self._goal_rad(self.get("goal_position")))
        self.plant.set_torque(self.joint_index, holds)

    def _calibrate_middle(self) -> None:
        """Torque Enable 128: the Homing Offset that makes the present position read the middle, the
        goal there too (nothing moves); an EEPROM write like any other (kept only if unlocked)."""
        q = self.plant.joint_state(self.joint_index)[0]
        if "homing_offset" not in self._items:
            return  # an SCS has no Homing Offset: Torque Enable 128 is no command there
        encoder = self._reported(self._unwrapped(q) + self._homing_offset())
        self.set("homing_offset", encoder - self._center)
        if self.get("lock") == 0:
            self.save_eeprom()
        self.set("goal_position", self._reported(self._unwrapped(q)))
        self.plant.set_goal(self.joint_index, self._goal_rad(self.get("goal_position")))

    # ---- instructions addressed to this servo --------------------------------------------------------
    def register(self, address: int, data: bytes) -> int:
        """REG WRITE: hold the write until ACTION."""
        self.registered = (address, bytes(data))
        return self.error_bits()

    def action(self) -> int | None:
        """ACTION: the registered write (None when there was none)."""
        if self.registered is None:
            return None
        address, data = self.registered
        self.registered = None
        return self.write_range(address, data)


def _item(f: FeetechField) -> _Item:
    if f.sign_bit is not None:
        limit = (1 << f.sign_bit) - 1
        return _Item(f.address, f.end, -limit, limit)
    return _Item(f.address, f.end, 0, (1 << (8 * f.size)) - 1)
