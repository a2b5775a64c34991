"""What system identification found, in figures a user (and ``bench sim2real``) can check: per-parameter
estimates with standard errors and bound flags, the latency, the trajectory RMS on the fitted and on the
held-out (validation) motion, and the encoder-noise floor it is judged against. ``SysidResult.to_dict``
is JSON-able; ``write_report`` draws the PNG."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pearl_robot.robot.dynamics import ArmDynamics

if TYPE_CHECKING:
    from pearl_robot.calibrate.sysid import Recording
    from pearl_robot.calibrate.sysid_fit import FitResult
    from pearl_robot.robot.spec import RobotSpec

VALIDATION_GOAL = 2.0  # validation RMS within this multiple of the noise floor
_AT_BOUND = 1e-3  # relative distance (log distance for scales) that counts as sitting at a bound


@dataclass(frozen=True)
class ParameterEstimate:
    name: str
    value: float
    stderr: float
    lower: float
    upper: float
    at_bound: str | None  # "lower", "upper" or None
    warn: bool  # at a bound that is a guess (not payload 0 or latency 0, which are physical)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "stderr": None if not np.isfinite(self.stderr) else self.stderr,
            "bounds": [self.lower, self.upper],
            "at_bound": self.at_bound,
        }


def estimates(fitted: FitResult, dynamics: ArmDynamics) -> list[ParameterEstimate]:
    """One estimate per fitted parameter (values from ``dynamics``: the latency as realized)."""
    out = []
    for p, value, stderr in zip(fitted.layout.parameters, fitted.values, fitted.stderr):
        if p.field == "latency_s":
            value = dynamics.latency_s
        if p.log_scale:
            near_lower = np.log(value / p.lower) <= _AT_BOUND * np.log(p.upper / p.lower)
            near_upper = np.log(p.upper / value) <= _AT_BOUND * np.log(p.upper / p.lower)
        else:
            span = p.upper - p.lower
            near_lower, near_upper = value - p.lower <= _AT_BOUND * span, p.upper - value <= _AT_BOUND * span
        at_bound = "lower" if near_lower else "upper" if near_upper else None
        warn = at_bound == "upper" or (at_bound == "lower" and not p.physical_lower)
        out.append(ParameterEstimate(p.name, float(value), float(stderr), p.lower, p.upper, at_bound, warn))
    return out


@dataclass
class SysidResult:
    """``identify``'s answer. Trajectory figures are RMS over the arm joints, in radians; ``recording``
    (still hold, fit part, validation part in that order) and the replays are kept for the report."""

    dynamics: ArmDynamics
    parameters: list[ParameterEstimate]
    latency_estimated: bool
    latency_scan_s: float | None
    rms_before_rad: float
    rms_after_rad: float
    validation_rms_before_rad: float
    validation_rms_rad: float
    noise_floor_rad: float
    evaluations: int
    jacobians: int
    optimizer_status: str
    missed_deadlines: int  # control periods the recording loop missed: its timing is then not the replay's
    period_error_max_s: float  # the latest the recording loop woke up
    seconds: float
    recording: Recording = field(repr=False)
    fit_periods: int
    still_periods: int
    simulated_before: np.ndarray = field(repr=False)
    simulated_after: np.ndarray = field(repr=False)

    @property
    def latency_s(self) -> float:
        return self.dynamics.latency_s

    @property
    def validation_ratio(self) -> float:
        """Validation RMS as a multiple of the noise floor (goal: <= ``VALIDATION_GOAL``)."""
        return self.validation_rms_rad / self.noise_floor_rad

    @property
    def timing_off(self) -> bool:
        """The recording loop missed deadlines or once woke more than a fifth of a period late."""
        return self.missed_deadlines > 0 or self.period_error_max_s > 0.2 * self.recording.period_s

    @property
    def fit_recording(self) -> Recording:
        """The part that was fitted (from the start): what ``rms_after_rad`` is computed on."""
        return self.recording.head(self.fit_periods)

    def warnings(self) -> list[str]:
        out = [
            f"{p.name} = {p.value:.4g} sits at its {p.at_bound} bound ({p.lower:g}..{p.upper:g}): the arm is "
            "outside what sysid can represent there, or the recording does not determine it"
            for p in self.parameters
            if p.warn
        ]
        if self.timing_off:
            out.append(
                f"the control loop missed {self.missed_deadlines} deadlines and woke up to "
                f"{self.period_error_max_s * 1e3:.1f} ms late while recording: the replay assumes every period on "
                "time, so the fit includes that timing; record again on a quieter machine"
            )
        if self.validation_ratio > VALIDATION_GOAL:
            out.append(
                f"the fitted model misses the held-out motion by {self.validation_ratio:.1f}x the encoder noise "
                f"(goal <= {VALIDATION_GOAL:g}x): the model does not capture this arm; check the report"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "dynamics": self.dynamics.to_dict(),
            "parameters": {p.name: p.to_dict() for p in self.parameters},
            "at_bounds": [p.name for p in self.parameters if p.warn],
            "latency_s": self.latency_s,
            "latency_estimated": self.latency_estimated,
            "latency_scan_s": self.latency_scan_s,
            "rms_before_rad": self.rms_before_rad,
            "rms_after_rad": self.rms_after_rad,
            "validation_rms_before_rad": self.validation_rms_before_rad,
            "validation_rms_rad": self.validation_rms_rad,
            "noise_floor_rad": self.noise_floor_rad,
            "validation_ratio": self.validation_ratio,
            "steps": len(self.recording.sent),
            "fit_steps": self.fit_periods,
            "evaluations": self.evaluations,
            "jacobians": self.jacobians,
            "optimizer_status": self.optimizer_status,
            "missed_deadlines": self.missed_deadlines,
            "period_error_max_s": self.period_error_max_s,
            "seconds": self.seconds,
            "warnings": self.warnings(),
        }

    def summary(self) -> list[str]:
        """Lines for a terminal: the figures that say whether to trust the fit."""
        source = "estimated" if self.latency_estimated else "given"
        lines = [
            f"fit RMS: {self.rms_before_rad * 1e3:.2f} mrad (nominal model) -> {self.rms_after_rad * 1e3:.2f} mrad",
            f"validation RMS (held-out motion): {self.validation_rms_before_rad * 1e3:.2f} -> "
            f"{self.validation_rms_rad * 1e3:.2f} mrad = {self.validation_ratio:.2f}x the encoder noise floor "
            f"({self.noise_floor_rad * 1e3:.2f} mrad; goal <= {VALIDATION_GOAL:g}x)",
            f"latency: {self.latency_s * 1e3:.0f} ms ({source})",
        ]
        for p in self.parameters:
            if p.name == "latency_s":
                continue
            error = f" +- {p.stderr:.3g}" if np.isfinite(p.stderr) else " (undetermined)"
            flag = f"  AT {p.at_bound.upper()} BOUND" if p.at_bound and p.warn else ""
            lines.append(f"  {p.name:28s} {p.value:8.4g}{error}{flag}")
        return lines


def write_report(result: SysidResult, spec: RobotSpec, path: str) -> None:
    """A PNG: recorded vs nominal vs fitted trajectory per arm joint (the fit and validation parts shaded),
    the fitted residual against the noise floor, and the figures of ``summary``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arm = spec.arm_joint_indices
    rec = result.recording
    t = np.arange(len(rec.position)) * rec.period_s
    fit_end, still_end = result.fit_periods * rec.period_s, result.still_periods * rec.period_s
    fig, axes = plt.subplots(len(arm) + 1, 1, figsize=(11, 2.1 * (len(arm) + 1) + 2.4), sharex=True)
    for ax, joint in zip(axes, arm):
        ax.axvspan(0, still_end, color="0.92", lw=0)
        ax.axvspan(fit_end, t[-1], color="C2", alpha=0.08, lw=0)
        ax.plot(t, rec.position[:, joint], "k", lw=1.2, label="recorded")
        ax.plot(t, result.simulated_before[:, joint], "C1--", lw=0.9, label="nominal sim")
        ax.plot(t, result.simulated_after[:, joint], "C0", lw=0.9, label="fitted sim")
        ax.set_ylabel(f"{spec.joint_names[joint]} (rad)")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_title("grey: still hold (noise floor) | white: fitted | green: held-out validation", fontsize=9)
    residual = result.simulated_after[:, arm] - rec.position[:, arm]
    ax = axes[-1]
    ax.plot(t, np.sqrt(np.mean(residual**2, axis=1)) * 1e3, "C0", lw=0.8, label="fitted - recorded (RMS)")
    for k, style in ((1, "k:"), (2, "r--")):
        ax.axhline(k * result.noise_floor_rad * 1e3, color=style[0], ls=style[1:], lw=0.8, label=f"{k}x noise")
    ax.set_ylabel("error (mrad)")
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper right", fontsize=8)
    lines = result.summary() + [f"warning: {w}" for w in result.warnings()]
    fig.text(0.01, 0.005, "\n".join(lines), family="monospace", fontsize=6.5, va="bottom")
    fig.tight_layout(rect=(0, 0.02 + 0.0105 * len(lines), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
