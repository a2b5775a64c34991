"""SerialRobot: an arm of Dynamixel X-series servos on one Protocol 2.0 bus (``serial:DEVICE``).

Per control cycle exactly one bus transaction each way: ``read()`` is one SYNC READ of an indirect
block every servo is given at connect (Status Return Level, Bus Watchdog, Realtime Tick, present
current or load, velocity and position: 14 bytes at Indirect Data 1), ``write()`` one SYNC WRITE of
Goal Position (116). The read is a FAST SYNC READ (one combined status packet, ``dynamixel.fast_sync``)
when every servo's model and firmware have it (X430/540 from firmware 45, X330 from 46, per the
e-manual), chosen at connect from the pings; a plain SYNC READ otherwise, or with ``fast_sync_read=0``.
A chain that mixes X330s (Indirect Data 1 at 208) with X430/X540s (at 224), such as a Koch arm, has no
common address for the block: it is read with one BULK READ (each servo's own address). Any of them
gives the same per-servo replies, checks and stale flags.

This backend works in *raw* angles, the servo's own (its horn may be mounted at any angle, turning
either way)::

    raw_rad = (ticks - 2048) * 2*pi/4096

The arm's joint angles come from the calibration file (``pearl-robot calibrate joints``), applied by
``CalibratedRobot`` on every backend alike: ``joint = direction * (raw - offset_rad)``. So
``needs_calibration`` is set: ``open_robot("serial:...")`` wraps this backend in its calibration and
builds it on ``raw_spec(spec, calibration)``; without a valid calibration the arm connects and reads
raw angles (for the calibration procedure) but refuses to enable.

Lifecycle on the wire:
- ``connect()``: open the port, set the USB adapter's latency timer to 1 ms where permitted (else
  say what to run), make every servo answer every instruction (Status Return Level 2), ping each id
  with a generous deadline and measure the round trip (deadlines come from the measurement, not
  from the YAML's latency timer), check each model against the YAML (a servo of another model: one
  ``ConfigError`` naming the joint, the id and both models, the arm left torque off), torque off,
  clear a Bus Watchdog error left by a process that died, position control mode and Return Delay
  Time as configured (EEPROM is written only where it differs: read, compare, write, read back);
- ``enable()``: Goal Position := Present Position, torque on, then the servos' Bus Watchdog
  (``bus_watchdog_ms``): they stop by themselves when no instruction arrives that long, so an arm
  whose controlling process dies or hangs does not hold torque at its last goal forever;
- ``disable()``: Bus Watchdog off, torque off; ``close()``: the same (``on_close="hold"`` keeps
  torque and holds).

Faults: a damaged, partial or missing status packet is retried (``retries``, as many as fit one control
period) and counted in ``stats``. A state read whose fresh answer does not arrive in time returns
the last state of the joints that did not answer, flagged ``stale_read`` with its age (its
``timestamp`` stays when that reply arrived); after ``STALE_READS_BEFORE_FAULT`` in a row, or when
the device vanishes, the arm is told to hold its last measured position (where the port still
works), the robot enters ERROR and ``RobotFault`` says what happened. A servo whose Bus Watchdog
fired (it ignores goal writes from then on) is a ``bus_watchdog`` fault in the next state.
A servo whose status packets carry the alert bit is asked for its Hardware Error Status; the fault
(overload, overheating, voltage, hardware_error) is in every state's ``faults`` until it is cleared,
and from then on this backend only ever commands the present position (``clear_faults()`` reboots
the faulted servos once the cause is gone).
"""

from __future__ import annotations

import collections
import logging
import math
import struct
import time
from typing import Literal

import numpy as np

from pearl_robot.dynamixel import fast_sync
from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import CommError, DynamixelBus, SerialTransport, Transport
from pearl_robot.dynamixel.control_table import (
    CENTER_TICKS,
    MODELS_BY_NUMBER,
    POSITION_MODES,
    RAD_PER_TICK,
    RAD_S_PER_VELOCITY_UNIT,
    SECONDS_PER_RETURN_DELAY_UNIT,
    ControlTable,
    Field,
    HardwareError,
    OperatingMode,
    control_table,
    hardware_error_names,
    model_name,
)
from pearl_robot.errors import ConfigError, RobotFault
from pearl_robot.robot.base import Fault, RobotState
from pearl_robot.robot.servo_arm import ServoBusRobot
from pearl_robot.robot.spec import RobotSpec

