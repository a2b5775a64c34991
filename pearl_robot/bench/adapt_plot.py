"""The PNG of ``bench adapt``: return per episode per method with standard errors over seeds (the methods
that do not adapt as horizontal bands: their level, mean +- one standard error), and the share of the
DR-SAC -> best-oracle gap PEARL closes per episode."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

_LABELS = {
    "pearl_posterior_sampling": "PEARL, posterior sampling",
    "pearl_joint_actions": "PEARL, joint actions",
    "pearl_prior_z": "PEARL, z from the prior",
    "dr_sac": "DR-SAC (no context)",
    "rl_oracle": "RL oracle (observes the arm)",
    "scripted_best_single": "scripted, best single tuning",
    "scripted_per_task": "scripted, tuned per arm",
    "random": "random",
}


def _values(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def plot(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    episodes = np.arange(1, int(result["episodes"]) + 1)
    fig, (ax, gap_ax) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    for i, method in enumerate(result["methods"]):
        color = f"C{i}"
        label = _LABELS.get(method, method)
        if method in result["return_level"]:
            level = result["return_level"][method]
            if level is None:
                continue
            err = result["return_level_stderr"][method] or 0.0
            ax.axhspan(level - err, level + err, color=color, alpha=0.15, lw=0)
            ax.axhline(level, color=color, lw=1.2, ls="--", label=label)
        else:
            mean = _values(result["return_per_episode"][method])
            err = np.nan_to_num(_values(result["return_stderr_per_episode"][method]))
            ax.errorbar(episodes, mean, yerr=err, color=color, marker="o", lw=2, capsize=3, label=label)
    ax.set_xlabel("adaptation episode")
    ax.set_ylabel("return (mean over held-out arms and goal sequences)")
    ax.set_xticks(episodes)
    ax.set_title(f"{result['family']}: {result['seeds']} seed(s), +- s.e. over seeds")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    ax.grid(alpha=0.3)

    gap = _values(result["gap_closed_per_episode"])
    gap_err = np.nan_to_num(_values(result["gap_closed_stderr_per_episode"]))
    gap_ax.errorbar(episodes, gap, yerr=gap_err, color="C0", marker="o", lw=2, capsize=3, label="PEARL, mean of seeds")
    pooled = _values(result["gap_closed_pooled_per_episode"])
    gap_ax.plot(episodes, pooled, color="C1", marker="s", lw=1.5, label="PEARL, pooled over seeds")
    gap_ax.axhline(1.0, color="0.3", lw=1, label="best oracle")
    gap_ax.axhline(0.9, color="C2", lw=1, ls=":", label="target 0.9")
    gap_ax.axhline(0.0, color="C3", lw=1, ls="--", label="DR-SAC")
    gap_ax.set_xlabel("adaptation episode")
    gap_ax.set_ylabel("gap closed: (PEARL - DR-SAC) / (best oracle - DR-SAC)")
    gap_ax.set_xticks(episodes)
    gap_ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    gap_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
