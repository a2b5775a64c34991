"""The calibration rehearsed from the command line, as a user does it: `pearl-robot virtual-bus --operator`
(hidden offsets, a reversed joint, 2 ticks of encoder noise, a scripted hand with a tremor that follows
the servo LEDs) in one process, `pearl-robot calibrate joints --non-interactive` in another (no stdin, as
in CI), talking Protocol 2.0 over the pty; plus the virtual bus's dynamics options and shipped examples.

The offsets are the mean of 60 samples (``samples_for_pose``): 0.26 tick std under 2-tick noise, so
"within one tick" holds with a wide margin (at 3 ticks it is 0.39 tick, and one joint in a hundred
would miss it)."""

import contextlib
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from calibration_helpers import HIDDEN_DIRECTIONS, HIDDEN_OFFSETS_TICKS, TICK, CliRun
from waiting import eventually

from pearl_robot import open_robot
from pearl_robot.adapt.policy import family_for
from pearl_robot.calibrate.joints import ServoLeds
from pearl_robot.calibrate.model import load_calibration
from pearl_robot.cli.main import main
from pearl_robot.cli.virtual_bus import LINK_LATENCY_S, held_out_dynamics
from pearl_robot.paths import sim_dir
from pearl_robot.pearl.config import load_config
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.robot.serial_robot import SerialRobot
from pearl_robot.robot.spec import load_spec
from pearl_robot.virtual import VirtualOperator

pytestmark = pytest.mark.timeout(120)
MARGIN = 0.05  # the virtual hand's sweep stops this short of the hardware limits (VirtualOperator)


@pytest.fixture
def virtual_bus(tmp_path):
    """``virtual_bus(*options) -> (link, run)``: `pearl-robot virtual-bus --operator` in a subprocess;
    SIGTERM (then SIGKILL) at teardown."""
    runs: list[CliRun] = []

    def start(*options) -> tuple[Path, CliRun]:
        link = tmp_path / "arm"
        run = CliRun(["virtual-bus", "--operator", "--link", link, *options])
        runs.append(run)
        deadline = time.monotonic() + 30
        while not run.lines:  # the device path comes first, once the link exists
            assert run.proc.poll() is None, f"virtual-bus exited: {run.proc.stderr.read()}"
            assert time.monotonic() < deadline, "virtual-bus did not start"
            time.sleep(0.05)
        return link, run

    yield start
    for run in runs:
        run.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.proc.wait(timeout=10)
        run.close()


def stop(bus: CliRun) -> str:
    """Stop the bus; its standard error (what the virtual hand did)."""
    bus.proc.terminate()
    return bus.wait(timeout_s=10)[2]


def calibrate_on_the_cli(virtual_bus, run_cli, tmp_path, noise_ticks: float, pose: np.ndarray | None):
    spec = load_spec()
    pose_args = [] if pose is None else ["--pose", ",".join(f"{p:g}" for p in pose)]
    link, bus = virtual_bus(
        "--hidden-offsets", ",".join(map(str, HIDDEN_OFFSETS_TICKS)),
        "--hidden-directions", ",".join(map(str, HIDDEN_DIRECTIONS)),
        "--sensor-noise-ticks", noise_ticks, *pose_args,
    )  # fmt: skip
    out = tmp_path / "cal.yaml"
    started = time.monotonic()
    cli = run_cli(
        "calibrate", "joints", "--robot", f"serial:{link}?timeout_margin_ms=50", "--non-interactive",
        "--out", out, "--range-seconds", 5, "--timeout", 20, *pose_args,
    )  # fmt: skip
    code, stdout, stderr = cli.wait(timeout_s=90)
    seconds = time.monotonic() - started
    assert code == 0, f"{stderr}\n{stdout}\nvirtual-bus:\n{stop(bus)}"
    calibration = load_calibration(out)
    calibration.check_matches(spec)
    offsets, directions = calibration.arrays(spec)
    errors = offsets / TICK - np.array(HIDDEN_OFFSETS_TICKS)
    print(f"calibrate joints took {seconds:.1f} s; offset errors (ticks): {np.round(errors, 2).tolist()}")
    assert np.abs(errors).max() <= 1.0
    assert list(directions) == HIDDEN_DIRECTIONS
    swept = np.array([(j.min_rad, j.max_rad) for j in calibration.joints.values()])
    assert np.abs(swept - np.c_[spec.position_min + MARGIN, spec.position_max - MARGIN]).max() < 6 * TICK

    # the file makes the arm read true joint angles: where the hand holds it, in its pose
    expected = np.zeros(spec.num_joints) if pose is None else pose
    with open_robot(f"serial:{link}?timeout_margin_ms=50", spec, calibration=out) as robot:
        deadline = time.monotonic() + 10
        while True:  # the hand may still be on its way back from the sweep
            mean = np.mean([robot.read().position for _ in range(20)], axis=0)
            if np.abs(mean - expected).max() < 3 * TICK or time.monotonic() > deadline:
                break
        assert np.abs(mean - expected).max() < 3 * TICK
    log = stop(bus)
    assert "sweeping every joint" in log and log.count("its LED is lit") == spec.num_joints


def test_calibrate_joints_cli_with_the_virtual_operator(virtual_bus, run_cli, tmp_path):
    calibrate_on_the_cli(virtual_bus, run_cli, tmp_path, noise_ticks=2, pose=None)


