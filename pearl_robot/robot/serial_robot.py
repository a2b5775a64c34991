"""SerialRobot: an arm of Dynamixel X-series servos on one Protocol 2.0 bus (``serial:DEVICE``).

Per control cycle exactly one bus transaction each way: ``read()`` is one SYNC READ of present
current (or load), velocity and position for every joint (addresses 126-135, contiguous on X-series),
``write()`` one SYNC WRITE of Goal Position (116). This backend works in *raw* angles, the servo's own
(its horn may be mounted at any angle, turning either way)::

    raw_rad = (ticks - 2048) * 2*pi/4096

The arm's joint angles come from the calibration file (``pearl-robot calibrate joints``), applied by
``CalibratedRobot`` on every backend alike: ``joint = direction * (raw - offset_rad)``. So
``needs_calibration`` is set: ``open_robot("serial:...")`` wraps this backend in its calibration and
builds it on ``raw_spec(spec, calibration)``; without a valid calibration the arm connects and reads
raw angles (for the calibration procedure) but refuses to enable.

Lifecycle on the wire:
- ``connect()``: open the port, make every servo answer every instruction (Status Return Level 2),
  ping each id and check its model against the YAML, torque off, position control mode, Return
  Delay Time as configured (EEPROM is written only where it differs: flash wears out);
- ``enable()``: Goal Position := Present Position, then torque on, so the arm never jumps;
- ``disable()``: torque off; ``close()``: torque off (``on_close="hold"`` keeps torque and holds).

Faults: a damaged, partial or missing status packet is retried (``retries``) and counted in
``stats``; past the budget, or when the device vanishes, the arm is told to hold its last measured
position (where the port still works), the robot enters ERROR and ``RobotFault`` says what happened.
A servo whose status packets carry the alert bit is asked for its Hardware Error Status; the fault
(overload, overheating, voltage, hardware_error) is in every state's ``faults`` until it is cleared,
and from then on this backend only ever commands the present position (``clear_faults()`` reboots
the faulted servos once the cause is gone).
"""

from __future__ import annotations

import collections
import struct
import time

import numpy as np

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.bus import CommError, DynamixelBus, PortError, SerialTransport, Transport
from pearl_robot.dynamixel.control_table import (
    CENTER_TICKS,
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
)
from pearl_robot.errors import ConfigError, RobotFault
from pearl_robot.robot.base import Fault, Robot, RobotState
from pearl_robot.robot.spec import RobotSpec

# Hardware Error Status bit -> the fault kind SafeRobot stops on
FAULT_KINDS = {
    HardwareError.OVERLOAD: "overload",
    HardwareError.OVERHEATING: "overheating",
    HardwareError.INPUT_VOLTAGE: "voltage",
    HardwareError.ELECTRICAL_SHOCK: "hardware_error",
    HardwareError.MOTOR_ENCODER: "hardware_error",
}


def state_items(table: ControlTable, read_effort: bool) -> list[Field]:
    """The items one state read covers: present current (or load on models without current
    sensing), velocity and position; contiguous on X-series (126-135)."""
    names = ["present_velocity", "present_position"]
    if read_effort:
        names.insert(0, "present_current" if "present_current" in table else "present_load")
    return [table[n] for n in names]


def _block_struct(items: list[Field]) -> struct.Struct:
    """Little-endian layout of contiguous items (pad bytes for any gap)."""
    fmt, at = "<", items[0].address
    for f in items:
        code = {1: "b", 2: "h", 4: "i"}[f.size]
        fmt += "x" * (f.address - at) + (code if f.signed else code.upper())
        at = f.end
    return struct.Struct(fmt)