log = logging.getLogger(__name__)

BUS_WATCHDOG_UNIT_S = 0.020
BUS_WATCHDOG_FIRED = -1
REALTIME_TICK_WRAP_MS = 32768
REALTIME_TICK_TOLERANCE_MS = 2.0  # 1 ms resolution, truncated, on either side
EXACT_TICKS = 1 << 22  # |ticks| below this round-trip through radians exactly (see _goal_ticks)

# Hardware Error Status bit -> the fault kind SafeRobot stops on
FAULT_KINDS = {
    HardwareError.OVERLOAD: "overload",
    HardwareError.OVERHEATING: "overheating",
    HardwareError.INPUT_VOLTAGE: "voltage",
    HardwareError.ELECTRICAL_SHOCK: "hardware_error",
    HardwareError.MOTOR_ENCODER: "hardware_error",
}


def state_items(table: ControlTable, read_effort: bool) -> list[Field]:
    """The items one state read covers, in the order the indirect block holds them: Status Return
    Level (2 once configured; a servo that restarted lost its indirect map and reads 0 there), Bus
    Watchdog (-1 once it fired), Realtime Tick (when the servo sampled the reply, see ``_is_fresh``),
    present current (or load on models without current sensing), velocity and position."""
    names = ["status_return_level", "bus_watchdog", "realtime_tick", "present_velocity", "present_position"]
    if read_effort:
        names.insert(3, "present_current" if "present_current" in table else "present_load")
    return [table[n] for n in names]


def indirect_addresses(items: list[Field]) -> list[int]:
    """The control table address of each byte of the indirect block."""
    return [f.address + k for f in items for k in range(f.size)]


def _packed_struct(items: list[Field]) -> struct.Struct:
    """Little-endian layout of ``items`` packed back to back (as the indirect block holds them)."""
    codes = ({1: "b", 2: "h", 4: "i"}[f.size] for f in items)
    return struct.Struct("<" + "".join(c if f.signed else c.upper() for c, f in zip(codes, items)))


