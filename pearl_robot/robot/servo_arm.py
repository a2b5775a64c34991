"""What every servo-bus arm backend shares, whatever the protocol (``SerialRobot``: Dynamixel Protocol
2.0; ``FeetechRobot``: Feetech SCS/STS): the adapter check, the round trip measured at connect and the
deadlines derived from it, stale-read flagging, the guard that makes the arm safe when the bus is lost,
and the counters.

A subclass calls ``_init_bus_options`` (``device``, ``ids``, ``baudrate``, ``latency_timer_ms``,
``low_latency``, ``fault_action`` and the other shared options, checked) and ``_load_tables``, and provides
``bus`` (a ``ServoBusBase``: ``measure_latency``, ``latency``, ``stats``), ``bus_stats``,
``stats``, ``adapter``, ``notices``, ``_latency``, ``_last_ticks``, ``_last_read``, ``_last_read_at``,
``_stale_streak``, ``_read_retries``, and the protocol's own ``_sync_read_state``, ``_decode``,
``_sync_write_value``, ``_enable_on_bus`` and ``_torque_off``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pearl_robot.dynamixel.adapter import inspect_adapter, set_low_latency
from pearl_robot.errors import ConfigError, RobotFault
from pearl_robot.robot.base import Fault, Robot
from pearl_robot.servo_bus import CommError, PortError, SerialTransport

log = logging.getLogger(__name__)

STALE_READS_BEFORE_FAULT = 5  # state reads in a row without a fresh answer before the bus counts as lost
# Transport lateness beyond this share of the control period leaves no room for a cycle: refused.
MAX_LATENESS_SHARE = 0.6


class ServoBusRobot(Robot):
    """The protocol-neutral half of a servo-bus backend (see the module docstring)."""

    def _init_bus_options(
        self,
        device: str,
        *,
        baudrate: int | None,
        latency_timer_ms: float | None,
        on_close: str,
        fault_action: str,
        retries: int,
        timeout_margin_ms: float,
        return_delay_us: float | None,
        read_effort: bool,
        low_latency: bool,
        transport: Any,
    ) -> None:
        """Check and keep the options every servo-bus backend takes (after ``Robot.__init__``)."""
        if on_close not in ("torque_off", "hold"):
            raise ValueError(f"on_close must be 'torque_off' or 'hold', got {on_close!r}")
        if fault_action not in ("hold", "torque_off"):
            raise ValueError(f"fault_action must be 'hold' or 'torque_off', got {fault_action!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if timeout_margin_ms < 0:
            raise ValueError(f"timeout_margin_ms must be >= 0, got {timeout_margin_ms}")
        spec = self.spec
        self.device = device
        self.baudrate = int(baudrate or spec.bus.baudrate)
        self.latency_timer_ms = float(spec.bus.latency_timer_ms if latency_timer_ms is None else latency_timer_ms)
        self.on_close = on_close
        self.fault_action = fault_action
        self.retries = retries
        self.timeout_margin_ms = timeout_margin_ms
        self.return_delay_us = return_delay_us
        self.read_effort = read_effort
        self.low_latency = low_latency
        self._transport = transport
        self.ids = [j.servo_id for j in spec.joints]

    def _load_tables(self, control_table: Callable[[str], Any]) -> list[Any]:
        """Each joint's control table by its model name; an unknown model is a ConfigError naming the joint."""
        tables = []
        for i, joint in enumerate(self.spec.joints):
            try:
                tables.append(control_table(joint.model))
            except KeyError as exc:
                raise ConfigError(self.spec.source, f"joints[{i}].model", str(exc.args[0])) from None
        return tables

    def joint_label(self, servo_id: int) -> str:
        return f"{self.spec.joint_names[self.ids.index(servo_id)]} (id {servo_id})"

    def _note(self, text: str) -> None:
        self.notices.append(text)
        log.warning("%s: %s", self.device, text)

    def _check_adapter(self, transport: SerialTransport) -> None:
        """The USB adapter's latency timer: 1 ms where permitted, else one line saying what to run."""
        self.adapter = info = inspect_adapter(self.device)
        if info.latency_timer_ms is None or info.latency_timer_ms <= 1:
            return
        if self.low_latency:
            done, message = set_low_latency(self.device, port=transport.port)
            if done:
                self.adapter = inspect_adapter(self.device)
                self._note(message)
                return
        self._note(
            f"the USB adapter's latency timer is {info.latency_timer_ms} ms, so every reply comes up to "
            f"{info.latency_timer_ms} ms late; run: {info.advice()}"
        )

    def _measure_round_trip(self) -> None:
        """Ping every servo with a generous deadline and derive the deadlines from what came back. Too
        late for a cycle is refused only if a second measurement says so too: on a busy host one
        reply can be held up by the scheduler, an adapter that is too slow is slow every time."""
        bus = self.bus
        refused_s = MAX_LATENESS_SHARE * self.spec.period_s
        try:
            measured = bus.measure_latency(self.ids, pings=3)
            if measured.lateness_max_s > refused_s:
                measured = bus.measure_latency(self.ids, pings=3)
        except CommError as exc:
            raise RobotFault(self._no_answer_text(self.ids[0], exc, every=True)) from None
        late_ms = measured.lateness_max_s * 1e3
        if measured.lateness_max_s > refused_s:
            raise RobotFault(
                f"{self.device}: servos answer, but up to {late_ms:.1f} ms late: no room for a "
                f"{self.spec.control_rate_hz:g} Hz control cycle; {self._lateness_advice()}"
            )
        if late_ms > max(4.0, 2.0 * self.latency_timer_ms):
            self._note(
                f"replies come up to {late_ms:.1f} ms late (the hardware file assumes a "
                f"{self.latency_timer_ms:g} ms latency timer); deadlines follow the measurement "
                f"(to win the time back: {self._lateness_advice()})"
            )

    def _lateness_advice(self) -> str:
        info = self.adapter
        if info is not None and info.latency_timer_ms is not None and info.latency_timer_ms > 1:
            return f"the USB adapter's latency timer is {info.latency_timer_ms} ms: {info.advice()}"
        return (
            "check the USB adapter's latency timer (`pearl-robot doctor`), "
            "or widen the deadline with ?timeout_margin_ms=N"
        )

    def _no_answer_text(self, servo_id: int, exc: CommError, every: bool = False) -> str:
        """No reply at all, or replies that come late: say which, and what to check."""
        if exc.late_replies:
            who = "the servos answer" if every else f"servo {self.joint_label(servo_id)} answers"
            late = f", the last {exc.lateness_s * 1e3:.1f} ms after its instruction" if exc.lateness_s else ""
            return (
                f"{self.device}: {who}, but late ({exc.late_replies} replies after their deadline{late}); "
                f"{self._lateness_advice()}"
            )
        who = "no servo answers a ping" if every else f"servo {self.joint_label(servo_id)} does not answer a ping"
        return (
            f"{self.device}: {who} (no reply at all); check power, wiring, "
            f"{'the ids' if every else 'its id'} and the baud rate ({self.baudrate})"
        )

    def _enable(self) -> None:
        self._guard(self._enable_on_bus)

    def _disable(self) -> None:
        self._guard(self._torque_off)

    def _read_state(self) -> tuple[list[float], list[float], list[float] | None, list[Fault]]:
        """One state read; joints whose fresh answer did not come keep their last values, flagged."""
        missing: tuple[int, ...] = ()
        late = 0
        try:
            replies = self._sync_read_state(retries=self._read_retries)
        except CommError as exc:
            if self._last_read is None or self._stale_streak + 1 >= STALE_READS_BEFORE_FAULT:
                raise
            replies, missing, late = exc.partial, exc.missing_ids, exc.late_replies
        ticks, velocity, effort, faults, old = self._decode(replies)
        if not missing and not old:
            self._stale_streak = 0
            return ticks, velocity, effort, faults
        if self._stale_streak + 1 >= STALE_READS_BEFORE_FAULT:
            ids = ", ".join(map(str, sorted({*missing, *old})))
            raise CommError(f"servo id {ids}: {STALE_READS_BEFORE_FAULT} reads in a row without a fresh reply")
        self._stale_streak += 1
        self.stats["stale_reads"] += 1
        now = time.monotonic()
        for k, servo_id in enumerate(self.ids):
            if servo_id in missing or servo_id in old:
                why = "its reply answered an earlier read" if servo_id in old else "no fresh reply in time"
                age_ms = 1e3 * (now - self._last_read_at[k])
                detail = f"servo id {servo_id}: {why}; state {age_ms:.0f} ms old" + (f" ({late} late)" if late else "")
                faults.append(Fault("stale_read", self.spec.joint_names[k], detail))
        return ticks, velocity, effort, faults

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
                self._sync_write_value("goal_position", dict(zip(self.ids, [int(t) for t in self._last_ticks])))
            self.stats["safe_stops"] += 1
        except RobotFault:
            self.stats["safe_stop_failed"] += 1

    @property
    def bus_latency_ms(self) -> float | None:
        """The transport lateness measured at connect (round trip beyond wire time and return delay)."""
        bus = self.bus
        measured = bus.latency if bus is not None else self._latency
        return None if measured is None else measured.lateness_max_s * 1e3

    def stats_dict(self) -> dict[str, int]:
        """Robot-level counters and the bus's (retries, timeouts, crc_errors, ...)."""
        out = dict(self.stats)
        out.update({f"bus_{k}": v for k, v in self.bus_stats.items()})
        return out
