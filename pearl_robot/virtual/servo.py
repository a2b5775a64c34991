"""One virtual X-series servo: its control table memory and how it answers each instruction.

The memory is the control table byte for byte (``ControlTable.size`` bytes); reads of any range
inside it return those bytes (undocumented gaps read 0), refreshed from the plant first so present
values are live. Writes follow the e-manual's rules, checked before anything changes (a write is
all or nothing):

- Access Error: a read-only or undefined address, or the EEPROM area while Torque Enable is 1;
- Data Length Error: a write that covers only part of an item;
- Data Range Error: a value outside the item's documented range (or an unknown Operating Mode);
- Data Limit Error: a goal beyond its configured limit (Goal Position outside Min/Max Position
  Limit in Position Control Mode, Goal Velocity/Current/PWM beyond their limits);
- Result Fail: Torque Enable after a shutdown (only a REBOOT clears it).

Bus Watchdog (98), as the e-manual describes it: while Torque Enable is 1 and the watchdog is set
(1-127, 20 ms units), a servo that hears no instruction packet (to its id or the broadcast id) for
longer than that stops: it holds where it is (Profile Acceleration/Velocity applied as 0) and Bus
Watchdog reads -1. Torque stays on. While it is -1 the Goal Values (PWM, Current, Velocity, Position)
are read-only (a write is a Data Range Error) and only writing 0 clears it. The bus calls ``heard``
for every instruction the servo receives and ``check_watchdog`` on time.

Indirect Address/Data items work: Indirect Data N reads and writes the byte at Indirect Address N.

Per model, from its table: Present Current in the model's unit (2.69 mA on an X430/X540, 1 mA on an X330)
or Present Load (XL430), from the plant's torque through the spec sheet's stall torque and current, and
Present Input Voltage at the model's nominal supply (12 V; 5 V for an X330).

Firmware Version (6) starts as the model's (``ControlTable.firmware_version``) and survives a factory
reset; PING reports it, and FAST SYNC READ is answered only from a firmware that has it
(``ControlTable.has_fast_sync_read``): set it older (``servo.set("firmware_version", 44)``) to see a
client fall back to SYNC READ.

Position mapping, from the plant's joint angle q to what the servo reports::

    encoder = 2048 + hidden_direction * q / RAD_PER_TICK + hidden_offset_ticks
    present = (4096 - encoder if Drive Mode reverse else encoder) + Homing Offset

``hidden_*`` model how the horn happens to be mounted: invisible to a client, found by calibration.
Only position-type operating modes (3, 4, 5) drive the joint; in current, velocity or PWM mode the
virtual servo holds no torque.
"""

from __future__ import annotations

import operator
import struct
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.control_table import (
    BAUD_RATES,
    CENTER_TICKS,
    POSITION_MODES,
    RAD_PER_TICK,
    RAD_S_PER_VELOCITY_UNIT,
    SECONDS_PER_RETURN_DELAY_UNIT,
    ControlTable,
    DriveMode,
    Field,
    OperatingMode,
)
from pearl_robot.dynamixel.protocol import Instruction, ResultCode
from pearl_robot.virtual.plant import Plant

GOAL_VALUES = frozenset({"goal_pwm", "goal_current", "goal_velocity", "goal_position"})
WATCHDOG_FIRED = -1  # Bus Watchdog (98) after it stopped the servo
GOAL_LIMITS = (("goal_velocity", "velocity_limit"), ("goal_current", "current_limit"), ("goal_pwm", "pwm_limit"))
_REVERSE = int(DriveMode.REVERSE)
_TORQUE_ON_BY_GOAL_UPDATE = int(DriveMode.TORQUE_ON_BY_GOAL_UPDATE)
PRESENT_TEMPERATURE = 38  # deg C


