"""The per-episode table and the return-per-episode plot of an adaptation session. A partial episode (cut
short by a stop, a fault or a crash) is marked in both and never joined to the curve of full episodes.
The table's ``teleop`` column counts the steps an operator drove (take-over)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pearl_robot.adapt.session import EpisodeSummary
from pearl_robot.io import atomic_path

HEADER = (
    f"{'ep':>3} {'z from':>9} {'return':>9} {'steps':>5} {'|mu|':>6} {'sigma':>6} "
    f"{'p99 ms':>7} {'missed':>6} {'teleop':>6}  safety events"
)


def format_row(s: EpisodeSummary) -> str:
    events = ", ".join(f"{k}={v}" for k, v in sorted(s.safety_events.items())) or "-"
    if s.partial or s.aborted:
        events += f"  [{'partial, ' if s.partial else ''}stopped: {s.reason}]"
    return (
        f"{s.episode:>3} {s.z_source:>9} {s.episode_return:>9.3f} {s.steps:>5} {s.posterior_mean_norm:>6.3f} "
        f"{s.posterior_std_mean:>6.3f} {s.period_error_p99_ms:>7.3f} {s.missed_deadlines:>6} "
        f"{s.interventions:>6}  {events}"
    )


def format_returns(returns: Sequence[float], partial: Sequence[bool]) -> str:
    """``[-1.2, -0.8 (partial), ...]``: every episode, the partial ones marked."""
    return "[" + ", ".join(f"{r:.3f}{' (partial)' if p else ''}" for r, p in zip(returns, partial)) + "]"


def plot_returns(
    returns: Sequence[float],
    path: str | Path,
    title: str,
    baselines: dict[str, float] | None = None,
    partial: Sequence[bool] | None = None,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    partial = list(partial) if partial is not None else [False] * len(returns)
    full = [(i + 1, r) for i, (r, p) in enumerate(zip(returns, partial)) if not p]
    cut = [(i + 1, r) for i, (r, p) in enumerate(zip(returns, partial)) if p]
    if full:
        ax.plot(*zip(*full), "o-", label="PEARL (posterior sampling)")
    if cut:
        ax.plot(*zip(*cut), "o", mfc="none", color="C0", label="partial episode (cut short, not comparable)")
    for i, (name, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, ls="--", color=f"C{i + 1}", label=name)
    ax.set_xlabel("adaptation episode")
    ax.set_ylabel("return")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return Path(path)
