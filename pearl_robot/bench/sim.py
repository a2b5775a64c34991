"""SimRobot step time (write + read through the Robot interface) vs raw mujoco.mj_step of the same physics."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

import numpy as np

from pearl_robot.bench.common import machine
from pearl_robot.robot.spec import load_spec

if TYPE_CHECKING:  # MuJoCo is imported where it is used: `pearl-robot bench sim --help` stays light
    import mujoco

    from pearl_robot.robot.sim import SimRobot


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=5_000, help="control steps per measurement (default %(default)s)")
    parser.add_argument("--hardware", default=None, help="hardware YAML (default: the shipped arm)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats; medians are reported")


def _time_robot(robot: SimRobot, targets: np.ndarray) -> float:
    start = time.perf_counter()
    for target in targets:
        robot.write(target)
        robot.read()
    return (time.perf_counter() - start) / len(targets)


def _time_raw(model: mujoco.MjModel, data: mujoco.MjData, ctrls: np.ndarray, frame_skip: int) -> float:
    """The same physics driven directly: set ctrl, step one control period, copy the joint state out."""
    import mujoco

    start = time.perf_counter()
    for ctrl in ctrls:
        data.ctrl[:] = ctrl
        mujoco.mj_step(model, data, nstep=frame_skip)
        data.qpos.copy(), data.qvel.copy()
    return (time.perf_counter() - start) / len(ctrls)


def run(args: argparse.Namespace) -> dict[str, object]:
    import mujoco

    from pearl_robot.robot.sim import SimRobot

    spec = load_spec(args.hardware)
    robot = SimRobot(spec)
    robot.connect()
    robot.enable()
    rng = np.random.default_rng(0)
    targets = spec.home_rad + rng.uniform(-0.3, 0.3, (args.steps, spec.num_joints))
    targets = np.clip(targets, spec.position_min, spec.position_max)
    raw_model = mujoco.MjModel.from_xml_path(str(spec.mjcf))
    raw_data = mujoco.MjData(raw_model)
    for name, q in zip(spec.joint_names, spec.home_rad):  # same initial state as the robot
        raw_data.qpos[raw_model.joint(name).qposadr[0]] = q
    raw_data.ctrl[:] = spec.home_rad
    robot_times, raw_times = [], []
    for _ in range(args.repeats):
        robot_times.append(_time_robot(robot, targets))
        raw_times.append(_time_raw(raw_model, raw_data, targets, robot.frame_skip))
    robot.close()
    robot_s, raw_s = float(np.median(robot_times)), float(np.median(raw_times))
    return {
        "benchmark": "sim",
        "machine": machine(),
        "frame_skip": robot.frame_skip,
        "simrobot_s_per_step": robot_s,
        "raw_mj_step_s_per_step": raw_s,
        "simrobot_steps_per_s": 1.0 / robot_s,
        "ratio": robot_s / raw_s,
        "targets": {"ratio<=1.5": robot_s / raw_s <= 1.5},
    }
