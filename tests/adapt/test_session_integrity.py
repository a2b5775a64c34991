"""Sessions that never lie, through the real CLI: a refused start records nothing, --resume drives the robot
as its command line says, a cut-short episode is partial everywhere, a STOP file asks for one stop, the log
is never rewritten in place or silently restarted, and a run's checkpoint and policy are one pair."""

import os
import shutil
import subprocess
import sys
import time

import h5py
import pytest

from pearl_robot.adapt.store import SessionStore
from pearl_robot.calibrate.model import Calibration
from pearl_robot.cli.main import main
from pearl_robot.io import current_umask
from pearl_robot.robot.spec import load_spec
from pearl_robot.virtual import VirtualServoBus

CLI = [sys.executable, "-m", "pearl_robot.cli.main"]


@pytest.fixture
def serial_arm(tmp_path):
    """An uncalibrated virtual serial arm (it refuses to enable without --calibration) and a calibration."""
    spec = load_spec()
    bus = VirtualServoBus.from_spec(spec, return_delay_time=0).start()
    yield f"serial:{bus.device_path}", Calibration.identity(spec).save(tmp_path / "calibration.yaml")
    bus.stop()


def adapt(*args):
    return main(["adapt", *map(str, args)])


def test_refused_start_records_nothing_and_resume_takes_the_new_calibration(tiny_arm_run, serial_arm, tmp_path, capsys):
    robot, calibration = serial_arm
    session = tmp_path / "s"
    assert adapt("--checkpoint", tiny_arm_run, "--robot", robot, "--out", session, "--episodes", "1", "--fast") == 1
    err = capsys.readouterr().err.strip()
    assert "not calibrated" in err and "no step recorded" in err and len(err.splitlines()) == 1
    assert not session.exists()  # the same command works once the arm is calibrated

    assert adapt("--checkpoint", tiny_arm_run, "--robot", robot, "--calibration", calibration, "--out", session,
                 "--episodes", "1", "--fast") == 0  # fmt: skip
    moved = str(shutil.copy(calibration, tmp_path / "recalibrated.yaml"))
    capsys.readouterr()
    # the arm refuses to enable on resume (a calibration that is not there): the log does not change
    log_before = (session / "session.jsonl").read_bytes()
    assert adapt("--resume", session, "--episodes", "3", "--calibration", tmp_path / "missing.yaml") == 1
    assert (session / "session.jsonl").read_bytes() == log_before
    assert "no step recorded (continue with --resume" in capsys.readouterr().err

    assert adapt("--resume", session, "--episodes", "3", "--calibration", moved) == 0
    out = capsys.readouterr().out
    assert f"--calibration {moved} (was {calibration})" in out
    data = SessionStore(session).load()
    assert [e["steps"] for e in data.episode_ends()] == [10, 10, 10]
    assert [s["z_source"] for s in data.episode_starts()] == ["prior", "posterior", "posterior"]
    assert [s["robot_options"]["calibration"] for s in data.episode_starts()] == [str(calibration), moved, moved]
    assert all(e["episode_return"] != 0.0 for e in data.episode_ends())


