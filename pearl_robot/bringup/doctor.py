"""``Doctor``: bring-up diagnosis of a servo bus, each check a finding with a recommendation.

The protocol is the hardware YAML's ``bus.protocol`` (``Link.protocol``: Dynamixel or Feetech). In order:
a broadcast-ping scan at every baud rate of the protocol (the arm's first) compared with the hardware
YAML; each servo's Return Delay Time, error status and torque (a Dynamixel hardware error is cleared by
a REBOOT, done only when ``confirm`` agrees; a Feetech servo has none: power-cycle it); the adapter's
latency timer; ping round trips
per servo and their lateness (time beyond wire time + Return Delay Time); a sync-read stress test of
the state block at the deadlines the control loop uses, without retries. Findings describe the bus as
found; with ``fix`` the safe ones are applied afterwards (Return Delay Time 0, on Feetech through the
Lock register so that it survives a power cycle; latency timer 1 ms), each a ``Change`` read back, and
marked ``fixed``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pearl_robot.bringup import eeprom
from pearl_robot.bringup.findings import Change, Finding, exit_code
from pearl_robot.bringup.link import Link, ScanResult, scan
from pearl_robot.bringup.servos import ServoReport, from_scan, inspect
from pearl_robot.bringup.timing import RoundTrip, StressResult, round_trip, stress
from pearl_robot.dynamixel.adapter import AdapterInfo, inspect_adapter, set_low_latency
from pearl_robot.robot.servo_arm import MAX_LATENESS_SHARE
from pearl_robot.robot.spec import RobotSpec
from pearl_robot.servo_bus import CommError

LOSS_ERROR_RATE = 0.01  # more status packets lost than this in the stress test is an error


@dataclass(frozen=True)
class DoctorSettings:
    cycles: int = 200  # sync reads in the stress test
    pings: int = 20  # pings per servo for the round trip
    scan_wait_s: float | None = None  # broadcast-ping wait per baud rate (None: the bus's default)
    ping_margin_ms: float = 100.0  # round-trip pings wait this long: late answers are measured, not lost
    fix: bool = False
    sysfs_root: str | Path = "/sys"


@dataclass
class DoctorReport:
    link: Link
    spec: RobotSpec
    adapter: AdapterInfo
    scan: list[ScanResult]
    servos: dict[int, ServoReport]
    round_trips: dict[int, RoundTrip] = field(default_factory=dict)
    stress: StressResult | None = None
    findings: list[Finding] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return exit_code(self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.link.device,
            "robot_id": self.spec.robot_id,
            "baudrate": self.link.baudrate,
            "baud_scan": [{"baud": r.baud, "ids": list(r.found), "crc_errors": r.crc_errors} for r in self.scan],
            "servos": {str(i): s.to_dict() for i, s in self.servos.items()},
            "adapter": self.adapter.to_dict(),
            "round_trip_ms": {str(i): rt.to_dict() for i, rt in self.round_trips.items()},
            "stress": self.stress.to_dict() if self.stress else None,
            "findings": [f.to_dict() for f in self.findings],
            "fixed": [c.to_dict() for c in self.changes],
            "eeprom_writes": sum(c.eeprom for c in self.changes),
            "exit_code": self.exit_code,
        }


class Doctor:
    def __init__(self, link: Link, spec: RobotSpec, settings: DoctorSettings, confirm: Callable[[str], bool]) -> None:
        self.link, self.spec, self.settings, self.confirm = link, spec, settings, confirm
        self._return_delay: dict[int | None, Finding] = {}
        self._adapter = Finding("ok", "")

    def run(self) -> DoctorReport:
        s, link = self.settings, self.link
        adapter = inspect_adapter(link.device, sysfs_root=s.sysfs_root)
        expected = [j.servo_id for j in self.spec.joints]
        results = scan(link, link.scan_order(), s.scan_wait_s, confirm_ids=expected)
        servos = from_scan(self.spec, results, link.baudrate, link.protocol)
        report = DoctorReport(link, self.spec, adapter, results, servos)
        report.findings += self._scan_findings(report.servos)
        for baud, group in self._by_baud(report.servos).items():
            with link.open(baud, margin_ms=s.ping_margin_ms) as bus:
                for servo in group:
                    try:
                        inspect(bus, servo)
                    except CommError as exc:
                        report.findings.append(
                            Finding(
                                "error",
                                f"id {servo.servo_id} answers a ping but not reads: {exc}",
                                "check cables and power",
                                servo.servo_id,
                            )
                        )
                        continue
                    report.findings += self._hardware_error(bus, servo, report.changes)
        self._return_delay = self._return_delay_findings(report.servos)
        self._adapter = self._adapter_finding(adapter)
        report.findings += [*self._return_delay.values(), self._adapter]
        arm = [sv for sv in report.servos.values() if sv.expected and sv.baud == link.baudrate and sv.table]
        if arm:
            report.round_trips, report.stress = self._timing(arm)
            report.findings += self._timing_findings(report)
        if s.fix:
            self._fix(report)
        return report

    # ---- the scan ----------------------------------------------------------------------------------
    def _by_baud(self, servos: dict[int, ServoReport]) -> dict[int, list[ServoReport]]:
        groups: dict[int, list[ServoReport]] = {}
        for servo in servos.values():
            if servo.baud is not None:
                groups.setdefault(servo.baud, []).append(servo)
        return groups

    def _scan_findings(self, servos: dict[int, ServoReport]) -> list[Finding]:
        link, out = self.link, []
        protocol = link.protocol
        setup = f"connect it alone and run {link.command('setup-servo')}"
        for sv in servos.values():
            name = f"id {sv.servo_id}" + (f" ({sv.joint})" if sv.joint else "")
            if sv.expected and not sv.found:
                out.append(
                    Finding(
                        "error",
                        f"{name} does not answer at any baud rate",
                        (
                            f"check its cable and power; a new servo answers as id {protocol.factory_id} at "
                            f"{protocol.factory_baud}: {setup} "
                            f"--id {sv.servo_id} --baud {link.baudrate}"
                        ),
                        sv.servo_id,
                    )
                )
                continue
            if not sv.expected:
                out.append(
                    Finding(
                        "warn",
                        f"id {sv.servo_id} ({sv.model}) answers at {sv.baud} but is not in {self.spec.source.name}",
                        "add it to the hardware YAML or give it an id of the arm",
                        sv.servo_id,
                    )
                )
                continue
            if sv.baud != link.baudrate:
                out.append(
                    Finding(
                        "error",
                        f"{name} answers at {sv.baud}, not at the arm's {link.baudrate}",
                        f"{setup} --id {sv.servo_id} --baud {link.baudrate}",
                        sv.servo_id,
                    )
                )
            if sv.model != sv.expected_model:
                out.append(
                    Finding(
                        "error",
                        f"{name} is a {sv.model}, the YAML says {sv.expected_model}",
                        "fit the servo the YAML names, or correct the YAML",
                        sv.servo_id,
                    )
                )
        expected = [sv for sv in servos.values() if sv.expected]
        if all(sv.baud == link.baudrate and sv.model == sv.expected_model for sv in expected):
            out.insert(
                0,
                Finding(
                    "ok",
                    f"all {len(expected)} servos of {self.spec.robot_id} answer at "
                    f"{link.baudrate} with the models the YAML names",
                ),
            )
        return out

    # ---- per servo -----------------------------------------------------------------------------------
    def _hardware_error(self, bus: Any, sv: ServoReport, changes: list[Change]) -> list[Finding]:
        if not sv.hardware_error:
            return []
        protocol = sv.protocol
        names = ", ".join(protocol.error_names(sv.hardware_error)) or f"bits {sv.hardware_error:#04x}"
        finding = Finding(
            "error",
            f"id {sv.servo_id} reports a hardware error: {names}",
            f"remove the cause (load, heat, supply voltage, wiring), {protocol.clear_error_advice}",
            sv.servo_id,
        )
        if not protocol.can_reboot:
            return [finding]
        if not self.confirm(f"id {sv.servo_id} reports a hardware error ({names}); reboot it to clear the error?"):
            finding.recommendation += " (not rebooted: not confirmed)"
            return [finding]
        protocol.reboot(bus, sv.servo_id)
        eeprom.wait_for(bus, protocol, sv.servo_id)
        before, sv.hardware_error = sv.hardware_error, protocol.read(bus, sv.servo_id, sv.table, protocol.error_item)
        sv.torque_enabled = bool(protocol.read(bus, sv.servo_id, sv.table, "torque_enable"))
        changes.append(Change("hardware_error_status", before, sv.hardware_error, sv.servo_id, note="rebooted"))
        finding.fixed = not sv.hardware_error
        if not finding.fixed:
            finding.what += " (still there after a reboot)"
        return [finding]

    def _return_delay_findings(self, servos: dict[int, ServoReport]) -> dict[int | None, Finding]:
        """id -> its finding for each servo with a Return Delay Time; None -> ok when there is none."""
        out: dict[int | None, Finding] = {
            sv.servo_id: Finding(
                "warn",
                f"id {sv.servo_id}: Return Delay Time {sv.return_delay_us:g} us before every reply",
                f"set it to 0 (reply at once): {self.link.command('doctor')} --fix",
                sv.servo_id,
            )
            for sv in servos.values()
            if sv.return_delay_time
        }
        if not out and any(sv.return_delay_time is not None for sv in servos.values()):
            out[None] = Finding("ok", "Return Delay Time 0 on every servo")
        return out

    def _adapter_finding(self, adapter: AdapterInfo) -> Finding:
        advice = adapter.advice()
        if advice:
            return Finding(
                "warn",
                f"{adapter.summary()}: status packets can arrive up to {adapter.latency_timer_ms} ms late",
                f"set it to 1 ms: {advice}; or {self.link.command('doctor')} --fix",
            )
        return Finding("ok", adapter.summary())

    # ---- timing ------------------------------------------------------------------------------------------
    def _timing(self, arm: list[ServoReport]) -> tuple[dict[int, RoundTrip], StressResult]:
        link, s = self.link, self.settings
        protocol, trips = link.protocol, {}
        with link.open(margin_ms=s.ping_margin_ms) as bus:
            for sv in arm:
                delay = sv.return_delay_us or 0.0
                trips[sv.servo_id] = round_trip(bus, sv.servo_id, delay, s.pings, ping_bytes=protocol.ping_bytes)
        worst_delay = max(sv.return_delay_us or 0.0 for sv in arm)
        with link.open(retries=0, return_delay_us=worst_delay) as bus:
            ids = [sv.servo_id for sv in arm]
            with contextlib.suppress(CommError):
                bus.measure_latency(ids)  # deadlines as SerialRobot sets them: what a control loop sees
            result = stress(bus, ids, s.cycles, block=protocol.state_block(self.spec))
        return trips, result

    def _timing_findings(self, report: DoctorReport) -> list[Finding]:
        link, out = self.link, []
        budget_ms = 2 * link.latency_timer_ms
        lateness = {i: rt.to_dict() for i, rt in report.round_trips.items() if rt.samples_s}
        if lateness:
            worst = max(lateness, key=lambda i: lateness[i]["lateness_p50"])
            p50, p99 = (max(0.0, lateness[worst][k]) for k in ("lateness_p50", "lateness_p99"))
            what = f"round trip: replies {p50:.2f} ms late (p50; p99 {p99:.2f} ms, id {worst}) beyond wire time"
            refused_ms = MAX_LATENESS_SHARE * self.spec.period_s * 1e3
            if p99 > refused_ms:
                out.append(
                    Finding(
                        "error",
                        what + f": more than a {self.spec.control_rate_hz:g} Hz cycle has room for "
                        f"({refused_ms:g} ms); SerialRobot refuses to connect",
                        "lower the adapter's latency timer to 1 ms (see the adapter finding)",
                    )
                )
            elif p50 > budget_ms + link.timeout_margin_ms:
                out.append(
                    Finding(
                        "warn",
                        what + f", more than the hardware file assumes ({budget_ms + link.timeout_margin_ms:g} ms): "
                        "SerialRobot measures it and waits, but every control cycle loses that time",
                        "lower the adapter's latency timer to 1 ms, or raise timeout_margin_ms "
                        f"(serial:{link.device}?timeout_margin_ms=...)",
                    )
                )
            elif p99 > budget_ms + 1.0:
                out.append(
                    Finding("warn", what, "lower the adapter's latency timer to 1 ms; check the USB hub/host load")
                )
            else:
                out.append(Finding("ok", what))
        failed = {i: rt.failures for i, rt in report.round_trips.items() if rt.failures}
        if failed:
            out.append(Finding("warn", f"round trip: pings unanswered {failed}", "check cables and power"))
        st = report.stress
        if st is None:
            return out
        d = st.to_dict()
        cycle = f"cycle p50 {d['cycle_ms_p50']:.2f} ms, p99 {d['cycle_ms_p99']:.2f} ms, max {d['cycle_ms_max']:.2f} ms"
        lost = {i: n for i, n in st.timeouts_per_id.items() if n}
        if lost or d["crc_errors"]:
            severity = "error" if st.loss_rate > LOSS_ERROR_RATE else "warn"
            out.append(
                Finding(
                    severity,
                    f"stress: {st.timeouts} of {st.cycles * len(st.ids)} status packets lost or "
                    f"damaged (per id {lost}), {d['crc_errors']} CRC errors; {cycle}",
                    "check connectors, cable length and the supply; CRC errors point to noise or a baud "
                    "rate the adapter cannot hold",
                )
            )
        else:
            out.append(Finding("ok", f"stress: {st.cycles} sync reads of {len(st.ids)} servos, none lost; {cycle}"))
        if d["late_replies"]:
            out.append(
                Finding(
                    "warn",
                    f"stress: {d['late_replies']} status packets arrived after their deadline",
                    "lower the adapter's latency timer to 1 ms, or raise timeout_margin_ms",
                )
            )
        period_ms = self.spec.period_s * 1e3
        if d["cycle_ms_p99"] > period_ms / 2:
            out.append(
                Finding(
                    "warn",
                    f"stress: a state read takes {d['cycle_ms_p99']:.1f} ms (p99) of the "
                    f"{period_ms:g} ms control period",
                    "set Return Delay Time 0 and the latency timer 1 ms",
                )
            )
        return out

    # ---- fixes ------------------------------------------------------------------------------------------
    def _fix(self, report: DoctorReport) -> None:
        slow = {i: report.servos[i] for i in self._return_delay if i is not None}
        for baud, group in self._by_baud(slow).items():
            with self.link.open(baud, margin_ms=self.settings.ping_margin_ms) as bus:
                for sv in group:
                    self._fix_return_delay(bus, sv, self._return_delay[sv.servo_id], report.changes)
        if report.adapter.advice():
            with self.link.open() as bus:
                done, message = set_low_latency(
                    self.link.device, port=getattr(bus.transport, "port", None), sysfs_root=self.settings.sysfs_root
                )
            self._adapter.fixed = done
            if done:
                report.changes.append(Change("latency_timer_ms", report.adapter.latency_timer_ms, 1, note=message))
            else:
                self._adapter.recommendation = message

    def _fix_return_delay(self, bus: Any, sv: ServoReport, finding: Finding, changes: list[Change]) -> None:
        protocol = sv.protocol
        try:
            if not eeprom.torque_off(bus, protocol, sv.servo_id, sv.table, self.confirm):
                finding.recommendation += " (not fixed: torque is on; --yes turns it off first)"
                return
            change = eeprom.write_if_different(bus, protocol, sv.servo_id, sv.table, "return_delay_time", 0)
        except CommError as exc:
            finding.recommendation += f" (not fixed: {exc})"
            return
        if change is not None:
            changes.append(Change("return_delay_us", sv.return_delay_us, 0.0, sv.servo_id, eeprom=True))
        sv.return_delay_time = 0
        finding.fixed = True