class SerialRobot(Robot):
    realtime = True
    needs_calibration = True  # open_robot applies calibration/<robot-id>.yaml (CalibratedRobot)

    def __init__(
        self,
        spec: RobotSpec,
        device: str,
        *,
        baudrate: int | None = None,
        latency_timer_ms: float | None = None,
        on_close: str = "torque_off",
        fault_action: str = "hold",
        retries: int = 3,
        timeout_margin_ms: float = 5.0,
        return_delay_us: float | None = 0.0,
        read_effort: bool = True,
        transport: Transport | None = None,
    ) -> None:
        """``spec`` in raw angles (``raw_spec(spec, calibration)`` under a calibration; the hardware spec
        itself reads raw angles, for the calibration procedure). ``return_delay_us`` is set in every servo
        at connect (None leaves the servos as they are); ``transport`` replaces the serial port (tests)."""
        super().__init__(spec)
        if on_close not in ("torque_off", "hold"):
            raise ValueError(f"on_close must be 'torque_off' or 'hold', got {on_close!r}")
        if fault_action not in ("hold", "torque_off"):
            raise ValueError(f"fault_action must be 'hold' or 'torque_off', got {fault_action!r}")
        self.device = device
        self.baudrate = int(baudrate or spec.bus.baudrate)
        self.latency_timer_ms = float(spec.bus.latency_timer_ms if latency_timer_ms is None else latency_timer_ms)
        self.on_close = on_close
        self.fault_action = fault_action
        self.retries = retries
        self.timeout_margin_ms = timeout_margin_ms
        self.return_delay_us = return_delay_us
        self.read_effort = read_effort
        self._transport = transport
        self.ids = [j.servo_id for j in spec.joints]
        self.tables: list[ControlTable] = []
        for i, joint in enumerate(spec.joints):
            try:
                self.tables.append(control_table(joint.model))
            except KeyError as exc:
                raise ConfigError(spec.source, f"joints[{i}].model", str(exc.args[0])) from None
        self._effort_scale = np.array([self._effort_unit(t) for t in self.tables])
        self._tick_min = np.zeros(spec.num_joints)
        self._tick_max = np.full(spec.num_joints, 4095.0)
        self._state_items = [state_items(t, read_effort) for t in self.tables]
        self._state_structs = [_block_struct(items) for items in self._state_items]
        blocks = {(items[0].address, items[-1].end - items[0].address) for items in self._state_items}
        # one SYNC READ when every model lays the state out alike, else one BULK READ
        self._state_block: tuple[int, int] | None = blocks.pop() if len(blocks) == 1 else None
        self._goal_item = self.tables[0]["goal_position"]  # the same address on every X-series model
        self.bus: DynamixelBus | None = None
        self.bus_stats: collections.Counter[str] = collections.Counter()
        self.stats: collections.Counter[str] = collections.Counter()
        self.hardware_errors: dict[int, int] = {}  # servo id -> Hardware Error Status bits
        self._last_ticks: np.ndarray | None = None
        self.last_error: str | None = None

    @classmethod
    def from_address(cls, address: str, spec: RobotSpec, **options: object) -> SerialRobot:
        return cls(spec, address, **options)

    # ---- configuration helpers ----------------------------------------------------------------
    def _effort_unit(self, table: ControlTable) -> float:
        """SI per raw unit of the effort item: amperes (present current) or a load fraction."""
        name = "present_current" if "present_current" in table else "present_load"
        return table[name].scale

    def joint_label(self, servo_id: int) -> str:
        return f"{self.spec.joint_names[self.ids.index(servo_id)]} (id {servo_id})"

    # ---- units -------------------------------------------------------------------------------------
    def ticks_to_rad(self, ticks: np.ndarray) -> np.ndarray:
        """Raw angle: the servo's own, 0 at its centre tick (2048)."""
        return (np.asarray(ticks, dtype=float) - CENTER_TICKS) * RAD_PER_TICK

    def rad_to_ticks(self, rad: np.ndarray) -> np.ndarray:
        ticks = CENTER_TICKS + np.asarray(rad, dtype=float) / RAD_PER_TICK
        return np.rint(np.clip(ticks, self._tick_min, self._tick_max)).astype(np.int64)

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
        try:
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
        for i, (servo_id, table) in enumerate(zip(self.ids, self.tables)):
            try:
                model, firmware, error = bus.ping(servo_id)
            except CommError:
                raise RobotFault(
                    f"{self.device}: servo {self.joint_label(servo_id)} does not answer a ping; "
                    f"check power, wiring, its id and the baud rate ({self.baudrate})"
                ) from None
            if model != table.model_number:
                raise ConfigError(
                    self.spec.source,
                    f"joints[{i}].model",
                    f"servo id {servo_id} reports model number {model}, but {table.model} is {table.model_number}",
                )
        self._sync_write_value("torque_enable", dict.fromkeys(self.ids, 0))
        for servo_id, table in zip(self.ids, self.tables):
            mode = bus.read_value(servo_id, table["operating_mode"])
            if mode not in POSITION_MODES:
                bus.write_value(servo_id, table["operating_mode"], int(OperatingMode.POSITION))
                self.stats["eeprom_writes"] += 1
            if self.return_delay_us is not None:
                wanted = int(round(self.return_delay_us * 1e-6 / SECONDS_PER_RETURN_DELAY_UNIT))
                if bus.read_value(servo_id, table["return_delay_time"]) != wanted:
                    bus.write_value(servo_id, table["return_delay_time"], wanted)
                    self.stats["eeprom_writes"] += 1
            self.hardware_errors.pop(servo_id, None)
            bits = bus.read_value(servo_id, table["hardware_error_status"])
            if bits:
                self.hardware_errors[servo_id] = bits
        delays = [bus.read_value(i, t["return_delay_time"]) for i, t in zip(self.ids, self.tables)]
        bus.return_delay_s = max(delays) * SECONDS_PER_RETURN_DELAY_UNIT
        lo = [bus.read_value(i, t["min_position_limit"]) for i, t in zip(self.ids, self.tables)]
        hi = [bus.read_value(i, t["max_position_limit"]) for i, t in zip(self.ids, self.tables)]
        self._tick_min, self._tick_max = np.array(lo, dtype=float), np.array(hi, dtype=float)
        self._read_ticks()

    def _enable(self) -> None:
        self._guard(self._enable_on_bus)

    def _enable_on_bus(self) -> None:
        if self.hardware_errors:
            raise RobotFault(
                f"cannot enable: {self._hardware_error_text()}; call clear_faults() once the cause is gone"
            )
        ticks, _, _ = self._read_ticks()
        self._sync_write_value("goal_position", dict(zip(self.ids, ticks.tolist())))
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

    def _disable(self) -> None:
        self._guard(self._torque_off)

    def _torque_off(self) -> None:
        """Torque off everywhere, confirmed by reading it back (a SYNC WRITE has no reply)."""
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
            elif self._last_ticks is not None:
                self._sync_write_value("goal_position", dict(zip(self.ids, self._last_ticks.tolist())))
        except RobotFault:
            self.stats["close_errors"] += 1  # the device is gone: nothing left to tell it
        finally:
            bus.close()
            self.bus = None

    # ---- I/O -------------------------------------------------------------------------------------
    def _read(self) -> RobotState:
        ticks, velocity, effort = self._guard(self._read_ticks)
        faults = tuple(self._faults())
        return RobotState(
            position=self.ticks_to_rad(ticks),
            velocity=velocity * RAD_S_PER_VELOCITY_UNIT,
            effort=None if effort is None else effort * self._effort_scale,
            timestamp=time.monotonic(),
            faults=faults,
        )

    def _write(self, targets: np.ndarray) -> np.ndarray:
        targets = np.clip(targets, self.spec.position_min, self.spec.position_max)
        if self.hardware_errors and self._last_ticks is not None:
            ticks = self._last_ticks.astype(np.int64)  # a servo is in fault: hold, whatever was asked
            self.stats["writes_held_on_fault"] += 1
        else:
            ticks = self.rad_to_ticks(targets)
        goal = self._goal_item
        self._guard(lambda: self.bus.sync_write_ints(goal.address, goal.size, self.ids, ticks.tolist(), goal.signed))
        self.stats["cycles_written"] += 1
        return self.ticks_to_rad(ticks)

    def _read_ticks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if self._state_block is not None:
            replies = self.bus.sync_read(*self._state_block, self.ids)
        else:
            requests = [(i, it[0].address, it[-1].end - it[0].address) for i, it in zip(self.ids, self._state_items)]
            replies = self.bus.bulk_read(requests)
        rows = []
        for k, servo_id in enumerate(self.ids):
            reply = replies[servo_id]
            alert = reply.error & proto.ALERT_BIT
            if alert and servo_id not in self.hardware_errors:
                table = self.tables[k]
                self.hardware_errors[servo_id] = self.bus.read_value(servo_id, table["hardware_error_status"]) or 0x80
                self.stats["hardware_errors"] += 1
            elif not alert and servo_id in self.hardware_errors:
                del self.hardware_errors[servo_id]  # an error that is not latched went away
            if reply.error & 0x7F:
                error = reply.status_error
                raise CommError(f"servo {self.joint_label(servo_id)} answered the state read with: {error}", [servo_id])
            rows.append(self._state_structs[k].unpack_from(reply.params))
        values = np.array(rows, dtype=float)  # columns: (effort,) velocity, position
        self.stats["cycles_read"] += 1
        ticks = values[:, -1]
        self._last_ticks = ticks.copy()
        return ticks, values[:, -2], values[:, 0] if self.read_effort else None

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

    def _guard(self, action):
        """Run a bus action; a lost bus makes the arm safe, enters ERROR and raises RobotFault."""
        if self.bus is None:
            raise RobotFault(f"{self.device}: the port is closed")
        try:
            return action()
        except (CommError, PortError) as exc:
            self.stats["comm_failures"] += 1
            self._safe_stop()
            reason = f"{self.device}: {exc}"
            self.fail(reason)
            told = "hold its last measured position" if self.fault_action == "hold" else "turn torque off"
            raise RobotFault(
                f"{reason}. The arm was told to {told} (where the bus still works); "
                "the robot is in ERROR: disable() or close() it"
            ) from exc

    def _safe_stop(self) -> None:
        try:
            if self.fault_action == "torque_off":
                self._sync_write_value("torque_enable", dict.fromkeys(self.ids, 0))
            elif self._last_ticks is not None:
                self._sync_write_value("goal_position", dict(zip(self.ids, self._last_ticks.astype(np.int64).tolist())))
            self.stats["safe_stops"] += 1
        except RobotFault:
            self.stats["safe_stop_failed"] += 1

    def stats_dict(self) -> dict[str, int]:
        """Robot-level counters and the bus's (retries, timeouts, crc_errors, ...)."""
        out = dict(self.stats)
        out.update({f"bus_{k}": v for k, v in self.bus_stats.items()})
        return out
