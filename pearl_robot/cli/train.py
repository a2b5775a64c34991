"""``pearl-robot train``: meta-train PEARL on a task family.

Examples::

    pearl-robot train --list
    pearl-robot train --config point-robot-small --out runs/pr
    pearl-robot train --config sim/configs/cheetah-vel.yaml --set meta_batch=8 --set num_iterations=50
    pearl-robot train --resume runs/pr --set num_iterations=40
    pearl-robot train --config cheetah-vel --workers 8 --ray-address auto   # rollouts on a Ray cluster
    pearl-robot train --config arm-dynamics --calibration calibration/openmanipulator_x.yaml

The run folder holds config.yaml, progress.csv (one row per iteration), timing.csv, tensorboard/,
checkpoint.pt (every ``checkpoint_every`` iterations, written atomically) and policy.npz (the numpy
policy and encoder, for running on a robot).

``--workers N`` runs rollout collection on N Ray actors (the ``distributed`` extra); the learner stays in
this process. The results are those of in-process collection, for any N: each task visit is a job seeded
from the run's own generator (``pearl_robot/pearl/collector.py``).

``--calibration FILE`` (an arm family; FILE holds the dynamics ``pearl-robot calibrate sysid`` identified):
a family without a centre of its own (no ``family_params.center`` or ``family_params.calibration``) is
centred on the identified arm, as ``make_family(calibration=FILE)`` does; one with a centre is trained as
configured. Either way, and whenever the family is centred on a calibration file, every identified
parameter that lies outside what the family samples is a warning naming the parameter, the family's
interval and how far outside it is: meta-training would not cover that arm.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pearl_robot.errors import PearlRobotError

if TYPE_CHECKING:
    from pearl_robot.pearl.config import PEARLConfig
    from pearl_robot.tasks.base import TaskFamily


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="meta-train PEARL on a task family",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="a shipped config name (see --list) or a YAML file")
    parser.add_argument("--out", help="run folder (default: runs/<config>-seed<N>-<time>)")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (value parsed as YAML); repeatable; family_params.KEY=VALUE sets one "
        "family parameter",
    )
    parser.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its checkpoint")
    parser.add_argument(
        "--calibration",
        metavar="FILE",
        help="an identified arm (calibration file with sysid dynamics): centre an arm family without a centre "
        "of its own on it; warn about every identified parameter outside the family's ranges",
    )
    parser.add_argument("--list", action="store_true", help="list the shipped configs and exit")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], help="override the config's device")
    parser.add_argument("--threads", type=int, help="torch threads (1 when a control loop shares the CPU)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="collect rollouts on N Ray actors (default 0: in this process; same results either way)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="the Ray cluster for --workers: 'auto' (the cluster this node joined with `ray start`) or "
        "HOST:PORT of its head (default: a local Ray instance)",
    )
    parser.set_defaults(func=run)


def _list_configs() -> int:
    from pearl_robot.pearl.config import shipped_configs

    names = shipped_configs()
    families = [n for n in names if not n.endswith("-small")]
    width = max(len(n) for n in families) if families else 0
    print(f"{'config':<{width}}  small variant")
    for name in families:
        small = f"{name}-small"
        print(f"{name:<{width}}  {small if small in names else '-'}")
    return 0


def _warn(text: str) -> None:
    print(f"pearl-robot train: warning: {text}", file=sys.stderr)


def _needs_centre(cfg: PEARLConfig, calibration: str) -> bool:
    """True when ``--calibration`` centres the family: an arm family with no centre of its own."""
    from pearl_robot.calibrate.model import load_calibration

    if not cfg.family.startswith("arm-"):
        raise PearlRobotError(f"--calibration applies to the arm families; '{cfg.family}' is not one")
    if load_calibration(calibration).dynamics is None:
        raise PearlRobotError(
            f"{calibration} has no identified dynamics; run `pearl-robot calibrate sysid --calibration "
            f"{calibration}` first"
        )
    return not {"center", "calibration"} & set(cfg.family_params)


def _check_identified_arm(family: TaskFamily, calibration: str | None) -> None:
    """Warn about every parameter of the identified arm (``--calibration``, or the family's own
    calibration) that the family's ranges do not cover."""
    from pearl_robot.calibrate.model import load_calibration
    from pearl_robot.tasks.coverage import outside_ranges

    source = calibration or getattr(family, "calibration", None)
    ranges = getattr(family, "ranges", None)
    if source is None or ranges is None:
        return
    dynamics = load_calibration(source).dynamics
    if dynamics is None:
        return
    findings = outside_ranges(dynamics, family.center, ranges, family.spec.joint_names)
    for line in findings:
        _warn(f"identified arm ({source}): {line}")
    if findings:
        _warn(
            "meta-training does not cover this arm: widen the family's ranges (--set family_params.gain_range=[lo,"
            " hi], ...) or centre them on it (--calibration FILE with no family_params.center)"
        )


