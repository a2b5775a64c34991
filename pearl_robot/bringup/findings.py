"""What a bring-up check concludes: findings (severity + recommendation) and changes it made."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["ok", "warn", "error"]


@dataclass
class Finding:
    severity: Severity
    what: str
    recommendation: str = ""
    servo_id: int | None = None
    fixed: bool = False  # a fix (``--fix``, a reboot) resolved it in this run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Change:
    """One thing a bring-up command changed, checked by reading it back."""

    item: str  # control table item, "reboot" or "latency_timer_ms"
    before: Any
    after: Any
    servo_id: int | None = None
    eeprom: bool = False  # a write to EEPROM (flash wears: written only where it differed)
    note: str = ""

    def describe(self) -> str:
        who = f"id {self.servo_id}: " if self.servo_id is not None else ""
        text = f"{who}{self.item} {self.before} -> {self.after}"
        return f"{text} ({self.note})" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "description": self.describe()}


def exit_code(findings: list[Finding]) -> int:
    """0 when no finding is an unresolved error, 1 otherwise."""
    return int(any(f.severity == "error" and not f.fixed for f in findings))
