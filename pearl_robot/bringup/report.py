"""The doctor's report as text for a terminal."""

from __future__ import annotations

from pearl_robot.bringup.doctor import DoctorReport

MARKS = {"ok": "ok   ", "warn": "WARN ", "error": "ERROR"}


def render(report: DoctorReport) -> str:
    d = report.to_dict()
    lines = [f"pearl-robot doctor: {d['device']} ({d['robot_id']}, {d['baudrate']} baud)", "", "baud scan:"]
    for row in d["baud_scan"]:
        lines.append(f"  {row['baud']:>8}: " + (", ".join(map(str, row["ids"])) or "-"))
    lines += ["", "servos:"]
    for servo_id, s in d["servos"].items():
        if not s["found"]:
            lines.append(f"  id {servo_id:>3} {s['joint'] or '':8s} not found (expected {s['expected_model']})")
            continue
        errors = ", ".join(s["hardware_error_names"]) or "none"
        delay = "?" if s["return_delay_us"] is None else f"{s['return_delay_us']:g} us"
        trip = d["round_trip_ms"].get(servo_id)
        timing = f"  ping p50 {trip['p50']:.2f} / p99 {trip['p99']:.2f} ms" if trip else ""
        lines.append(
            f"  id {servo_id:>3} {s['joint'] or '(extra)':8s} {s['model']} fw {s['firmware']} at {s['baud']}  "
            f"return delay {delay}  hardware error {errors}{timing}"
        )
    lines += ["", f"adapter: {d['adapter']['summary']}"]
    if d["stress"]:
        st = d["stress"]
        lines.append(
            f"stress: {st['cycles']} cycles, timeouts {st['timeouts_per_id']}, CRC errors {st['crc_errors']}, "
            f"late {st['late_replies']}; cycle p50 {st['cycle_ms_p50']:.2f} / p99 {st['cycle_ms_p99']:.2f} / "
            f"max {st['cycle_ms_max']:.2f} ms"
        )
    lines += ["", "findings:"]
    for f in report.findings:
        fixed = " [fixed]" if f.fixed else ""
        lines.append(f"  {MARKS[f.severity]} {f.what}{fixed}")
        if f.recommendation and f.severity != "ok" and not f.fixed:
            lines.append(f"        -> {f.recommendation}")
    if report.changes:
        lines += ["", "changed:"] + [f"  {c.describe()}" for c in report.changes]
    errors = sum(f.severity == "error" and not f.fixed for f in report.findings)
    lines += ["", "no errors" if not errors else f"{errors} error(s)"]
    return "\n".join(lines)
