"""`pearl-robot virtual-bus` as a subprocess: prints its device, serves a real client, stops cleanly."""

import os
import select
import signal
import subprocess
import sys
import time

import pytest
import serial

from pearl_robot import open_robot
from pearl_robot.calibrate.model import Calibration
from pearl_robot.dynamixel import protocol as proto
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


def test_cli_stock_adapter_and_servo_baud_rate(start_cli):
    proc = start_cli("--no-physics", "--adapter-latency-ms", "16", "--servo-baud-rates", "57600")
    device = first_line(proc)
    ping = proto.encode_instruction(11, proto.Instruction.PING)
    with serial.Serial(device, 1_000_000, timeout=0.1) as port:
        port.write(ping)
        assert port.read(14) == b""  # the servos listen at 57600 only
        port.baudrate = 57_600
        port.timeout = 1.0
        t0 = time.monotonic()
        port.write(ping)
        assert len(port.read(14)) == 14
        assert time.monotonic() - t0 >= 0.016  # the adapter's latency timer (and 500 us return delay)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


def test_cli_help_documents_the_stock_adapter(capsys):
    from pearl_robot.cli.main import main

    with pytest.raises(SystemExit):
        main(["virtual-bus", "--help"])
    out = capsys.readouterr().out
    assert "--adapter-latency-ms" in out and "16 = a stock FTDI/U2D2" in " ".join(out.split())


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


@pytest.fixture
def unknown_model_yaml(tmp_path):
    shipped = load_spec().source
    hardware = tmp_path / "arm.yaml"
    text = shipped.read_text().replace("../sim/", f"{shipped.parent.parent}/sim/")
    hardware.write_text(text.replace("id: 12, model: XM430-W350", "id: 12, model: XM999-W1"))
    return hardware


@pytest.mark.parametrize(
    "args, message",
    [
        (["--adapter-latency-ms", "-3"], "--adapter-latency-ms: field '<value>': expected milliseconds >= 0"),
        (["--adapter-latency-ms", "soon"], "expected milliseconds >= 0, got 'soon'"),
        (["--servo-baud-rates", "500000"], "500000 bps is not a Dynamixel X-series baud rate (known: 9600,"),
        (["--servo-baud-rates", "57600,1000000"], "expected 1 or 5 values"),
        (["--hardware", "UNKNOWN_MODEL"], "field 'joints[1].model': unknown Dynamixel model 'XM999-W1' (known: "),
    ],
)
def test_cli_new_options_and_unknown_models_fail_in_one_line(capsys, unknown_model_yaml, args, message):
    from pearl_robot.cli.main import main

    args = [str(unknown_model_yaml) if a == "UNKNOWN_MODEL" else a for a in args]
    assert main(["virtual-bus", "--no-physics", *args]) == 1  # fails before any pty or thread starts
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
