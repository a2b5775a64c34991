"""`pearl-robot virtual-bus` as a subprocess: prints its device, serves a real client, stops cleanly."""

import os
import select
import signal
import subprocess
import sys

import pytest

from pearl_robot import open_robot
from pearl_robot.calibrate.model import Calibration
from pearl_robot.errors import RobotFault
from pearl_robot.robot.spec import load_spec


@pytest.fixture
def start_cli():
    procs = []

    def start(*args):
        proc = subprocess.Popen(
            [sys.executable, "-m", "pearl_robot.cli.main", "virtual-bus", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            stream.close()


def first_line(proc, timeout_s=60.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    assert ready, "the virtual bus printed no device path"
    return proc.stdout.readline().strip()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_a_serial_robot_until_signalled(start_cli, tmp_path, sig):
    link = tmp_path / "arm"
    args = ["--link", str(link), "--return-delay-time", "0"]
    if sig == signal.SIGINT:
        args.append("--no-physics")
    else:  # perturbed physics and hidden offsets, as the calibration work uses them
        dynamics = tmp_path / "dynamics.yaml"
        dynamics.write_text("damping_scale: 1.5\npayload_mass_kg: 0.05\n")
        args += ["--dynamics", str(dynamics), "--hidden-offsets", "10,-20,0,0,5", "--hidden-directions", "1,1,-1,1,1"]
    proc = start_cli(*args)
    device = first_line(proc)
    assert device.startswith("/dev/") and os.readlink(link) == device
    calibration = Calibration.identity(load_spec())  # a serial arm enables only with a calibration
    robot = open_robot(f"serial:{link}", calibration=calibration, timeout_margin_ms=50.0)
    with robot:
        robot.enable()
        state = robot.read()
        assert state.ok and state.position.shape == (5,)
        for _ in range(5):
            robot.write(state.position)
            robot.read()
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == 0
    assert not link.exists()
    assert "stopped" in proc.stderr.read()


def test_cli_vanish_fault_ends_the_device(start_cli):
    proc = start_cli("--no-physics", "--return-delay-time", "0", "--faults", "vanish_after_s=1.0")
    device = first_line(proc)
    robot = open_robot(f"serial:{device}", timeout_margin_ms=50.0)
    robot.connect()
    try:
        assert proc.wait(timeout=20) == 0
        with pytest.raises(RobotFault, match="ERROR"):
            robot.read()
    finally:
        robot.close()
    assert "vanished" in proc.stderr.read()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--faults", "drop=7"], "drop_rate must be in [0, 1]"),
        (["--hidden-offsets", "1,2"], "expected 5 values"),
        (["--hidden-directions", "1,1,2,1,1"], "each direction is 1 or -1"),
        (["--dynamics", "/nonexistent.yaml"], "dynamics file not found"),
    ],
)
def test_cli_rejects_bad_options_with_one_clear_line(start_cli, args, message):
    proc = start_cli("--no-physics", *args)
    assert proc.wait(timeout=30) == 1
    err = proc.stderr.read()
    assert message in err and "Traceback" not in err
