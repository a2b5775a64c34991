"""Meta-train every task family at a reduced budget; write its curves and one JSON summary.

    .venv/bin/python benchmarks/run_families.py                        # every family's -small config
    .venv/bin/python benchmarks/run_families.py --families point-robot,cheetah-vel --iterations 10
    .venv/bin/python benchmarks/run_families.py --variant full --set num_iterations=5

For each family: ``RUN/<family>/`` holds the run (progress.csv, checkpoint, plots/), and
``RUN/summary.json`` lists per family the final test return under the paper's protocol (last trajectory),
the return per trajectory index, the same agent with z held at the prior (what adaptation adds), the
meta-training samples used and the wall time. The small budgets are far below the paper's (millions of
samples); compare shapes and the adaptation gap, not absolute returns.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pearl_robot.cli.plot import plot_run  # noqa: E402
from pearl_robot.pearl.config import load_config  # noqa: E402
from pearl_robot.pearl.trainer import MetaTrainer  # noqa: E402
from pearl_robot.tasks.registry import FAMILIES  # noqa: E402


def run_family(family: str, args: argparse.Namespace, out: Path) -> dict:
    name = family if args.variant == "full" else f"{family}-small"
    overrides = list(args.set)
    if args.iterations is not None:
        overrides.append(f"num_iterations={args.iterations}")
    if args.threads:
        overrides.append(f"torch_threads={args.threads}")
    cfg = load_config(name, overrides)
    start = time.monotonic()
    trainer = MetaTrainer(cfg, run_dir=out / family)
    rows = trainer.train()
    train_s = time.monotonic() - start
    agent = trainer.numpy_agent()
    rng = np.random.default_rng([cfg.seed, 99])
    adapted = trainer.evaluator.evaluate(agent, trainer.test_tasks, rng, cfg.num_evals)
    held = trainer.evaluator.evaluate(agent, trainer.test_tasks, rng, cfg.num_evals, adapt=False)
    plots = plot_run(out / family)
    evaluated = [r for r in rows if r.get("test_return_last") is not None]
    return {
        "config": name,
        "iterations": trainer.iteration,
        "env_steps": trainer.env_steps,
        "gradient_steps": trainer.sac.num_steps,
        "wall_s": time.monotonic() - start,
        "train_wall_s": train_s,
        "final_test_return": adapted.final_return,
        "test_return_per_trajectory": [float(v) for v in adapted.online_returns],
        "prior_only_final_test_return": held.final_return,
        "adaptation_gain": adapted.final_return - held.final_return,
        "test_return_curve": [[r["env_steps"], r["test_return_last"]] for r in evaluated],
        "num_exp_traj_eval": cfg.num_exp_traj_eval,
        "plots": [str(p) for p in plots],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated (default: all)")
    parser.add_argument("--variant", choices=["small", "full"], default="small")
    parser.add_argument("--iterations", type=int, help="override num_iterations")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--out", help="output folder (default: runs/families-<time>)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else ROOT / "runs" / f"families-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"variant": args.variant, "overrides": args.set, "families": {}}
    for family in [f for f in args.families.split(",") if f]:
        print(f"== {family}", file=sys.stderr, flush=True)
        try:
            summary["families"][family] = run_family(family, args, out)
        except Exception as exc:  # one family failing must not lose the others' results
            summary["families"][family] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