def run(args: argparse.Namespace) -> int:
    from pearl_robot.distributed import make_collector
    from pearl_robot.pearl.config import load_config
    from pearl_robot.pearl.run_log import ProgressBar
    from pearl_robot.pearl.trainer import CHECKPOINT, MetaTrainer

    if args.list:
        return _list_configs()
    if args.ray_address and args.workers <= 0:
        raise PearlRobotError("--ray-address needs --workers N (N >= 1)")
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"device={args.device}")
    if args.threads is not None:
        overrides.append(f"torch_threads={args.threads}")

    if args.resume:
        if args.config or args.seed is not None or args.out or args.calibration:
            raise PearlRobotError(
                "--resume continues a run as configured: drop --config, --seed, --out and --calibration"
            )
        trainer = MetaTrainer.from_checkpoint(args.resume, overrides=overrides)
        run_dir = trainer.run_dir
        if trainer.iteration >= trainer.cfg.num_iterations:
            print(
                f"{run_dir}: already at iteration {trainer.iteration} of {trainer.cfg.num_iterations}; "
                "raise it with --set num_iterations=N"
            )
            return 0
        what = f"resuming {run_dir} at iteration {trainer.iteration}"
    else:
        if not args.config:
            raise PearlRobotError("give --config NAME_OR_FILE (see --list) or --resume RUN")
        if args.seed is not None:
            overrides.append(f"seed={args.seed}")
        cfg = load_config(args.config, overrides)
        if args.calibration and _needs_centre(cfg, args.calibration):
            path = str(Path(args.calibration).resolve())
            cfg = load_config(args.config, [*overrides, f"family_params.calibration={json.dumps(path)}"])
        stem = Path(args.config).stem
        run_dir = (
            Path(args.out) if args.out else Path("runs") / f"{stem}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        if (run_dir / CHECKPOINT).exists():
            raise PearlRobotError(f"{run_dir} already holds a run; continue it with --resume {run_dir}")
        trainer = MetaTrainer(cfg, run_dir=run_dir)
        what = f"training {cfg.family} into {run_dir}"

    _check_identified_arm(trainer.family, args.calibration)
    cfg = trainer.cfg
    progress = ProgressBar(cfg.num_iterations, quiet=args.quiet)
    trainer.progress = progress
    collector = make_collector(trainer, args.workers, args.ray_address, warn=_warn)
    trainer.collector = collector
    where = f"{collector.num_workers} Ray workers" if collector.num_workers else "in process"
    progress.message(
        f"{what}: {len(trainer.train_tasks)} train / {len(trainer.test_tasks)} test tasks, "
        f"{cfg.num_iterations} iterations, device {trainer.device}, {trainer.threads} torch thread(s), "
        f"collection {where}"
    )
    try:
        rows = trainer.train()
    finally:
        collector.close()
    last = next((r for r in reversed(rows) if r.get("test_return_last") is not None), None)
    if last is not None:
        online = [last[f"test_return_traj_{i}"] for i in range(trainer.num_eval_trajectories)]
        progress.message(
            f"test return (last trajectory): {last['test_return_last']:.3f}; per trajectory: "
            + ", ".join(f"{v:.2f}" for v in online)
        )
    progress.message(f"run folder: {run_dir} (plot it with: pearl-robot plot {run_dir})")
    return 0
