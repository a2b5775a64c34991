"""Take-over and hand-back inside short adaptation sessions, the operator typing on a real pty: on the
simulator, on the serial path to the virtual servo bus, and through `pearl-robot serve` over tcp. The
operator's steps are marked in session.jsonl and counted in the episode table; the first policy target
after the hand-back is within the step cap of the measured position; limits and the cap hold throughout."""

import contextlib
import signal
import subprocess
import sys

import numpy as np
import pytest
from teleop_helpers import ARM, CAP, HORIZON, SPEC, Lines, intervention_run, run_session

from pearl_robot import open_robot
from pearl_robot.adapt.report import HEADER, format_row
from pearl_robot.calibrate.model import Calibration
from pearl_robot.envs.robot_env import RobotEnv
from pearl_robot.tasks.reach import ReachTask

TOL = 1e-9
ACTION_SCALE_RAD = float(np.min(RobotEnv(open_robot("mock"), ReachTask(np.zeros(3))).action_scale_rad))
TICK_IN_ACTIONS = 2 * np.pi / 4096 / ACTION_SCALE_RAD + 1e-6  # one encoder tick, in action units


@contextlib.contextmanager
def served_sim():
    """`pearl-robot serve --robot sim` on a free loopback port; yields its endpoint; stopped by SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pearl_robot.cli.main", "serve", "--robot", "sim", "--bind", "tcp://127.0.0.1:0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out = Lines(proc.stdout)
        out.wait_for("serving")
        yield next(line for line in out.seen if line.startswith("serving")).split(" on ", 1)[1].split()[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture(params=["sim", "serial", "tcp"])
def robot(request, start_virtual_bus, tmp_path):
    """An unconnected SafeRobot on each backend."""
    if request.param == "sim":
        yield open_robot("sim")
    elif request.param == "serial":
        bus = start_virtual_bus(SPEC, return_delay_time=0)
        calibration = Calibration.identity(SPEC).save(tmp_path / "calibration.yaml")
        yield open_robot(f"serial:{bus.device_path}?timeout_margin_ms=40&retries=5", calibration=calibration)
    else:
        with served_sim() as endpoint:
            yield open_robot(endpoint)


def test_take_over_and_hand_back(robot, keyboard, tmp_path):
    source, type_keys = keyboard()
    session, policy, data = run_session(robot, tmp_path / "s", source, type_keys)
    # the keys typed after action 3 are read before action 4 (t=3): the operator's from there
    run = intervention_run(data)
    assert run[0] == 3 and run == list(range(3, 3 + len(run))) and len(run) >= 3, run
    assert not [s for s in data.steps() if s["episode"] > 0 and s["intervention"]]
    steps = data.steps(0)
    for s in steps:
        assert ("policy_action" in s) == s["intervention"]
    operator = [s for s in steps if s["intervention"]]
    for s in operator:  # the policy pushed every joint; the operator moved joint 1 only
        np.testing.assert_allclose(s["policy_action"], np.ones(len(ARM)))
        # within one encoder tick (in action units): the serial path sends whole ticks
        np.testing.assert_allclose(s["requested_action"][1:], 0.0, atol=TICK_IN_ACTIONS)
    jogged = [s["sent_target"][0] for s in operator]
    assert jogged[-1] > jogged[0]
    # counted: the episode end record and the table
    summary = session.summaries[0]
    assert summary.interventions == len(run) == data.episode_ends()[0]["interventions"]
    assert [s.interventions for s in session.summaries[1:]] == [0, 0]
    assert HEADER.split()[10] == "teleop" and format_row(summary).split()[8] == str(len(run))
    # hand-back: the first policy target is within the cap of the position measured before it
    back, before = steps[run[-1] + 1], steps[run[-1]]
    assert not back["intervention"]
    gap = np.abs(np.asarray(back["sent_target"])[ARM] - np.asarray(before["position"])[ARM])
    assert np.all(gap <= CAP[ARM] + 1e-6), gap
    # limits and the step cap held at every step, operator's or policy's
    for episode in range(3):
        sent = np.array([s["sent_target"] for s in data.steps(episode)])
        assert len(sent) == HORIZON
        assert np.all(sent <= SPEC.position_max + TOL) and np.all(sent >= SPEC.position_min - TOL)
        assert np.all(np.abs(np.diff(sent, axis=0)) <= CAP + 1e-6)