def _adapt_in_background(run, session):
    cmd = [*CLI, "adapt", "--checkpoint", str(run), "--robot", "sim", "--episodes", "3", "--out", str(session)]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for_steps(session, steps, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    log = session / "session.jsonl"
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count('"kind":"step"') >= steps:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {steps} steps within {timeout_s} s")


def test_stop_file_stops_once_and_the_cut_episode_is_partial_everywhere(tiny_arm_run, tmp_path, capsys):
    session = tmp_path / "s"
    proc = _adapt_in_background(tiny_arm_run, session)
    try:
        _wait_for_steps(session, 14)  # episode 1 under way
        (session / "STOP").write_text("")
        assert proc.wait(timeout=30) == 1
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert not (session / "STOP").exists()  # the stop it asked for has happened
    cut = SessionStore(session).load().episode_ends()[-1]
    assert cut["partial"] and 0 < cut["steps"] < 10

    assert adapt("--resume", session, "--fast") == 0
    out = capsys.readouterr().out
    returns = out.split("returns per episode: ")[1]
    assert returns.count("(partial)") == 1
    ends = SessionStore(session).load().episode_ends()
    assert [e["partial"] for e in ends] == [False, True, False]
    with h5py.File(session / "session.hdf5") as h5:
        assert h5.attrs["partial_episodes"] == 1
        assert h5["episode_1"].attrs["partial"] and h5["episode_1/truncations"][-1]
        assert not h5["episode_2"].attrs["partial"] and h5["episode_2/truncations"][-1]

    # a STOP file left there stops one resume before it moves anything, and is consumed
    (session / "STOP").write_text("")
    assert adapt("--resume", session, "--episodes", "4", "--fast") == 1
    assert not (session / "STOP").exists() and len(SessionStore(session).load().episode_ends()) == 3
    assert adapt("--resume", session, "--episodes", "4", "--fast") == 0
    assert len(SessionStore(session).load().episode_ends()) == 4


def test_torn_tail_is_dropped_by_an_atomic_rewrite(tiny_arm_run, tmp_path, capsys, monkeypatch):
    session = tmp_path / "s"
    assert adapt("--checkpoint", tiny_arm_run, "--robot", "sim", "--episodes", "1", "--out", session, "--fast") == 0
    log = session / "session.jsonl"
    with log.open("a") as handle:
        handle.write('{"kind":"episode_start","episode":1,"z":[0.1,')  # the write in flight at a kill
    torn = log.read_bytes()

    def crash(*args):  # the rename never happens (a kill -9 during the rewrite)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("pearl_robot.io.os.replace", crash)
    assert adapt("--resume", session, "--episodes", "2", "--fast") == 1
    assert "Input/output error" in capsys.readouterr().err
    assert log.read_bytes() == torn  # every record still there, no temporary file left
    assert sorted(p.name for p in session.iterdir() if p.name.startswith(".")) == []
    monkeypatch.undo()

    assert adapt("--resume", session, "--episodes", "2", "--fast") == 0
    data = SessionStore(session).load()
    assert data.torn_records == 0 and [e["steps"] for e in data.episode_ends()] == [10, 10]
    assert (session / "recovered.json").exists()


@pytest.mark.parametrize("damage", ["emptied", "deleted"])
def test_a_log_shorter_than_meta_says_is_an_error_not_a_fresh_start(tiny_arm_run, tmp_path, capsys, damage):
    session = tmp_path / "s"
    assert adapt("--checkpoint", tiny_arm_run, "--robot", "sim", "--episodes", "2", "--out", session, "--fast") == 0
    export = (session / "session.hdf5").read_bytes()
    log = session / "session.jsonl"
    log.write_bytes(b"") if damage == "emptied" else log.unlink()
    capsys.readouterr()
    assert adapt("--resume", session, "--episodes", "3", "--fast") == 1
    err = capsys.readouterr().err.strip()
    assert "cut short or replaced" in err and len(err.splitlines()) == 1
    assert (session / "session.hdf5").read_bytes() == export
    assert (not log.exists()) or log.read_bytes() == b""


def test_checkpoint_and_policy_are_one_pair(tiny_arm_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_arm_run, run)
    assert (run / "checkpoint.json").exists()
    # a crash between the two renames: a newer checkpoint beside the old policy
    newer = tmp_path / "newer"
    shutil.copytree(tiny_arm_run, newer)
    trained = subprocess.run([*CLI, "train", "--resume", str(newer), "--quiet", "--set", "num_iterations=2"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    shutil.copy(newer / "checkpoint.pt", run / "checkpoint.pt")
    capsys.readouterr()
    assert adapt("--checkpoint", run, "--robot", "sim", "--episodes", "1", "--out", tmp_path / "s", "--fast") == 1
    err = capsys.readouterr().err
    assert "checkpoint.pt do not match checkpoint.json" in err and f"train --resume {run}" in err
    assert not (tmp_path / "s").exists()

    healed = subprocess.run([*CLI, "train", "--resume", str(run), "--quiet"], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert healed.returncode == 0, healed.stderr[-2000:]
    assert (run / "policy.npz").read_bytes() == (newer / "policy.npz").read_bytes()
    assert adapt("--checkpoint", run, "--robot", "sim", "--episodes", "1", "--out", tmp_path / "s", "--fast") == 0

    (run / "checkpoint.json").unlink()  # a run saved before the manifest existed still loads
    assert adapt("--checkpoint", run, "--robot", "sim", "--episodes", "1", "--out", tmp_path / "s2", "--fast") == 0


def test_files_follow_the_umask(tiny_arm_run, tmp_path):
    session = tmp_path / "s"
    cmd = [*CLI, "adapt", "--checkpoint", str(tiny_arm_run), "--robot", "sim", "--episodes", "1", "--fast",
           "--out", str(session)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0o002))
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("meta.json", "session.jsonl", "session.hdf5", "returns.png"):
        assert (session / name).stat().st_mode & 0o777 == 0o664, name
    for name in ("checkpoint.pt", "policy.npz", "checkpoint.json"):  # trained under this process's umask
        assert (tiny_arm_run / name).stat().st_mode & 0o777 == 0o666 & ~current_umask(), name
