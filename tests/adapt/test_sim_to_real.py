"""Adaptation end to end through the real transports: the serial path to a virtual arm with held-out
dynamics, latency and encoder noise, and a ZeroMQ server in front of it; kill -9 and --resume; a device
that vanishes mid-episode."""

import contextlib
import os
import select
import signal
import subprocess
import sys
import time

import h5py
import pytest

from pearl_robot.adapt.policy import family_for, load_run
from pearl_robot.adapt.store import SessionStore
from pearl_robot.calibrate.model import Calibration
from pearl_robot.cli.main import main
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.robot.spec import load_spec
from pearl_robot.virtual import VirtualServoBus
from pearl_robot.virtual.faults import BusFaults

OPTIONS = "?timeout_margin_ms=40&retries=5"


@pytest.fixture
def virtual_arm(tiny_arm_run, tmp_path):
    """A virtual arm playing a held-out test task of the run's family, +20 ms latency, 2-tick noise."""
    cfg, _ = load_run(tiny_arm_run)
    _, test_tasks = family_for(cfg).split(cfg.seed)
    params = dict(test_tasks[0].params)
    params["latency_s"] = params.get("latency_s", 0.0) + 0.02
    spec = load_spec()
    calibration = Calibration.identity(spec).save(tmp_path / "calibration.yaml")
    buses = []

    def start(**kwargs):
        kwargs.setdefault("return_delay_time", 0)
        bus = VirtualServoBus.from_spec(
            spec, dynamics=ArmDynamics.from_dict(params), sensor_noise_ticks=2, **kwargs
        ).start()
        buses.append(bus)
        return bus

    yield start, calibration
    for bus in buses:
        bus.stop()


def adapt(run, robot, calibration, out, *extra):
    return main(["adapt", "--checkpoint", str(run), "--robot", robot, "--calibration", str(calibration),
                 "--out", str(out), "--same-goal", *extra])  # fmt: skip


def test_adapt_over_serial_on_held_out_dynamics(tiny_arm_run, virtual_arm, tmp_path, capsys):
    start, calibration = virtual_arm
    bus = start()
    code = adapt(tiny_arm_run, f"serial:{bus.device_path}{OPTIONS}", calibration, tmp_path / "s", "--episodes", "3")
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count(" prior ") == 1 and out.count(" posterior ") == 2
    data = SessionStore(tmp_path / "s").load()
    assert [e["aborted"] for e in data.episode_ends()] == [False] * 3
    assert len(data.steps()) == 30
    with h5py.File(tmp_path / "s" / "session.hdf5") as h5:
        assert h5.attrs["total_episodes"] == 3 and h5["episode_2/actions"].shape == (10, 4)
    assert (tmp_path / "s" / "returns.png").stat().st_size > 1000


def test_adapt_behind_a_stock_usb_adapter(tiny_arm_run, virtual_arm, tmp_path, capsys):
    """Replies 16 ms late (an FTDI/U2D2 at its factory latency timer), factory Return Delay Time: the
    session runs at 20 Hz with fresh states."""
    start, calibration = virtual_arm
    bus = start(adapter_latency_ms=16.0, return_delay_time=None)
    code = adapt(tiny_arm_run, f"serial:{bus.device_path}", calibration, tmp_path / "s", "--episodes", "2")
    out = capsys.readouterr().out
    assert code == 0, out
    data = SessionStore(tmp_path / "s").load()
    assert [e["aborted"] for e in data.episode_ends()] == [False] * 2
    assert len(data.steps()) == 20
    assert [s.get("return_delay_time") for s in bus.servos] == [0] * 5  # set once at connect


def test_adapt_through_a_zeromq_server_in_front_of_the_serial_arm(tiny_arm_run, virtual_arm, tmp_path, capsys):
    start, calibration = virtual_arm
    bus = start()
    serve = subprocess.Popen(
        [sys.executable, "-m", "pearl_robot.cli.main", "serve", "--robot", f"serial:{bus.device_path}{OPTIONS}",
         "--calibration", str(calibration), "--bind", "tcp://127.0.0.1:0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        endpoint = _serving_endpoint(serve)
        code = adapt(tiny_arm_run, endpoint, calibration, tmp_path / "s", "--episodes", "2")
        out = capsys.readouterr().out
        assert code == 0, out
        data = SessionStore(tmp_path / "s").load()
        assert len(data.episode_ends()) == 2 and len(data.steps()) == 20
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=10)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(timeout=5)
        serve.stdout.close()
        serve.stderr.close()
    assert serve.returncode == 0


def test_kill_9_mid_session_then_resume(tiny_arm_run, tmp_path):
    session = tmp_path / "s"
    cmd = [sys.executable, "-m", "pearl_robot.cli.main", "adapt", "--checkpoint", str(tiny_arm_run), "--robot", "sim",
           "--episodes", "4", "--out", str(session)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until the first episode is done and the second under way
            log = session / "session.jsonl"
            if log.exists() and log.read_text().count('"episode_end"') >= 1 and log.read_text().count('"step"') > 13:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
        proc.stdout.close()
    before = SessionStore(session).load()
    assert before.completed_episodes >= 1 and before.torn_records <= 1
    steps_before = len(before.steps())
    assert main(["adapt", "--resume", str(session), "--fast"]) == 0
    after = SessionStore(session).load()
    assert [e["episode"] for e in after.episode_ends()] == list(range(4))
    assert len(after.steps()) >= steps_before  # nothing on disk was lost
    interrupted = [e for e in after.episode_ends() if e["aborted"]]
    assert len(interrupted) == 1 and "interrupted" in interrupted[0]["reason"]
    assert [s["episode"] for s in after.steps()].count(3) == 10  # later episodes ran in full


def test_device_vanishing_mid_episode_is_a_safe_clear_stop(tiny_arm_run, virtual_arm, tmp_path, capsys):
    start, calibration = virtual_arm
    bus = start(faults=BusFaults(vanish_after_s=8.0))
    code = adapt(tiny_arm_run, f"serial:{bus.device_path}{OPTIONS}", calibration, tmp_path / "s", "--episodes", "50")
    captured = capsys.readouterr()
    assert code == 1
    assert "stopped safely" in captured.err and "--resume" in captured.err
    data = SessionStore(tmp_path / "s").load()
    assert len(data.steps()) > 0 and data.torn_records == 0
    # the device vanished during an episode (which then ends aborted and partial) or during the reset
    # motion before the next one (an episode whose start fails records nothing): never a fake episode
    last = data.episode_ends()[-1]
    assert last["aborted"] or (last["steps"] == 10 and not last.get("partial"))
    assert all(end["steps"] > 0 for end in data.episode_ends())


def _serving_endpoint(proc, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.stderr.read()}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("serving"):
                return line.split(" on ", 1)[1].split()[0]
    with contextlib.suppress(Exception):
        proc.kill()
    raise AssertionError("serve printed no 'serving' line")