class SerialRobot(ServoBusRobot):
    realtime = True
    needs_calibration = True  # open_robot applies calibration/<robot-id>.yaml (CalibratedRobot)

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
        bus_watchdog_ms: float | None = None,
        low_latency: bool = True,
        fast_sync_read: bool | int = True,
        transport: Transport | None = None,
    ) -> None:
        """``spec`` in raw angles (``raw_spec(spec, calibration)`` under a calibration; the hardware spec
        itself reads raw angles, for the calibration procedure). ``return_delay_us`` is set in every servo
        at connect (None leaves the servos as they are). ``bus_watchdog_ms``: the servos stop by
        themselves when no instruction arrives for that long while ACTIVE (default: four control
        periods, at least 100 ms; 0 turns it off). ``low_latency``: set the USB adapter's latency timer
        to 1 ms at connect where permitted. ``fast_sync_read``: read the state with FAST SYNC READ where
        every servo has it (0/false: always the plain SYNC READ). ``transport`` replaces the serial port
        (tests)."""
        super().__init__(spec)
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
        if fast_sync_read not in (0, 1):
            raise ValueError(f"fast_sync_read must be 1 or 0 (true or false), got {fast_sync_read!r}")
        self.fast_sync_read = bool(fast_sync_read)
        self.state_read = "sync_read"  # the instruction of the per-cycle state read, chosen at connect
        if bus_watchdog_ms is None:
            bus_watchdog_ms = max(100.0, 4000.0 * spec.period_s)
        units = math.ceil(bus_watchdog_ms / 1000.0 / BUS_WATCHDOG_UNIT_S)
        if not 0 <= units <= 127:
            raise ValueError(f"bus_watchdog_ms must be 0 (off) to {127 * 20}, got {bus_watchdog_ms}")
        self.bus_watchdog_units = units
        self.tables: list[ControlTable] = self._load_tables(control_table)
        for joint, table in zip(spec.joints, self.tables):
            if self.baudrate not in table.baud_rates.values():
                rates = ", ".join(map(str, table.baud_rates.values()))
                why = f"{joint.model} ({joint.name}) cannot talk at {self.baudrate} bps (it can: {rates})"
                raise ConfigError(spec.source, "bus.baudrate", why)
        self._effort_scale = [self._effort_unit(t) for t in self.tables]
        self._position_min, self._position_max = spec.position_min, spec.position_max  # (a frozen spec)
        self._set_tick_limits(np.zeros(spec.num_joints), np.full(spec.num_joints, 4095.0))
        self._state_items = [state_items(t, read_effort) for t in self.tables]
        self._state_structs = [_packed_struct(items) for items in self._state_items]
        size = self._state_structs[0].size
        # Indirect Data 1.. on every servo: one SYNC READ where every model keeps it at one address, else
        # one BULK READ of each servo's own (an X330 keeps it at 208, an X430/X540 at 224)
        self._state_block: tuple[int, int] = (self.tables[0]["indirect_data_1"].address, size)
        self._state_requests = [(i, t["indirect_data_1"].address, size) for i, t in zip(self.ids, self.tables)]
        self._servo_ms: list[int | None] = [None] * spec.num_joints  # Realtime Tick of each last fresh reply
        self._goal_item = self.tables[0]["goal_position"]  # the same address on every X-series model
        self._read_retries = retries
        self._stale_streak = 0
        # the last state in raw units (ticks, velocity, effort), per joint: lists, not arrays (five values
        # a cycle: numpy's per-call cost was most of the work)
        self._last_read: tuple[list[float], list[float], list[float] | None] | None = None
        self._last_read_at: list[float] = [0.0] * spec.num_joints  # when each joint's last reply arrived
        self.adapter = None  # AdapterInfo after connect
        self._latency = None  # the bus's LatencyMeasurement, kept after close
        self.notices: list[str] = []  # what connect() found and fixed, one line each
        self.bus: DynamixelBus | None = None
        self.bus_stats: collections.Counter[str] = collections.Counter()
        self.stats: collections.Counter[str] = collections.Counter()
        self.hardware_errors: dict[int, int] = {}  # servo id -> Hardware Error Status bits
        self._last_ticks: list[float] | None = None
        self.last_error: str | None = None

    @classmethod
    def from_address(cls, address: str, spec: RobotSpec, **options: object) -> SerialRobot:
        return cls(spec, address, **options)

    # ---- configuration helpers ----------------------------------------------------------------
    def _effort_unit(self, table: ControlTable) -> float:
        """SI per raw unit of the effort item: amperes (present current) or a load fraction."""
        name = "present_current" if "present_current" in table else "present_load"
        return table[name].scale

    # ---- units -------------------------------------------------------------------------------------
    def ticks_to_rad(self, ticks: np.ndarray) -> np.ndarray:
        """Raw angle: the servo's own, 0 at its centre tick (2048)."""
        return (np.asarray(ticks, dtype=float) - CENTER_TICKS) * RAD_PER_TICK

    def rad_to_ticks(
        self, rad: np.ndarray, lo_rad: np.ndarray | None = None, hi_rad: np.ndarray | None = None
    ) -> np.ndarray:
        """Nearest ticks inside the servos' position limits and, where given, inside [lo_rad, hi_rad]:
        rounding never lands half a tick past a limit."""
        ticks = np.rint(CENTER_TICKS + np.asarray(rad, dtype=float) / RAD_PER_TICK)
        lo, hi = self._tick_min, self._tick_max
        if lo_rad is not None:
            lo = np.maximum(lo, np.ceil(CENTER_TICKS + lo_rad / RAD_PER_TICK - 1e-9))
            hi = np.minimum(hi, np.floor(CENTER_TICKS + hi_rad / RAD_PER_TICK + 1e-9))
        return np.clip(ticks, lo, np.maximum(lo, hi)).astype(np.int64)

    # ---- lifecycle hooks ----------------------------------------------------------------------------
    def _connect(self) -> None:
        transport = self._transport or SerialTransport(self.device, self.baudrate)
        self.bus = DynamixelBus(
            transport,
            baudrate=self.baudrate,
            latency_timer_ms=self.latency_timer_ms,
            timeout_margin_ms=self.timeout_margin_ms,
            retries=self.retries,
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
        t0 = self.tables[0]
        # Every servo answers every instruction from here on (a broadcast write has no reply).
        bus.write(proto.BROADCAST_ID, t0["status_return_level"].address, bytes((2,)))
        self._measure_round_trip()
        firmwares, models = [], []
        for servo_id in self.ids:
            try:
                model, firmware, error = bus.ping(servo_id)
            except CommError as exc:
                raise RobotFault(self._no_answer_text(servo_id, exc)) from None
            models.append(model)
            firmwares.append(firmware)
        self._check_models(models)
        self._choose_state_read(firmwares)
        self._sync_write_value("torque_enable", dict.fromkeys(self.ids, 0))
        for servo_id, table in zip(self.ids, self.tables):
            self._clear_bus_watchdog_error(servo_id, table)
            mode = bus.read_value(servo_id, table["operating_mode"])
            if mode not in POSITION_MODES:
                self._ensure(servo_id, table["operating_mode"], int(OperatingMode.POSITION))
            if self.return_delay_us is not None:
                wanted = int(round(self.return_delay_us * 1e-6 / SECONDS_PER_RETURN_DELAY_UNIT))
                self._ensure(servo_id, table["return_delay_time"], wanted)
            self.hardware_errors.pop(servo_id, None)
            bits = bus.read_value(servo_id, table["hardware_error_status"])
            if bits:
                self.hardware_errors[servo_id] = bits
        delays = [bus.read_value(i, t["return_delay_time"]) for i, t in zip(self.ids, self.tables)]
        bus.return_delay_s = max(delays) * SECONDS_PER_RETURN_DELAY_UNIT
        lo = [bus.read_value(i, t["min_position_limit"]) for i, t in zip(self.ids, self.tables)]
        hi = [bus.read_value(i, t["max_position_limit"]) for i, t in zip(self.ids, self.tables)]
        self._set_tick_limits(np.array(lo, dtype=float), np.array(hi, dtype=float))
        self._map_state_block()
        self._read_retries = self._retries_within(self.spec.period_s)
        self._stale_streak = 0
        self._read_ticks()

    def _choose_state_read(self, firmwares: list[int]) -> None:
        """BULK READ where the servos keep their blocks at different addresses; else FAST SYNC READ where
        every servo's model and firmware have it (and it is not turned off); else SYNC READ."""
        lacking = [
            f"{self.joint_label(i)} ({t.model} firmware {fw})"
            for i, t, fw in zip(self.ids, self.tables, firmwares)
            if not t.has_fast_sync_read(fw)
        ]
        if len({address for _, address, _ in self._state_requests}) > 1:
            self.state_read = "bulk_read"
            log.info("%s: BULK READ: the servos keep their indirect blocks at different addresses", self.device)
            return
        self.state_read = "fast_sync_read" if self.fast_sync_read and not lacking else "sync_read"
        if self.fast_sync_read and lacking:
            log.info("%s: plain SYNC READ: no FAST SYNC READ on servo %s", self.device, ", ".join(lacking))

    def _check_models(self, models: list[int]) -> None:
        """Every servo of the hardware file's model, or one error naming each that is not. Torque goes off
        on every servo of a model this project knows (Torque Enable is 64 on all of them); a servo of an
        unknown model is left untouched."""
        wrong = [
            (
                k,
                f"servo {self.joint_label(i)} reports model number {found} "
                f"({model_name(found) or 'a model this project does not know'}), "
                f"but the hardware file has {t.model} (model number {t.model_number})",
            )
            for k, (i, t, found) in enumerate(zip(self.ids, self.tables, models))
            if found != t.model_number
        ]
        if not wrong:
            return
        known = [i for i, found in zip(self.ids, models) if found in MODELS_BY_NUMBER]
        torque = "torque is off"
        if known:
            item = self.tables[0]["torque_enable"]
            self._sync_write_value("torque_enable", dict.fromkeys(known, 0))
            try:  # a SYNC WRITE has no reply: read it back
                on = [i for i, r in self.bus.sync_read(item.address, item.size, known).items() if r.params != b"\x00"]
            except CommError:
                on = known
            if on:
                torque = f"torque not confirmed off on id {', '.join(map(str, on))}"
        fix = f"{torque}; fix the model in the hardware file or put the right servo on that id"
        reason = "; ".join(text for _, text in wrong) + f" ({fix})"
        raise ConfigError(self.spec.source, f"joints[{wrong[0][0]}].model", reason)

    def _sync_read_state(self, retries: int | None = None) -> dict[int, proto.Packet]:
        """One read of every servo's state block, with the instruction chosen at connect."""
        if self.state_read == "bulk_read":
            return self.bus.bulk_read(self._state_requests, retries=retries)
        read = self.bus.fast_sync_read if self.state_read == "fast_sync_read" else self.bus.sync_read
        return read(*self._state_block, self.ids, retries=retries)

    def _ensure(self, servo_id: int, item: Field, value: int) -> None:
        if self.bus.ensure_value(servo_id, item, value) and item.eeprom:
            self.stats["eeprom_writes"] += 1

    def _clear_bus_watchdog_error(self, servo_id: int, table: ControlTable) -> None:
        """A Bus Watchdog left set (or fired) by a process that died: explain, clear, continue."""
        item = table["bus_watchdog"]
        value = self.bus.read_value(servo_id, item)
        if value == BUS_WATCHDOG_FIRED:
            self.stats["bus_watchdog_cleared"] += 1
            self._note(
                f"servo {self.joint_label(servo_id)}: its Bus Watchdog had stopped it (the controlling "
                "process died or hung last time); cleared"
            )
        if value:
            self._ensure(servo_id, item, 0)

    def _map_state_block(self) -> None:
        """Point Indirect Address 1.. of every servo at the state items (RAM: again after a reboot)."""
        for servo_id, table, items in zip(self.ids, self.tables, self._state_items):
            data = b"".join(proto.u16(a) for a in indirect_addresses(items))
            self.bus.write(servo_id, table["indirect_address_1"].address, data)

    def _retries_within(self, budget_s: float) -> int:
        """How many retries of the state read fit ``budget_s`` (at most ``retries``, at least one where
        retries are allowed: a lost packet costs one late cycle rather than a stale state)."""
        address, length = self._state_block
        tx = proto.HEADER_SIZE + 3 + 4 + len(self.ids) + 2
        if self.state_read == "bulk_read":  # 5 bytes a servo: id, address, length
            tx = proto.HEADER_SIZE + 3 + 5 * len(self.ids) + 2
        if self.state_read == "fast_sync_read":
            rx = fast_sync.status_size(len(self.ids), length)
        else:
            rx = len(self.ids) * proto.status_packet_size(length)
        attempt = self.bus.timeout_s(tx, rx, len(self.ids))
        return min(self.retries, max(1, int(budget_s // attempt) - 1))

    def _enable_on_bus(self) -> None:
        if self.hardware_errors:
            raise RobotFault(
                f"cannot enable: {self._hardware_error_text()}; call clear_faults() once the cause is gone"
            )
        ticks, _, _ = self._read_ticks()
        self._sync_write_value("goal_position", dict(zip(self.ids, ticks)))
        self._sync_write_value("torque_enable", dict.fromkeys(self.ids, 1))
        refused = [
            servo_id
            for servo_id, table in zip(self.ids, self.tables)
            if self.bus.read_value(servo_id, table["torque_enable"]) != 1
        ]
        if refused:
            self._sync_write_value("torque_enable", dict.fromkeys(self.ids, 0))
            names = ", ".join(self.joint_label(i) for i in refused)
            raise RobotFault(f"servo {names} refused torque on (a shutdown needs clear_faults())")
        if self.bus_watchdog_units:
            self._sync_write_value("bus_watchdog", dict.fromkeys(self.ids, self.bus_watchdog_units))

    def _torque_off(self) -> None:
        """Bus Watchdog off (which clears a watchdog error too), then torque off everywhere, confirmed
        by reading it back (a SYNC WRITE has no reply)."""
        self._sync_write_value("bus_watchdog", dict.fromkeys(self.ids, 0))
        item = self.tables[0]["torque_enable"]
        for _ in range(3):
            self._sync_write_value("torque_enable", dict.fromkeys(self.ids, 0))
            replies = self.bus.sync_read(item.address, item.size, self.ids)
            still_on = [i for i, reply in replies.items() if reply.params != b"\x00"]
            if not still_on:
                return
        names = ", ".join(self.joint_label(i) for i in still_on)
        raise RobotFault(f"servo {names} kept torque on after three torque-off commands")

    def _close(self) -> None:
        bus = self.bus
        if bus is None:
            return
        try:
            if self.on_close == "torque_off":
                self._torque_off()
            else:
                self._sync_write_value("bus_watchdog", dict.fromkeys(self.ids, 0))
                if self._last_ticks is not None:
                    self._sync_write_value("goal_position", dict(zip(self.ids, self._last_ticks)))
        except RobotFault:
            self.stats["close_errors"] += 1  # the device is gone: nothing left to tell it
        finally:
            self._latency = bus.latency
            bus.close()
            self.bus = None

    # ---- I/O -------------------------------------------------------------------------------------
    def _read(self) -> RobotState:
        ticks, velocity, effort, faults = self._guard(self._read_state)
        return RobotState(
            position=np.array([(t - CENTER_TICKS) * RAD_PER_TICK for t in ticks]),  # = ticks_to_rad(ticks)
            velocity=np.array([v * RAD_S_PER_VELOCITY_UNIT for v in velocity]),
            effort=None if effort is None else np.array([e * s for e, s in zip(effort, self._effort_scale)]),
            timestamp=min(self._last_read_at),  # when the oldest joint's reply arrived
            faults=tuple(faults) + tuple(self._faults()) if faults or self.hardware_errors else (),
        )

    def _read_ticks(self) -> tuple[list[float], list[float], list[float] | None]:
        """A fresh state read (no stale fallback): connect, enable and the fault paths use it."""
        ticks, velocity, effort, _, old = self._decode(self._sync_read_state())
        if old:
            raise CommError(f"servo id {', '.join(map(str, old))}: the reply answered an earlier read", old)
        return ticks, velocity, effort

    def _decode(
        self, replies: dict[int, proto.Packet]
    ) -> tuple[list[float], list[float], list[float] | None, list, list]:
        """Ticks, velocity, effort of every joint (the last values for ids without a fresh reply), the
        faults the replies carry (a fired Bus Watchdog, a servo that restarted) and the ids whose
        reply turned out to answer an earlier read (``_is_fresh``)."""
        arrived = self.bus.last_reply_at or time.monotonic()
        sent = self.bus.transaction_sent_at
        last = self._last_read
        ticks, velocity, effort, faults, old = [], [], [], [], []
        structs, hardware_errors, read_effort, last_at = (
            self._state_structs,
            self.hardware_errors,
            self.read_effort,
            self._last_read_at,
        )
        for k, servo_id in enumerate(self.ids):
            reply = replies.get(servo_id)
            row = None
            if reply is not None:
                if reply.error & proto.ALERT_BIT or hardware_errors:
                    self._check_alert(k, servo_id, reply)
                if reply.error & 0x7F:
                    what = f"servo {self.joint_label(servo_id)} answered the state read with: {reply.status_error}"
                    raise CommError(what, [servo_id])
                level, watchdog, servo_ms, *row = structs[k].unpack_from(reply.params)
                fault = None if level == 2 and watchdog != BUS_WATCHDOG_FIRED else self._block_fault(k, level, watchdog)
                if fault is not None:
                    faults.append(fault)
                    row = None if fault.kind == "comm_error" else row
                elif not self._is_fresh(k, servo_ms, sent):
                    old.append(servo_id)
                    self.stats["replies_answering_earlier_reads"] += 1
                    row = None
                else:
                    last_at[k] = arrived
                    self._servo_ms[k] = servo_ms
            if row is None:  # no fresh values: the last ones (flagged by the caller or the fault)
                if last is None:
                    raise CommError(f"servo {self.joint_label(servo_id)}: no valid state yet", [servo_id])
                row = ([last[2][k]] if read_effort else []) + [last[1][k], last[0][k]]
            if read_effort:
                effort.append(float(row[0]))
            velocity.append(float(row[-2]))
            ticks.append(float(row[-1]))
        self.stats["cycles_read"] += 1
        self._last_ticks = ticks
        self._last_read = (ticks, velocity, effort if read_effort else None)
        return (*self._last_read, faults, old)

    def _is_fresh(self, k: int, servo_ms: int, sent_at: float | None) -> bool:
        """Did the servo sample this reply after our instruction went out? Protocol 2.0 has no sequence
        number, but every X-series servo counts milliseconds (Realtime Tick, 0-32767): the last fresh
        reply was sampled before it arrived, a fresh one after this instruction was sent, so the servo's
        clock must have advanced at least the host time between the two. A reply that answers an
        earlier read (however late it is) fails that."""
        previous = self._servo_ms[k]
        if previous is None or sent_at is None:
            return True
        needed_ms = (sent_at - self._last_read_at[k]) * 1e3
        if needed_ms > REALTIME_TICK_WRAP_MS - 1000:
            return True  # the counter may have wrapped since: nothing to compare
        elapsed_ms = (servo_ms - previous) % REALTIME_TICK_WRAP_MS
        return elapsed_ms >= needed_ms - REALTIME_TICK_TOLERANCE_MS

    def _block_fault(self, k: int, status_return_level: int, watchdog: int) -> Fault | None:
        servo_id, joint = self.ids[k], self.spec.joint_names[k]
        if status_return_level != 2:  # its indirect map is gone: it restarted
            self.stats["servo_restarts"] += 1
            return Fault("comm_error", joint, f"servo id {servo_id} restarted (a power dip?); reconnect the arm")
        if watchdog == BUS_WATCHDOG_FIRED:
            self.stats["bus_watchdog_faults"] += 1
            period = self.bus_watchdog_units * 20
            return Fault(
                "bus_watchdog",
                joint,
                f"servo id {servo_id}: its Bus Watchdog stopped it (no instruction for {period} ms); "
                "it ignores goals until disable() and enable()",
            )
        return None

    def _check_alert(self, k: int, servo_id: int, reply: proto.Packet) -> None:
        alert = reply.error & proto.ALERT_BIT
        if alert and servo_id not in self.hardware_errors:
            table = self.tables[k]
            self.hardware_errors[servo_id] = self.bus.read_value(servo_id, table["hardware_error_status"]) or 0x80
            self.stats["hardware_errors"] += 1
        elif not alert and servo_id in self.hardware_errors:
            del self.hardware_errors[servo_id]  # an error that is not latched went away

    def _write(self, targets: np.ndarray) -> np.ndarray:
        if self.hardware_errors and self._last_ticks is not None:
            ticks = [int(t) for t in self._last_ticks]  # a servo is in fault: hold, whatever was asked
            self.stats["writes_held_on_fault"] += 1
        else:
            # Inside the joint limits, or between the limit and where a joint rests outside them:
            # clamping a goal never moves it further than the command asked (SafeRobot caps the step).
            ticks = self._goal_ticks(targets)
        goal = self._goal_item
        self._guard(lambda: self.bus.sync_write_ints(goal.address, goal.size, self.ids, ticks, goal.signed))
        self.stats["cycles_written"] += 1
        return np.array([(t - CENTER_TICKS) * RAD_PER_TICK for t in ticks])  # = ticks_to_rad(ticks)

    def _set_tick_limits(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """The servos' position limits (ticks), and what ``_goal_ticks`` derives from them once."""
        self._tick_min, self._tick_max = lo, hi
        low = [math.ceil(CENTER_TICKS + a / RAD_PER_TICK - 1e-9) for a in self._position_min.tolist()]
        high = [math.floor(CENTER_TICKS + b / RAD_PER_TICK + 1e-9) for b in self._position_max.tolist()]
        self._goal_limits = list(zip(lo.tolist(), hi.tolist(), low, high))

    def _goal_ticks(self, targets: np.ndarray) -> list[int]:
        """``rad_to_ticks(targets, lo, hi)`` with [lo, hi] the joint limits widened to where each joint
        is, in Python floats per joint (five joints: numpy's per-call cost was most of the work).
        Bit for bit the same: ceil/floor of the widened limit in ticks is the limit's or the present
        tick's (both monotonic), and ceil/floor(2048 + ((t - 2048) * RAD_PER_TICK) / RAD_PER_TICK -+ 1e-9)
        is t for every integer |t| < 2**22 (checked over that range; larger ones take the formula)."""
        present = self._last_ticks or [None] * len(self.ids)
        out = []
        for x, (tmin, tmax, lo, hi), p in zip(targets.tolist(), self._goal_limits, present):
            if p is not None:
                if -EXACT_TICKS < p < EXACT_TICKS:
                    p_lo = p_hi = p
                else:
                    rad = (p - CENTER_TICKS) * RAD_PER_TICK
                    p_lo = math.ceil(CENTER_TICKS + rad / RAD_PER_TICK - 1e-9)
                    p_hi = math.floor(CENTER_TICKS + rad / RAD_PER_TICK + 1e-9)
                lo = p_lo if p_lo < lo else lo
                hi = p_hi if p_hi > hi else hi
            low = tmin if tmin > lo else lo
            high = tmax if tmax < hi else hi
            high = low if high < low else high
            t = round(CENTER_TICKS + x / RAD_PER_TICK)
            out.append(int(low if t < low else high if t > high else t))
        return out

    def _sync_write_value(self, name: str, values: dict[int, int]) -> None:
        item = self.tables[0][name]  # every X-series model has these items at the same address
        self.bus.sync_write_value(item, values)

    # ---- faults ----------------------------------------------------------------------------------
    def _faults(self) -> list[Fault]:
        out = []
        for servo_id, bits in sorted(self.hardware_errors.items()):
            joint = self.spec.joint_names[self.ids.index(servo_id)]
            kinds = {FAULT_KINDS[flag] for flag in FAULT_KINDS if bits & flag} or {"hardware_error"}
            detail = f"servo id {servo_id}: {', '.join(hardware_error_names(bits)) or 'alert'} (status {bits:#04x})"
            out.extend(Fault(kind, joint, detail) for kind in sorted(kinds))
        return out

    def _hardware_error_text(self) -> str:
        return "; ".join(
            f"servo {self.joint_label(i)} reports {', '.join(hardware_error_names(b)) or 'a hardware error'}"
            for i, b in sorted(self.hardware_errors.items())
        )

    def clear_faults(self) -> None:
        """Reboot every servo in fault (the only way out of a shutdown), then re-read them. The arm is
        limp afterwards: call ``disable()``/``enable()`` (or enable from INACTIVE) to hold again."""
        with self._io_lock:
            for servo_id in sorted(self.hardware_errors):
                self._guard(lambda i=servo_id: self.bus.reboot(i))
            self.hardware_errors.clear()
            time.sleep(0.05)  # a servo takes a moment to come back from a reboot
            for servo_id, table in zip(self.ids, self.tables):
                bits = self._guard(lambda i=servo_id, t=table: self.bus.read_value(i, t["hardware_error_status"]))
                if bits:
                    self.hardware_errors[servo_id] = bits
            self._guard(self._map_state_block)  # RAM: a reboot cleared the indirect map
