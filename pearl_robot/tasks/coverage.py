"""Whether an identified arm lies inside what an arm-dynamics family samples.

The family draws each ``*_scale`` field as centre x a factor in its range and every other field as
centre + an offset in its range (``ArmDynamicsFamily.sample_tasks``); a field without a range is the
centre's for every task. An identified arm outside those intervals is one meta-training never saw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from pearl_robot.robot.dynamics import ArmDynamics

# family range key -> ArmDynamics field, for the fields that are not ``<key>_scale``
OFFSET_FIELDS = {"payload": "payload_mass_kg", "latency": "latency_s"}
TOLERANCE = 1e-6


def _range_key(field: str, ranges: dict[str, tuple[float, float]]) -> str | None:
    for key in ranges:
        if field in (f"{key}_scale", OFFSET_FIELDS.get(key)):
            return key
    return None


def outside_ranges(
    arm: ArmDynamics,
    center: ArmDynamics,
    ranges: dict[str, tuple[float, float]],
    joint_names: Sequence[str],
) -> list[str]:
    """One line per identified value the family never samples: which parameter, its interval, how far."""
    findings = []
    for field in dataclasses.fields(ArmDynamics):
        name = field.name
        if name == "extra":
            continue
        scale = name.endswith("_scale")
        key = _range_key(name, ranges)
        lo, hi = ranges[key] if key else ((1.0, 1.0) if scale else (0.0, 0.0))
        value = np.atleast_1d(np.asarray(getattr(arm, name), dtype=float))
        middle = np.atleast_1d(np.asarray(getattr(center, name), dtype=float))
        value, middle = np.broadcast_arrays(value, middle)
        low, high = (middle * lo, middle * hi) if scale else (middle + lo, middle + hi)
        for j in range(value.size):
            v, a, b = float(value.flat[j]), float(low.flat[j]), float(high.flat[j])
            slack = TOLERANCE * max(1.0, abs(a), abs(b))
            if a - slack <= v <= b + slack:
                continue
            label = f"{name}[{joint_names[j]}]" if value.size > 1 and j < len(joint_names) else name
            edge = a if v < a else b
            side = "below" if v < a else "above"
            gap = f"x{v / edge:.3g} of that end" if scale and edge > 0 else f"by {abs(v - edge):.3g}"
            what = f"the family's range [{a:.3g}, {b:.3g}]" if key else f"the family's fixed value {a:.3g} (not varied)"
            findings.append(f"{label} = {v:.3g} lies {side} {what}, {gap}")
    return findings
