"""FeetechRobot: an arm of Feetech SCS/STS servos (the SO-101's STS3215) on one bus (``serial:DEVICE``
with a hardware file whose ``bus.protocol`` is ``feetech``).

Per control cycle one bus transaction each way: ``read()`` is one SYNC READ (0x82) of the feedback
block every STS servo holds at 56-70 (present position, speed, load, voltage, temperature, status,
moving, present current; 56-66 on SCS), ``write()`` one SYNC WRITE (0x83) of Goal Position (42).

Like ``SerialRobot`` this backend works in *raw* angles, the servo's own (0 at its centre tick, 2048 on
an STS)::

    raw_rad = (ticks - centre) * 2*pi/4096

and the calibration file (``pearl-robot calibrate joints``) maps them to joint angles above it
(``CalibratedRobot``: offsets and directions), so ``needs_calibration`` is set and it works unchanged
with calibrate, adapt, serve and demo.

Lifecycle on the wire:
- ``connect()``: open the port (the USB adapter's latency timer set to 1 ms where it has one), make
  every servo answer every instruction (Response Status Level 1, a broadcast write: RAM effect, no
  flash), ping each id with a generous deadline and measure the round trip (deadlines follow the
  measurement), check each Model Number against the YAML, torque off, position mode (Operating Mode 0)
  and Return Delay Time as configured (EEPROM, written only where it differs, through the Lock),
  optional Torque Limit / Acceleration (RAM), the servos' position limits and error status;
- ``enable()``: Goal Position := Present Position, then torque on, read back: the arm never jumps;
- ``disable()``: torque off, read back; ``close()``: the same (``on_close="hold"`` keeps torque and holds).
Feetech servos have no bus watchdog: a controlling process that dies leaves them holding their goal.

Faults: a damaged, partial or missing status packet is retried (as many as fit one control period)
and counted in ``stats``. A read whose fresh answer does not arrive returns the last state of the
joints that did not answer, flagged ``stale_read``; after ``STALE_READS_BEFORE_FAULT`` in a row, or when
the device vanishes, the arm is told to hold its last measured position (where the port still
works), the robot enters ERROR and ``RobotFault`` says what happened. Error bits in a status packet
or the Status register (overload, overheat, voltage, overcurrent, angle sensor) are faults in every
state while they last, and meanwhile only the present position is commanded. Voltage, overheat and
angle clear once the cause is gone; overload and overcurrent latch in the servo (its protection turns
torque off) until torque is enabled again: disable() and enable() (Feetech servos have no reboot);
``clear_faults()`` re-reads them.
"""

from __future__ import annotations

import collections
import time
from typing import Literal

import numpy as np

from pearl_robot.dynamixel.control_table import common_address
from pearl_robot.errors import ConfigError, RobotFault
from pearl_robot.feetech import protocol as proto
from pearl_robot.feetech.bus import CommError, FeetechBus
from pearl_robot.feetech.control_table import (
    BAUD_RATES,
    SECONDS_PER_RETURN_DELAY_UNIT,
    FeetechControlTable,
    OperatingMode,
    control_table,
)
from pearl_robot.feetech.protocol import StatusError, error_names
from pearl_robot.robot.base import Fault, RobotState
from pearl_robot.robot.servo_arm import ServoBusRobot
from pearl_robot.robot.spec import RobotSpec
from pearl_robot.servo_bus import SerialTransport, Transport

FEETECH_BAUDRATES = tuple(sorted(BAUD_RATES.values()))
# error bit -> the fault kind SafeRobot stops on
FAULT_KINDS = {
    StatusError.VOLTAGE: "voltage",
    StatusError.ANGLE: "hardware_error",
    StatusError.OVERHEAT: "overheating",
    StatusError.OVERCURRENT: "overload",
    StatusError.OVERLOAD: "overload",
}


def feedback_items(table: FeetechControlTable) -> list[str]:
    """The items one state read covers (one contiguous block from Present Position on)."""
    names = ["present_position", "present_speed", "present_load", "status", "moving"]
    return names + (["present_current"] if "present_current" in table else [])