class VirtualServo:
    def __init__(
        self,
        table: ControlTable,
        servo_id: int,
        plant: Plant,
        joint_index: int,
        *,
        hidden_offset_ticks: int = 0,
        hidden_direction: int = 1,
        sensor_noise_ticks: float = 0.0,
        noise_seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if hidden_direction not in (1, -1):
            raise ValueError("hidden_direction must be 1 or -1")
        self.table = table
        self.plant = plant
        self.joint_index = joint_index
        self.hidden_offset_ticks = int(hidden_offset_ticks)
        self.hidden_direction = hidden_direction
        self.sensor_noise_ticks = float(sensor_noise_ticks)  # std of Gaussian encoder noise (a worn or noisy encoder)
        self._noise = np.random.default_rng(noise_seed)
        self.clock = clock
        self.input_voltage = int(round(table.nominal_voltage_v * 10))  # 0.1 V units: its spec sheet's supply
        self.temperature = PRESENT_TEMPERATURE  # deg C
        self._t0 = clock()
        self._heard_at = clock()  # when the last instruction packet for this servo arrived
        self.memory = bytearray(table.size)
        # name -> (struct, address, lowest, highest raw value): register access without dict/bytes churn
        self._codec: dict[str, tuple[struct.Struct, int, int, int]] = {}
        for f in table.fields:
            bits = 8 * f.size
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if f.signed else (0, (1 << bits) - 1)
            fmt = {1: "b", 2: "h", 4: "i"}[f.size]
            self._codec[f.name] = (struct.Struct("<" + (fmt if f.signed else fmt.upper())), f.address, lo, hi)
        # byte ranges whose reads need live values / indirect mapping
        present = [f for f in table.fields if f.access == "R" and f.address >= 120]
        self._live_range = (min(f.address for f in present), max(f.end for f in present))
        live = [f for f in table.fields if self._live_range[0] <= f.address < self._live_range[1]]
        self._live_names = [f.name for f in live]
        self._live_struct = _block_struct(live)
        self._live_bounds = [self._codec[n][2:] for n in self._live_names]
        order = [LIVE_VALUES.index("effort" if n == _effort_name(table) else n) for n in self._live_names]
        self._live_order = operator.itemgetter(*order)
        indirect = [f for f in table.fields if f.name.startswith("indirect_data_")]
        self._indirect_spans = _spans(indirect)
        self._gathers: dict[tuple, Callable[[bytearray], object]] = {}  # indirect reads: see _gather
        self._read_plans: dict[tuple[int, int], _ReadPlan] = {}
        if "present_current" in table:
            self._effort_item = "present_current"
            # the model's own current unit (2.69 mA on an X430/X540, 1 mA on an X330)
            self._effort_per_nm = table.stall_current_a / table.stall_torque_nm / table["present_current"].scale
        else:
            self._effort_item = "present_load"
            self._effort_per_nm = 1000.0 / table.stall_torque_nm
        self._pwm_per_nm = 885.0 / table.stall_torque_nm
        self.registered: tuple[int, bytes] | None = None
        self._indirect_data: dict[int, int] = {}  # indirect data address -> index into indirect addresses
        for f in table.fields:
            if f.name.startswith("indirect_data_"):
                n = int(f.name.rsplit("_", 1)[1])
                self._indirect_data[f.address] = table[f"indirect_address_{n}"].address
        self._size = table.size
        self._address = {name: table[name].address for name in HOT_ITEMS}  # read straight from memory
        self._watchdog_s = table["bus_watchdog"].scale
        self._factory_defaults(keep_id=False, keep_baud=False)
        self.set("id", servo_id)
        self._power_on()

    # ---- raw memory -------------------------------------------------------------------------------
    def get(self, name: str) -> int:
        codec, address, _, _ = self._codec[name]
        return codec.unpack_from(self.memory, address)[0]

    def set(self, name: str, value: int) -> None:
        """Store a raw value, saturated to what the item's bytes can hold."""
        codec, address, lo, hi = self._codec[name]
        value = int(value)
        codec.pack_into(self.memory, address, lo if value < lo else hi if value > hi else value)

    @property
    def id(self) -> int:
        return self.memory[self._address["id"]]

    @property
    def torque_on(self) -> bool:
        return bool(self.get("torque_enable"))

    @property
    def baud_bps(self) -> int:
        """The speed this servo listens and answers at (Baud Rate, 8)."""
        return BAUD_RATES[self.memory[self._address["baud_rate"]]]

    @property
    def status_return_level(self) -> int:
        return self.memory[self._address["status_return_level"]]

    @property
    def return_delay_s(self) -> float:
        return self.memory[self._address["return_delay_time"]] * SECONDS_PER_RETURN_DELAY_UNIT

    @property
    def has_fast_sync_read(self) -> bool:
        """Does its firmware (Firmware Version, 6) answer FAST SYNC READ?"""
        return self.table.has_fast_sync_read(self.memory[self._address["firmware_version"]])

    @property
    def alert(self) -> bool:
        return self.memory[self._address["hardware_error_status"]] != 0

    def status_error(self, result: int = ResultCode.OK) -> int:
        return (proto.ALERT_BIT if self.alert else 0) | int(result)

    def _factory_defaults(self, *, keep_id: bool, keep_baud: bool) -> None:
        saved_id, saved_baud = self.get("id"), self.get("baud_rate")
        firmware = self.get("firmware_version") or self.table.firmware_version  # a reset keeps the firmware
        for f in self.table.fields:
            self.set(f.name, f.default)
        self.set("model_number", self.table.model_number)
        self.set("firmware_version", firmware)
        if keep_id:
            self.set("id", saved_id)
        if keep_baud:
            self.set("baud_rate", saved_baud)

    def _power_on(self) -> None:
        """RAM back to defaults, torque off, the goal where the joint is (as after power-up or REBOOT)."""
        for f in self.table.fields:
            if not f.eeprom and f.writable and not f.name.startswith("indirect_"):
                self.set(f.name, f.default)
        self.set("registered_instruction", 0)
        self.set("hardware_error_status", 0)
        self.registered = None
        self.plant.set_torque(self.joint_index, False)
        self.plant.set_profile_velocity(self.joint_index, None)
        self.refresh()
        self.set("goal_position", self.get("present_position"))
        self.set("position_trajectory", self.get("present_position"))
        self.plant.set_goal(self.joint_index, self._goal_rad(self.get("goal_position")))

    # ---- plant <-> ticks ----------------------------------------------------------------------------
    def _reverse(self) -> bool:
        return bool(self.get("drive_mode") & _REVERSE)

    def _present_ticks(self, q: float) -> int:
        encoder = CENTER_TICKS + self.hidden_direction * q / RAD_PER_TICK + self.hidden_offset_ticks
        ticks = (4096 - encoder) if self._reverse() else encoder
        return int(round(ticks)) + self.get("homing_offset")

    def _goal_rad(self, goal_ticks: int) -> float:
        memory, at = self.memory, self._address
        ticks = goal_ticks - _I32(memory, at["homing_offset"])[0]
        encoder = 4096 - ticks if memory[at["drive_mode"]] & _REVERSE else ticks
        return (encoder - CENTER_TICKS - self.hidden_offset_ticks) * RAD_PER_TICK * self.hidden_direction

    def refresh(self) -> None:
        """Present values from the plant, as the servo's firmware samples them."""
        q, qd, tau = self.plant.joint_state(self.joint_index)
        memory, at = self.memory, self._address
        reverse = memory[at["drive_mode"]] & _REVERSE
        sign = -self.hidden_direction if reverse else self.hidden_direction
        velocity = int(round(sign * qd / RAD_S_PER_VELOCITY_UNIT))
        effort = sign * tau
        encoder = CENTER_TICKS + self.hidden_direction * q / RAD_PER_TICK + self.hidden_offset_ticks
        if self.sensor_noise_ticks:
            encoder += self._noise.normal(0.0, self.sensor_noise_ticks)
        position = int(round(4096 - encoder if reverse else encoder)) + _I32(memory, at["homing_offset"])[0]
        moving = abs(velocity) > _U32(memory, at["moving_threshold"])[0]
        in_position = abs(_I32(memory, at["goal_position"])[0] - position) <= 20
        values = (  # in LIVE_VALUES order
            int((self.clock() - self._t0) * 1000) % 32768,
            int(moving),
            (0x01 if in_position else 0) | (0x02 if moving else 0),
            int(round(effort * self._pwm_per_nm)),
            int(round(effort * self._effort_per_nm)),
            velocity,
            position,
            velocity if memory[at["torque_enable"]] else 0,
            _I32(memory, at["position_trajectory"])[0],
            self.input_voltage,
            self.temperature,
            0,
        )
        packed = self._live_order(values)
        try:
            self._live_struct.pack_into(memory, self._live_range[0], *packed)
        except struct.error:  # a value beyond what its bytes hold: saturated, as ``set`` does
            packed = [lo if v < lo else hi if v > hi else v for v, (lo, hi) in zip(packed, self._live_bounds)]
            self._live_struct.pack_into(memory, self._live_range[0], *packed)

    # ---- hardware errors ------------------------------------------------------------------------------
    def raise_hardware_error(self, bits: int) -> None:
        """The firmware detected a fault: alert bit on; torque off where Shutdown (63) selects it."""
        self.set("hardware_error_status", self.get("hardware_error_status") | bits)
        if bits & self.get("shutdown"):
            self.set("torque_enable", 0)
            self.plant.set_torque(self.joint_index, False)

    @property
    def shut_down(self) -> bool:
        return bool(self.get("hardware_error_status") & self.get("shutdown"))

    # ---- Bus Watchdog ---------------------------------------------------------------------------------
    def heard(self, now: float) -> None:
        """An instruction packet for this servo (its id or broadcast) arrived at ``now``."""
        self._heard_at = now

    def watchdog_deadline(self) -> float | None:
        """When the Bus Watchdog stops the servo unless an instruction comes first (None: not armed)."""
        units = self.memory[self._address["bus_watchdog"]]  # signed: -1 (fired) reads 255
        if not 0 < units < 128 or not self.memory[self._address["torque_enable"]]:
            return None
        return self._heard_at + units * self._watchdog_s

    def check_watchdog(self, now: float) -> bool:
        """Stop the servo if the interval since the last instruction exceeded the watchdog; True if it did."""
        deadline = self.watchdog_deadline()
        if deadline is None or now <= deadline:
            return False
        self.set("bus_watchdog", WATCHDOG_FIRED)
        self.plant.set_profile_velocity(self.joint_index, None)  # Profile Acceleration/Velocity applied as 0
        self.refresh()
        self.plant.set_goal(self.joint_index, self.plant.joint_state(self.joint_index)[0])
        self.set("position_trajectory", self.get("present_position"))
        return True

    # ---- reads and writes ---------------------------------------------------------------------------
    def read_range(self, address: int, length: int) -> tuple[int, bytes]:
        end = address + length
        if length <= 0 or address < 0 or end > self._size:
            return ResultCode.ACCESS_ERROR, b""
        plan = self._read_plans.get((address, length)) or self._read_plan(address, length)
        if plan.live:
            self.refresh()
        if plan.pointers is None:
            return ResultCode.OK, bytes(self.memory[address:end])
        return ResultCode.OK, self._gather(address, length, plan)

    def _read_plan(self, address: int, length: int) -> _ReadPlan:
        """What a read of [address, address + length) involves (kept per range): live values to refresh
        first, and Indirect Data bytes (their Indirect Address items, and the spans those take)."""
        end = address + length
        indirect = any(address < hi and lo < end for lo, hi in self._indirect_spans)
        live_lo, live_hi = self._live_range
        live = indirect or (address < live_hi and live_lo < end)
        pointers = [self._indirect_data.get(a) for a in range(address, end)] if indirect else None
        spans = _spans_of(sorted(p for p in pointers if p is not None)) if indirect else []
        plan = self._read_plans[(address, length)] = _ReadPlan(live, pointers, spans)
        return plan

    def _gather(self, address: int, length: int, plan: _ReadPlan) -> bytes:
        """The bytes of the range with Indirect Data N read at Indirect Address N (0 where that points
        past the table); the byte order is kept per range and per Indirect Address values."""
        memory = self.memory
        spans = plan.spans
        if len(spans) == 1:
            lo, hi = spans[0]
            key = (address, length, bytes(memory[lo:hi]))
        else:
            key = (address, length, *(bytes(memory[lo:hi]) for lo, hi in spans))
        gather = self._gathers.get(key)
        if gather is None:
            pointers = plan.pointers
            targets = iter([memory[p] | memory[p + 1] << 8 for p in pointers if p is not None])
            sources = [a if p is None else next(targets) for a, p in zip(range(address, address + length), pointers)]
            if len(self._gathers) > 64:
                self._gathers.clear()
            if all(0 <= t < self._size for t in sources):
                getter = operator.itemgetter(*sources)
                gather = (lambda m: (getter(m),)) if length == 1 else getter
            else:
                gather = lambda m: [m[t] if 0 <= t < self._size else 0 for t in sources]  # noqa: E731
            self._gathers[key] = gather
        return bytes(gather(memory))

    def check_write(self, address: int, data: bytes) -> tuple[int, bytearray, dict[str, Field]]:
        """(result, memory after the write, items changed) without changing anything."""
        table = self.table
        end = address + len(data)
        new = bytearray(self.memory)
        touched: dict[str, Field] = {}
        if not data or address < 0 or end > table.size:
            return ResultCode.ACCESS_ERROR, new, touched
        direct: dict[str, Field] = {}
        for k, byte in enumerate(data):
            a = address + k
            item = table.field_at(a)
            if item is None or not item.writable:
                return ResultCode.ACCESS_ERROR, new, touched
            new[a] = byte
            if a in self._indirect_data:
                target = proto.from_bytes(self.memory[self._indirect_data[a] : self._indirect_data[a] + 2])
                target_item = table.field_at(target)
                if target_item is None or not target_item.writable:
                    return ResultCode.ACCESS_ERROR, new, touched
                new[target] = byte
                touched[target_item.name] = target_item
            else:
                direct[item.name] = item
        for item in direct.values():
            if item.address < address or item.end > end:
                return ResultCode.DATA_LENGTH_ERROR, new, touched
        touched.update(direct)
        if self.torque_on and any(f.eeprom for f in touched.values()):
            return ResultCode.ACCESS_ERROR, new, touched
        values = {name: proto.from_bytes(new[f.address : f.end], f.signed) for name, f in touched.items()}
        for name, value in values.items():
            if not table[name].in_range(value):
                return ResultCode.DATA_RANGE_ERROR, new, touched
        if "operating_mode" in values and values["operating_mode"] not in (0, 1, 3, 4, 5, 16):
            return ResultCode.DATA_RANGE_ERROR, new, touched
        if self.get("bus_watchdog") == WATCHDOG_FIRED and (GOAL_VALUES & touched.keys() or values.get("bus_watchdog")):
            return ResultCode.DATA_RANGE_ERROR, new, touched  # goals read-only; only 0 clears the error
        result = self._check_limits(new, values)
        if result != ResultCode.OK:
            return result, new, touched
        if values.get("torque_enable") == 1 and self.shut_down:
            return ResultCode.RESULT_FAIL, new, touched
        return ResultCode.OK, new, touched

    def _check_limits(self, new: bytearray, values: dict[str, int]) -> int:
        def value(name: str) -> int:
            codec, address, _, _ = self._codec[name]
            return codec.unpack_from(new, address)[0]

        if (
            "goal_position" in values
            and value("operating_mode") == OperatingMode.POSITION
            and not value("min_position_limit") <= values["goal_position"] <= value("max_position_limit")
        ):
            return ResultCode.DATA_LIMIT_ERROR
        for goal, limit in GOAL_LIMITS:
            if goal in values and limit in self.table and abs(values[goal]) > value(limit):
                return ResultCode.DATA_LIMIT_ERROR
        return ResultCode.OK

    def write_range(self, address: int, data: bytes) -> int:
        item = self.table.field_at(address)
        if (
            item is not None
            and item.address == address
            and item.size == len(data)
            and item.writable
            and not item.eeprom
            and address not in self._indirect_data
        ):
            return self._write_item(item, data)
        result, new, touched = self.check_write(address, data)
        if result != ResultCode.OK:
            return result
        self.memory[:] = new
        self._apply(touched)
        return ResultCode.OK

    def _write_item(self, item: Field, data: bytes) -> int:
        """``write_range`` of exactly one whole writable RAM item (a goal each cycle): the checks of
        ``check_write`` that can apply to it, in the same order, without copying the memory."""
        value = int.from_bytes(data, "little", signed=item.signed)
        name = item.name
        memory = self.memory
        if not item.in_range(value):
            return ResultCode.DATA_RANGE_ERROR
        fired = memory[self._address["bus_watchdog"]] == WATCHDOG_FIRED & 0xFF
        if fired and (name in GOAL_VALUES or (name == "bus_watchdog" and value)):
            return ResultCode.DATA_RANGE_ERROR  # goals read-only; only 0 clears the error
        result = self._check_limits(memory, {name: value})
        if result != ResultCode.OK:
            return result
        if name == "torque_enable" and value == 1 and self.shut_down:
            return ResultCode.RESULT_FAIL
        memory[item.address : item.end] = data
        if name == "goal_position":  # what _apply does for it, the hot case
            at = self._address
            if not memory[at["torque_enable"]] and memory[at["drive_mode"]] & _TORQUE_ON_BY_GOAL_UPDATE:
                self._apply({name: item})
                return ResultCode.OK
            self.plant.set_goal(self.joint_index, self._goal_rad(value))
            memory[at["position_trajectory"] : at["position_trajectory"] + 4] = data
            return ResultCode.OK
        self._apply({name: item})
        return ResultCode.OK

    def _apply(self, touched: dict[str, Field]) -> None:
        """Side effects of the items just written."""
        if "profile_velocity" in touched or "bus_watchdog" in touched:  # a cleared watchdog: the profile again
            units = self.get("profile_velocity")
            self.plant.set_profile_velocity(self.joint_index, units * RAD_S_PER_VELOCITY_UNIT or None)
        goal_written = "goal_position" in touched
        torque_by_goal = (
            goal_written
            and not self.torque_on
            and not self.shut_down
            and bool(self.get("drive_mode") & _TORQUE_ON_BY_GOAL_UPDATE)
        )
        if torque_by_goal:
            self.set("torque_enable", 1)
        if goal_written or {"homing_offset", "drive_mode"} & touched.keys():
            self.plant.set_goal(self.joint_index, self._goal_rad(self.get("goal_position")))
            self.set("position_trajectory", self.get("goal_position"))
        if torque_by_goal or {"torque_enable", "operating_mode"} & touched.keys():
            self.plant.set_torque(self.joint_index, self.torque_on and self.get("operating_mode") in POSITION_MODES)

    # ---- instructions addressed to this servo --------------------------------------------------------
    def handle(self, packet: proto.Packet, broadcast: bool) -> tuple[int, bytes] | None:
        """(status error byte, parameters) to answer, or None for no status packet."""
        level = self.get("status_return_level")
        instruction = packet.instruction
        if instruction == Instruction.PING:
            params = proto.to_bytes(self.table.model_number, 2) + bytes((self.get("firmware_version"),))
            return self.status_error(), params
        if instruction == Instruction.READ:
            try:
                address, length = proto.parse_read_params(packet.params)
            except proto.ProtocolError:
                return None if broadcast or level < 1 else (self.status_error(ResultCode.DATA_LENGTH_ERROR), b"")
            result, data = self.read_range(address, length)
            return None if broadcast or level < 1 else (self.status_error(result), data)
        if instruction in (Instruction.WRITE, Instruction.REG_WRITE):
            try:
                address, data = proto.parse_write_params(packet.params)
            except proto.ProtocolError:
                result = ResultCode.DATA_LENGTH_ERROR
            else:
                if instruction == Instruction.WRITE:
                    result = self.write_range(address, data)
                else:
                    result = self.check_write(address, data)[0]
                    if result == ResultCode.OK:
                        self.registered = (address, data)
                        self.set("registered_instruction", 1)
            return self._reply(result, broadcast, level)
        if instruction == Instruction.ACTION:
            if self.registered is None:
                return self._reply(ResultCode.INSTRUCTION_ERROR, broadcast, level)
            address, data = self.registered
            self.registered = None
            self.set("registered_instruction", 0)
            return self._reply(self.write_range(address, data), broadcast, level)
        if instruction == Instruction.REBOOT:
            return None  # the bus answers first, then calls reboot()
        if instruction == Instruction.FACTORY_RESET:
            option = packet.params[0] if len(packet.params) == 1 else None
            if option not in (0x01, 0x02, 0xFF):
                return self._reply(ResultCode.DATA_RANGE_ERROR, broadcast, level)
            if broadcast and option == 0xFF:
                return None  # the e-manual: not activated for broadcast + reset all
            reply = self._reply(ResultCode.OK, broadcast, level)
            self._factory_defaults(keep_id=option in (0x01, 0x02), keep_baud=option == 0x02)
            self._power_on()
            return reply
        if instruction == Instruction.CLEAR:
            if packet.params != bytes((0x01, 0x44, 0x58, 0x4C, 0x22)):
                return self._reply(ResultCode.RESULT_FAIL, broadcast, level)
            self.refresh()
            moving = self.get("moving")
            return self._reply(ResultCode.RESULT_FAIL if moving else ResultCode.OK, broadcast, level)
        return self._reply(ResultCode.INSTRUCTION_ERROR, broadcast, level)

    def _reply(self, result: int, broadcast: bool, level: int) -> tuple[int, bytes] | None:
        if broadcast or level < 2:
            return None
        return self.status_error(result), b""

    def reboot(self) -> None:
        self._power_on()


class _ReadPlan(NamedTuple):
    live: bool  # present values to refresh first
    pointers: list[int | None] | None  # per byte, its Indirect Address item (None: a direct byte)
    spans: list[tuple[int, int]]  # the memory those Indirect Address items take


# items the hot paths read straight from memory (every X-series table has them, at the same size)
HOT_ITEMS = (
    "id",
    "firmware_version",
    "baud_rate",
    "return_delay_time",
    "drive_mode",
    "homing_offset",
    "moving_threshold",
    "torque_enable",
    "status_return_level",
    "hardware_error_status",
    "bus_watchdog",
    "goal_position",
    "position_trajectory",
)
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from

LIVE_VALUES = (  # what ``refresh`` computes, in this order ("effort": present current or load)
    "realtime_tick",
    "moving",
    "moving_status",
    "present_pwm",
    "effort",
    "present_velocity",
    "present_position",
    "velocity_trajectory",
    "position_trajectory",
    "present_input_voltage",
    "present_temperature",
    "backup_ready",
)


def _effort_name(table: ControlTable) -> str:
    return "present_current" if "present_current" in table else "present_load"


def _block_struct(fields: list[Field]) -> struct.Struct:
    """Little-endian layout of ``fields`` in address order, pad bytes in any gap."""
    fmt, at = "<", fields[0].address
    for f in sorted(fields, key=lambda f: f.address):
        code = {1: "b", 2: "h", 4: "i"}[f.size]
        fmt += "x" * (f.address - at) + (code if f.signed else code.upper())
        at = f.end
    return struct.Struct(fmt)


def _spans_of(pointers: list[int]) -> list[tuple[int, int]]:
    """Contiguous [start, end) spans of the 2-byte Indirect Address items at ``pointers`` (sorted)."""
    spans: list[list[int]] = []
    for p in pointers:
        if spans and spans[-1][1] >= p:
            spans[-1][1] = max(spans[-1][1], p + 2)
        else:
            spans.append([p, p + 2])
    return [(a, b) for a, b in spans]


def _spans(fields: list[Field]) -> list[tuple[int, int]]:
    """Contiguous [start, end) address spans covered by ``fields``."""
    spans: list[list[int]] = []
    for f in sorted(fields, key=lambda f: f.address):
        if spans and spans[-1][1] == f.address:
            spans[-1][1] = f.end
        else:
            spans.append([f.address, f.end])
    return [(a, b) for a, b in spans]
