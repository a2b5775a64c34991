"""``pearl-robot plot RUN``: learning-curve PNGs from a run's progress.csv.

- ``learning_curve.png``: return vs environment steps (collection, train tasks and test tasks under the
  evaluation protocol, last trajectory);
- ``adaptation.png``: test return per trajectory index (the online adaptation curve) at the evaluated
  iterations, the latest drawn darkest;
- ``losses.png``: the learner's losses and the posterior's statistics per iteration.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from pearl_robot.errors import PearlRobotError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="write learning-curve PNGs of a run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", metavar="RUN", help="a run folder (with progress.csv)")
    parser.add_argument("--out", help="folder for the PNGs (default: RUN/plots)")
    parser.set_defaults(func=run)


def _column(rows: list[dict[str, str]], key: str) -> list[float]:
    out = []
    for r in rows:
        value = r.get(key, "")
        out.append(float(value) if value not in ("", None) else math.nan)
    return out


def _num_exp_traj_eval(run_dir: Path) -> int | None:
    try:
        import yaml

        return int(yaml.safe_load((run_dir / "config.yaml").read_text())["num_exp_traj_eval"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def plot_run(run_dir: Path, out_dir: Path | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pearl_robot.pearl.run_log import read_progress

    rows = read_progress(run_dir / "progress.csv")
    if not rows:
        raise PearlRobotError(f"{run_dir}: no progress.csv rows to plot")
    out_dir = out_dir or run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = _column(rows, "env_steps")
    written = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label, style in [
        ("collect_return", "collection (train tasks)", ":"),
        ("train_return_last", "train tasks, last trajectory", "--"),
        ("test_return_last", "test tasks, last trajectory", "-"),
    ]:
        ys = _column(rows, key)
        pts = [(x, y) for x, y in zip(steps, ys) if not math.isnan(y)]
        if pts:
            ax.plot(*zip(*pts), style, marker="o" if len(pts) < 30 else None, label=label)
    ax.set_xlabel("environment steps (meta-training samples)")
    ax.set_ylabel("return")
    ax.set_title(f"{run_dir.name}: return vs samples")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    written.append(out_dir / "learning_curve.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    traj_keys = sorted(
        (k for k in rows[0] if k.startswith("test_return_traj_")), key=lambda k: int(k.rsplit("_", 1)[1])
    )
    evaluated = [r for r in rows if r.get("test_return_last", "") != ""]
    if traj_keys and evaluated:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        shown = evaluated[-6:]
        for i, r in enumerate(shown):
            ys = [float(r[k]) for k in traj_keys]
            alpha = 0.25 + 0.75 * (i + 1) / len(shown)
            ax.plot(range(1, len(ys) + 1), ys, marker="o", alpha=alpha, label=f"iteration {r['iteration']}")
        num_exp = _num_exp_traj_eval(run_dir)
        if num_exp is not None and 0 < num_exp < len(traj_keys):
            ax.axvline(num_exp + 0.5, color="grey", linestyle=":", label="z from the posterior after this")
        ax.set_xlabel("trajectory index on a test task (online context accumulates)")
        ax.set_ylabel("return")
        ax.set_xticks(range(1, len(traj_keys) + 1))
        ax.set_title("adaptation: test return per trajectory")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        written.append(out_dir / "adaptation.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)

    keys = [k for k in ("q_loss", "v_loss", "policy_loss", "kl", "z_mean_abs", "z_var_mean") if k in rows[0]]
    if keys:
        iters = _column(rows, "iteration")
        fig, axes = plt.subplots(2, 3, figsize=(11, 6))
        for ax, key in zip(axes.flat, keys):
            ax.plot(iters, _column(rows, key))
            ax.set_title(key)
            ax.set_xlabel("iteration")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        written.append(out_dir / "losses.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)
    return written


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    for path in plot_run(run_dir, Path(args.out) if args.out else None):
        print(path)
    return 0
