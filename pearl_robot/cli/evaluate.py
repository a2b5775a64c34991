"""``pearl-robot eval``: run the paper's evaluation protocol on a trained run's checkpoint.

Per task: ``num_exp_traj_eval`` trajectories with z from the prior, then z from the posterior of all the
context gathered online, deterministic actions. Prints the mean return per trajectory index and the
average of the last trajectory's return (the paper's number); ``--prior-only`` holds z at the prior
for comparison.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a trained run with the paper's protocol",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, metavar="RUN", help="a run folder or a checkpoint.pt")
    parser.add_argument("--tasks", choices=["test", "train"], default="test", help="which tasks (default: test)")
    parser.add_argument("--num-evals", type=int, help="runs per task (default: the config's num_evals)")
    parser.add_argument("--num-steps", type=int, help="steps per task (default: the config's num_steps_per_eval)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default: %(default)s)")
    parser.add_argument("--prior-only", action="store_true", help="hold z at the prior (no adaptation)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from pearl_robot.pearl.trainer import load_policy

    loaded = load_policy(args.checkpoint, args.num_steps)
    tasks = loaded.test_tasks if args.tasks == "test" else loaded.train_tasks
    rng = np.random.default_rng([args.seed, loaded.iteration])
    num_evals = args.num_evals or loaded.cfg.num_evals
    result = loaded.evaluator.evaluate(loaded.agent, tasks, rng, num_evals, adapt=not args.prior_only)
    online = [float(v) for v in result.online_returns]
    summary = {
        "family": loaded.cfg.family,
        "iteration": loaded.iteration,
        "tasks": args.tasks,
        "num_tasks": len(tasks),
        "num_evals": num_evals,
        "num_exp_traj_eval": loaded.cfg.num_exp_traj_eval,
        "adapt": not args.prior_only,
        "return_per_trajectory": online,
        "final_return": result.final_return,
        "final_return_std_over_tasks": float(result.last_returns.mean(axis=1).std()),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    z = "prior only" if args.prior_only else f"prior for {loaded.cfg.num_exp_traj_eval}, then posterior"
    print(
        f"{loaded.cfg.family} after {loaded.iteration} iterations, {len(tasks)} {args.tasks} tasks "
        f"x {num_evals} run(s), z: {z}"
    )
    for i, value in enumerate(online):
        source = "prior" if args.prior_only or i < loaded.cfg.num_exp_traj_eval else "posterior"
        print(f"  trajectory {i}: {value:10.3f}  ({source})")
    print(f"final return (mean of the last trajectory over tasks): {result.final_return:.3f}")
    return 0