def test_calibrate_joints_cli_with_a_calibration_pose(virtual_bus, run_cli, tmp_path):
    """--pose given to both: the hand holds it, the procedure measures the offsets there."""
    calibrate_on_the_cli(virtual_bus, run_cli, tmp_path, noise_ticks=2, pose=np.array([0.3, -0.5, 0.4, 0.2, 0.0]))


def wait_until(condition) -> None:
    assert eventually(condition, timeout_s=5.0), "the hand did not get there"


def test_the_hand_follows_the_led_cues(start_virtual_bus):
    """The cue protocol in-process, through the procedure's own LED writes (SYNC WRITE over the pty): one
    LED, that joint positive; all lit, the pose; blinking, a sweep to both ends; torque on, it lets go."""
    spec = load_spec()
    bus = start_virtual_bus(spec, physics=False, return_delay_time=0, initial_position_rad=np.zeros(spec.num_joints))
    operator = VirtualOperator(bus, spec, reaction_s=0.05).start()

    def true() -> np.ndarray:
        return np.array([bus.plant.joint_state(k)[0] for k in range(spec.num_joints)])

    try:
        with SerialRobot(spec, bus.device_path, timeout_margin_ms=50) as robot:
            leds = ServoLeds(robot)
            leds.show([2])
            wait_until(lambda: abs(true()[2] - 0.4) < 0.01)
            assert np.abs(np.delete(true(), 2)).max() < 0.01  # the others stay in the pose
            leds.show(range(spec.num_joints))
            wait_until(lambda: np.abs(true()).max() < 0.01)
            lows, highs, started = true(), true(), time.monotonic()
            while time.monotonic() - started < 2.0:  # blinking, as the procedure does during the sweep
                leds.show(range(spec.num_joints) if int((time.monotonic() - started) / 0.25) % 2 else ())
                lows, highs = np.minimum(lows, true()), np.maximum(highs, true())
                time.sleep(0.005)
            assert np.abs(lows - (spec.position_min + MARGIN)).max() < 0.01
            assert np.abs(highs - (spec.position_max - MARGIN)).max() < 0.01
            leds.show(())
            robot.enable()
            wait_until(lambda: not bus.hand.holding)  # the servos hold the arm now
    finally:
        operator.stop()
    assert operator.errors == []


def test_robot_name_options_and_pose_errors(capsys):
    """Backend options in the robot name reach the serial backend (the one parser), as on every command."""
    assert main(["calibrate", "joints", "--robot", "serial:/nonexistent/arm?timeout_margin_ms=50", "--non-interactive"])
    err = capsys.readouterr().err
    assert "/nonexistent/arm" in err and "?timeout" not in err
    assert main(["calibrate", "joints", "--robot", "serial:/nonexistent/arm?bogus=1", "--non-interactive"])
    assert "has no option 'bogus'" in capsys.readouterr().err
    assert main(["calibrate", "joints", "--robot", "mock", "--non-interactive", "--pose", "0,0"])
    assert "expected 5 finite angles" in capsys.readouterr().err
    assert main(["virtual-bus", "--pose", "0,0,0,0,0"])
    assert "add --operator" in capsys.readouterr().err


def test_held_out_task_is_the_demos_arm_and_the_shipped_example(capsys):
    """--held-out-task N: the demo's held-out arm (test task N of the config's split, + the link's
    latency); sim/dynamics/held_out_task_0.yaml is that of task 0."""
    cfg = load_config("arm-dynamics-small")
    _, test_tasks = family_for(cfg).split(cfg.seed)
    task = ArmDynamics.from_dict(test_tasks[2].params)
    assert held_out_dynamics(cfg, 2).latency_s == pytest.approx(task.latency_s + LINK_LATENCY_S)
    assert main(["virtual-bus", "--held-out-task", "0", "--print-dynamics"]) == 0
    printed = ArmDynamics.from_dict(yaml.safe_load(capsys.readouterr().out))
    assert printed == held_out_dynamics(cfg, 0)
    shipped = ArmDynamics.from_dict(yaml.safe_load((sim_dir() / "dynamics" / "held_out_task_0.yaml").read_text()))
    assert shipped == printed, "regenerate: pearl-robot virtual-bus --held-out-task 0 --print-dynamics"
    assert main(["virtual-bus", "--held-out-task", "99", "--print-dynamics"]) == 1
    assert "test tasks 0-4" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["held_out_task_0", "heavy_payload", "laggy"])
def test_shipped_dynamics_examples_run_on_the_virtual_arm(name, start_virtual_bus, capsys):
    path = sim_dir() / "dynamics" / f"{name}.yaml"
    assert main(["virtual-bus", "--dynamics", str(path), "--print-dynamics"]) == 0
    dynamics = ArmDynamics.from_dict(yaml.safe_load(capsys.readouterr().out))
    bus = start_virtual_bus(load_spec(), dynamics=dynamics)  # the MuJoCo arm accepts every field
    assert bus.plant.dynamics == dynamics
    assert f"`{name}.yaml`" in (sim_dir() / "dynamics" / "README.md").read_text()
    fields = set(ArmDynamics.__dataclass_fields__)
    assert all(f"`{field}`" in (sim_dir() / "dynamics" / "README.md").read_text() for field in fields)