class FeetechRobot(ServoBusRobot):
    realtime = True
    needs_calibration = True  # open_robot applies calibration/<robot-id>.yaml (CalibratedRobot)
    SERVO_FAMILY, BAUDRATES = "Feetech", FEETECH_BAUDRATES  # what the registry accepts for ?baudrate=

    def __init__(
        self,
        spec: RobotSpec,
        device: str,
        *,
        baudrate: int | None = None,
        latency_timer_ms: float | None = None,
        on_close: Literal["torque_off", "hold"] = "torque_off",
        fault_action: Literal["hold", "torque_off"] = "hold",
        retries: int = 3,
        timeout_margin_ms: float = 5.0,
        return_delay_us: float | None = 0.0,
        read_effort: bool = True,
        torque_limit: float | None = None,
        acceleration: int | None = None,
        low_latency: bool = True,
        transport: Transport | None = None,
    ) -> None:
        """``spec`` in raw angles (``raw_spec(spec, calibration)`` under a calibration). ``return_delay_us``
        is set in every servo at connect (None leaves them as they are). ``torque_limit``: a fraction of
        the maximum torque (0-1) set in Torque Limit (48) at connect; ``acceleration``: Acceleration (41)
        in its raw unit (100 steps/s^2, 0 = as fast as it can); None leaves either as the servo has it.
        ``low_latency``: set the USB adapter's latency timer to 1 ms where it has one. ``transport``
        replaces the serial port (tests)."""
        super().__init__(spec)
        if torque_limit is not None and not 0.0 < torque_limit <= 1.0:
            raise ValueError(f"torque_limit must be a fraction in (0, 1], got {torque_limit}")
        if acceleration is not None and not 0 <= acceleration <= 254:
            raise ValueError(f"acceleration must be 0 to 254 (x 100 steps/s^2), got {acceleration}")
        self._init_bus_options(
            device,
            baudrate=baudrate,
            latency_timer_ms=latency_timer_ms,
            on_close=on_close,
            fault_action=fault_action,
            retries=retries,
            timeout_margin_ms=timeout_margin_ms,
            return_delay_us=return_delay_us,
            read_effort=read_effort,
            low_latency=low_latency,
            transport=transport,
        )
        if self.baudrate not in FEETECH_BAUDRATES:
            rates = ", ".join(map(str, FEETECH_BAUDRATES))
            raise ConfigError(spec.source, "bus.baudrate", f"Feetech servos talk at {rates} bps, not {self.baudrate}")
        self.torque_limit = torque_limit
        self.acceleration = acceleration
        self.tables: list[FeetechControlTable] = self._load_tables(control_table)
        self._names = feedback_items(self.tables[0])
        block = common_address(self.tables, self._names)
        if block is None or any(feedback_items(t) != self._names for t in self.tables):
            raise ConfigError(spec.source, "joints", "every servo of one arm needs the same feedback layout")
        self._block: tuple[int, int] = block
        self._center = np.array([(t.position_range[0] + t.position_range[1] + 1) // 2 for t in self.tables], float)
        self._rad_per_tick = np.array([t.rad_per_tick for t in self.tables])
        self._speed_scale = np.array([t["present_speed"].scale for t in self.tables])
        effort = "present_current" if "present_current" in self.tables[0] else "present_load"
        self._effort_item = effort
        self._effort_scale = np.array([t[effort].scale for t in self.tables])
        self._position_min, self._position_max = spec.position_min, spec.position_max
        self._tick_min = np.array([t.position_range[0] for t in self.tables], float)
        self._tick_max = np.array([t.position_range[1] for t in self.tables], float)
        self._read_retries = retries
        self._stale_streak = 0
        self._last_read: tuple[list[float], list[float], list[float] | None] | None = None
        self._last_read_at: list[float] = [0.0] * spec.num_joints
        self._last_ticks: list[float] | None = None
        self.moving: list[bool] = [False] * spec.num_joints  # Moving (66) of each joint's last reply
        self.adapter = None
        self._latency = None
        self.notices: list[str] = []
        self.bus: FeetechBus | None = None
        self.bus_stats: collections.Counter[str] = collections.Counter()
        self.stats: collections.Counter[str] = collections.Counter()
        self.hardware_errors: dict[int, int] = {}  # servo id -> error bits
        self.last_error: str | None = None

    @classmethod
    def from_address(cls, address: str, spec: RobotSpec, **options: object) -> FeetechRobot:
        return cls(spec, address, **options)

    # ---- units -------------------------------------------------------------------------------------
    def ticks_to_rad(self, ticks: np.ndarray) -> np.ndarray:
        """Raw angle: the servo's own, 0 at its centre tick (2048 on an STS)."""
        return (np.asarray(ticks, dtype=float) - self._center) * self._rad_per_tick

    def rad_to_ticks(
        self, rad: np.ndarray, lo_rad: np.ndarray | None = None, hi_rad: np.ndarray | None = None
    ) -> np.ndarray:
        """Nearest ticks inside the servos' position limits and, where given, inside [lo_rad, hi_rad]:
        rounding never lands half a tick past a limit."""
        c, r = self._center, self._rad_per_tick
        ticks = np.rint(c + np.asarray(rad, dtype=float) / r)
        lo, hi = self._tick_min, self._tick_max
        if lo_rad is not None:
            lo = np.maximum(lo, np.ceil(c + np.asarray(lo_rad) / r - 1e-9))
            hi = np.minimum(hi, np.floor(c + np.asarray(hi_rad) / r + 1e-9))
        return np.clip(ticks, lo, np.maximum(lo, hi)).astype(np.int64)

    # ---- lifecycle hooks ----------------------------------------------------------------------------
    def _connect(self) -> None:
        transport = self._transport or SerialTransport(self.device, self.baudrate)
        self.bus = FeetechBus(
            transport,
            baudrate=self.baudrate,
            latency_timer_ms=self.latency_timer_ms,
            timeout_margin_ms=self.timeout_margin_ms,
            retries=self.retries,
            tables=dict(zip(self.ids, self.tables)),
        )
        self.bus_stats = self.bus.stats
        self.notices = []
        try:
            if self._transport is None:
                self._check_adapter(transport)
            self._configure()
        except BaseException:
            self.bus.close()
            self.bus = None
            raise

    def _configure(self) -> None:
        bus = self.bus
        # every servo answers every instruction from here on (RAM effect of an EEPROM item: no flash write)
        bus.write_value(proto.BROADCAST_ID, "status_return_level", 1)
        self._measure_round_trip()
        for i, (servo_id, table) in enumerate(zip(self.ids, self.tables)):
            try:
                model = bus.model_number(servo_id)
            except CommError as exc:
                raise RobotFault(self._no_answer_text(servo_id, exc)) from None
            if model != table.model_number:
                raise ConfigError(
                    self.spec.source,
                    f"joints[{i}].model",
                    f"servo id {servo_id} reports model number {model}, but {table.model} is {table.model_number}",
                )
        self._sync_write_value("torque_enable", dict.fromkeys(self.ids, 0))
        lo, hi = [], []
        for k, servo_id in enumerate(self.ids):
            if "operating_mode" in self.tables[k]:  # an SCS servo has no modes: always position
                self._ensure(servo_id, "operating_mode", OperatingMode.POSITION)
            if self.return_delay_us is not None:
                wanted = int(round(self.return_delay_us * 1e-6 / SECONDS_PER_RETURN_DELAY_UNIT))
                self._ensure(servo_id, "return_delay_time", wanted)
            if self.torque_limit is not None:
                bus.write_value(servo_id, "torque_limit", int(round(self.torque_limit * 1000)))
            if self.acceleration is not None:
                bus.write_value(servo_id, "acceleration", self.acceleration)
            self._note_errors(servo_id, bus.read_value(servo_id, "status") | bus.servo_errors.get(servo_id, 0))
            limits = bus.read_values(servo_id, ["min_position_limit", "max_position_limit"])
            low, high = limits["min_position_limit"], limits["max_position_limit"]
            if low >= high:  # 0/0: a multi-turn setting; the position range of the model instead
                low, high = self.tables[k].position_range
            lo.append(low)
            hi.append(high)
        delays = [bus.read_value(i, "return_delay_time") for i in self.ids]
        bus.return_delay_s = max(delays) * SECONDS_PER_RETURN_DELAY_UNIT
        self._tick_min, self._tick_max = np.array(lo, dtype=float), np.array(hi, dtype=float)
        self._read_retries = self._retries_within(self.spec.period_s)
        self._stale_streak = 0
        self._read_ticks()

    def _ensure(self, servo_id: int, name: str, value: int) -> None:
        if self.bus.ensure_value(servo_id, name, value) and self.bus.table(servo_id)[name].eeprom:
            self.stats["eeprom_writes"] += 1

    def _retries_within(self, budget_s: float) -> int:
        """How many retries of the state read fit ``budget_s`` (at most ``retries``, at least one where
        retries are allowed: a lost packet costs one late cycle rather than a stale state)."""
        n, length = len(self.ids), self._block[1]
        attempt = self.bus.timeout_s(proto.packet_size(2 + n), n * proto.packet_size(length), n)
        return min(self.retries, max(1, int(budget_s // attempt) - 1))

    def _enable_on_bus(self) -> None:
        if self.hardware_errors:
            raise RobotFault(
                f"cannot enable: {self._hardware_error_text()}; call clear_faults() once the cause is gone"
            )
        ticks, _, _ = self._read_ticks()
        self._sync_write_value("goal_position", dict(zip(self.ids, [int(t) for t in ticks])))
        self._sync_write_value("torque_enable", dict.fromkeys(self.ids, 1))
        refused = [i for i in self.ids if self.bus.read_value(i, "torque_enable") != 1]
        if refused:
            self._sync_write_value("torque_enable", dict.fromkeys(self.ids, 0))
            raise RobotFault(f"servo {', '.join(self.joint_label(i) for i in refused)} refused torque on")

    def _torque_off(self) -> None:
        """Torque off everywhere, confirmed by reading it back (a SYNC WRITE has no reply)."""
        address = self.tables[0]["torque_enable"].address
        for _ in range(3):
            self._sync_write_value("torque_enable", dict.fromkeys(self.ids, 0))
            replies = self.bus.sync_read(address, 1, self.ids)
            still_on = [i for i, reply in replies.items() if reply.params != b"\x00"]
            if not still_on:
                return
        raise RobotFault(f"servo {', '.join(self.joint_label(i) for i in still_on)} kept torque on")

    def _close(self) -> None:
        bus = self.bus
        if bus is None:
            return
        try:
            if self.on_close == "torque_off":
                self._torque_off()
            elif self._last_ticks is not None:
                self._sync_write_value("goal_position", dict(zip(self.ids, [int(t) for t in self._last_ticks])))
        except RobotFault:
            self.stats["close_errors"] += 1  # the device is gone: nothing left to tell it
        finally:
            self._latency = bus.latency
            bus.close()
            self.bus = None

    # ---- I/O -------------------------------------------------------------------------------------
    def _read(self) -> RobotState:
        ticks, speed, effort, faults = self._guard(self._read_state)
        return RobotState(
            position=self.ticks_to_rad(ticks),
            velocity=np.asarray(speed) * self._speed_scale,
            effort=None if effort is None else np.asarray(effort) * self._effort_scale,
            timestamp=min(self._last_read_at),
            faults=tuple(faults) + tuple(self._faults()),
        )

    def _sync_read_state(self, retries: int | None = None) -> dict[int, proto.Packet]:
        return self.bus.sync_read(*self._block, self.ids, retries=retries)

    def _read_ticks(self) -> tuple[list[float], list[float], list[float] | None]:
        """A fresh state read (no stale fallback): connect, enable and the fault paths use it."""
        ticks, speed, effort, _, _ = self._decode(self._sync_read_state())
        return ticks, speed, effort

    def _decode(self, replies: dict[int, proto.Packet]) -> tuple[list, list, list | None, list, list]:
        """Ticks, speed, effort of every joint in raw units (the last values for ids without a reply),
        the faults the replies carry (none: the error bits are in ``hardware_errors``), and the ids whose
        reply answered an earlier read (none can be told apart on this protocol)."""
        arrived = self.bus.last_reply_at or time.monotonic()
        address = self._block[0]
        last = self._last_read
        ticks, speed, effort = [], [], []
        for k, servo_id in enumerate(self.ids):
            reply = replies.get(servo_id)
            if reply is None:
                if last is None:
                    raise CommError(f"servo {self.joint_label(servo_id)}: no valid state yet", [servo_id])
                ticks.append(last[0][k])
                speed.append(last[1][k])
                effort.append(last[2][k] if last[2] is not None else 0.0)
                continue
            table, data = self.tables[k], reply.params
            value = {n: table.decode(n, data[table[n].address - address : table[n].end - address]) for n in self._names}
            self._note_errors(servo_id, reply.code | value["status"])
            self.moving[k] = bool(value["moving"])
            ticks.append(float(value["present_position"]))
            speed.append(float(value["present_speed"]))
            effort.append(float(value[self._effort_item]))
            self._last_read_at[k] = arrived
        self.stats["cycles_read"] += 1
        self._last_ticks = ticks
        self._last_read = (ticks, speed, effort if self.read_effort else None)
        return (*self._last_read, [], [])

    def _note_errors(self, servo_id: int, bits: int) -> None:
        if bits and self.hardware_errors.get(servo_id) != bits:
            if servo_id not in self.hardware_errors:
                self.stats["hardware_errors"] += 1
            self.hardware_errors[servo_id] = bits
        elif not bits:
            self.hardware_errors.pop(servo_id, None)  # Feetech errors are not latched: gone with the cause

    def _write(self, targets: np.ndarray) -> np.ndarray:
        if self.hardware_errors and self._last_ticks is not None:
            ticks = np.array(self._last_ticks, dtype=np.int64)  # a servo is in fault: hold, whatever was asked
            self.stats["writes_held_on_fault"] += 1
        else:
            ticks = self._goal_ticks(targets)
        self._guard(lambda: self._sync_write_value("goal_position", dict(zip(self.ids, ticks.tolist()))))
        self.stats["cycles_written"] += 1
        return self.ticks_to_rad(ticks)

    def _goal_ticks(self, targets: np.ndarray) -> np.ndarray:
        """``rad_to_ticks`` inside the joint limits, or between a limit and where a joint rests outside
        it: clamping never moves a goal further than the command asked (SafeRobot caps the step)."""
        lo, hi = self._position_min, self._position_max
        if self._last_ticks is not None:
            present = self.ticks_to_rad(self._last_ticks)
            lo, hi = np.minimum(lo, present), np.maximum(hi, present)
        return self.rad_to_ticks(targets, lo, hi)

    def _sync_write_value(self, name: str, values: dict[int, int]) -> None:
        self.bus.sync_write_value(name, values)

    # ---- faults ----------------------------------------------------------------------------------
    def _faults(self) -> list[Fault]:
        out = []
        for servo_id, bits in sorted(self.hardware_errors.items()):
            joint = self.spec.joint_names[self.ids.index(servo_id)]
            kinds = {kind for flag, kind in FAULT_KINDS.items() if bits & flag} or {"hardware_error"}
            detail = f"servo id {servo_id}: {', '.join(error_names(bits))} (status {bits:#04x})"
            out.extend(Fault(kind, joint, detail) for kind in sorted(kinds))
        return out

    def _hardware_error_text(self) -> str:
        return "; ".join(
            f"servo {self.joint_label(i)} reports {', '.join(error_names(b))}"
            for i, b in sorted(self.hardware_errors.items())
        )

    def clear_faults(self) -> None:
        """Re-read the error status of every servo: a Feetech servo clears its error bits once the cause
        is gone (an overload unloads its torque: disable()/enable() to hold again)."""
        with self._io_lock:
            for servo_id in self.ids:
                bits = self._guard(
                    lambda i=servo_id: self.bus.read_value(i, "status") | self.bus.servo_errors.get(i, 0)
                )
                self._note_errors(servo_id, bits)
