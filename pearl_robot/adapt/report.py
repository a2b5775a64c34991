"""The per-episode table and the return-per-episode plot of an adaptation session."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pearl_robot.adapt.session import EpisodeSummary

HEADER = (
    f"{'ep':>3} {'z from':>9} {'return':>9} {'steps':>5} {'|mu|':>6} {'sigma':>6} "
    f"{'p99 ms':>7} {'missed':>6}  safety events"
)


def format_row(s: EpisodeSummary) -> str:
    events = ", ".join(f"{k}={v}" for k, v in sorted(s.safety_events.items())) or "-"
    if s.aborted:
        events += f"  [stopped: {s.reason}]"
    return (
        f"{s.episode:>3} {s.z_source:>9} {s.episode_return:>9.3f} {s.steps:>5} {s.posterior_mean_norm:>6.3f} "
        f"{s.posterior_std_mean:>6.3f} {s.period_error_p99_ms:>7.3f} {s.missed_deadlines:>6}  {events}"
    )


def plot_returns(
    returns: Sequence[float], path: str | Path, title: str, baselines: dict[str, float] | None = None
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    episodes = list(range(1, len(returns) + 1))
    ax.plot(episodes, returns, "o-", label="PEARL (posterior sampling)")
    for i, (name, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, ls="--", color=f"C{i + 1}", label=name)
    ax.set_xlabel("adaptation episode")
    ax.set_ylabel("return")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
