"""Full disks and read-only folders, on a real small tmpfs: one clear line, the data up to the failure
intact, no segfault, no temporary file left, the robot safe."""

import contextlib
import shutil
import subprocess
import sys
import uuid

import pytest

from pearl_robot import open_robot
from pearl_robot.adapt.store import SessionStore
from pearl_robot.cli.main import main

CLI = [sys.executable, "-m", "pearl_robot.cli.main"]


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size_kib, read_only=False)``: a tmpfs of that size (unmounted at teardown); skipped where
    this machine does not let the tests mount one (not root, no CAP_SYS_ADMIN, a restricted container)."""
    mounted = []

    def mount(size_kib, read_only=False):
        point = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(point)],
                                capture_output=True, text=True)  # fmt: skip
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-l", str(point)], check=True, capture_output=True)


def remount_read_only(point):
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True, capture_output=True)


def run_cli(*args):
    """A subprocess, so a segfault shows as a negative return code."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120)


def recorded_session(run, session, episodes):
    result = run_cli("adapt", "--checkpoint", run, "--robot", "sim", "--episodes", episodes, "--fast", "--out", session)
    assert result.returncode == 0, result.stderr[-2000:]
    return session


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp"))


def assert_log_intact(session):
    data = SessionStore(session).load()
    assert data.torn_records <= 1
    for episode in {s["episode"] for s in data.steps()}:
        assert [s["t"] for s in data.steps(episode)] == list(range(len(data.steps(episode))))
    return data


def test_full_disk_mid_session_is_one_line_and_the_arm_is_safe(tiny_arm_run, tmpfs, monkeypatch, capsys):
    session = tmpfs(48) / "s"
    robot = open_robot("mock")
    monkeypatch.setattr("pearl_robot.cli.adapt.open_robot", lambda *args, **kwargs: robot)
    code = main(["adapt", "--checkpoint", str(tiny_arm_run), "--robot", "mock", "--episodes", "200", "--fast",
                 "--out", str(session)])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("pearl-robot adapt: error: disk full") and "intact" in err and len(err.splitlines()) == 1
    assert not robot.unwrapped().torque_enabled and robot.lifecycle.value == "closed"
    data = assert_log_intact(session)
    assert len(data.steps()) > 10 and leftovers(session.parent) == []
    assert data.meta["log"]["bytes"] <= (session / "session.jsonl").stat().st_size


def test_full_disk_during_the_hdf5_export(tiny_arm_run, tmp_path, tmpfs):
    made = recorded_session(tiny_arm_run, tmp_path / "made", 4)
    log = (made / "session.jsonl").read_bytes()
    room = (len(log) + 4096) // 1024 + 8  # the log and meta fit, the export does not
    session = tmpfs(room) / "s"
    session.mkdir()
    for name in ("meta.json", "session.jsonl"):
        shutil.copy(made / name, session / name)
    result = run_cli("adapt", "--resume", session, "--fast")  # a finished session: only the export is left
    err = result.stderr.strip()
    assert result.returncode == 1, result.stderr[-2000:]
    assert "session.hdf5 not written (disk full" in err and len(err.splitlines()) == 1
    assert (session / "session.jsonl").read_bytes() == log
    assert not (session / "session.hdf5").exists() and leftovers(session.parent) == []


def test_read_only_folder(tiny_arm_run, tmp_path, tmpfs):
    made = recorded_session(tiny_arm_run, tmp_path / "made", 1)
    point = tmpfs(1024)
    shutil.copytree(made, point / "s")
    remount_read_only(point)

    result = run_cli("adapt", "--resume", point / "s", "--episodes", "2", "--fast")
    err = result.stderr.strip()
    assert result.returncode == 1 and len(err.splitlines()) == 1
    assert "Read-only file system" in err
    assert (point / "s" / "session.jsonl").read_bytes() == (made / "session.jsonl").read_bytes()

    result = run_cli("adapt", "--checkpoint", tiny_arm_run, "--robot", "sim", "--fast", "--out", point / "new")
    err = result.stderr.strip()
    assert result.returncode == 1 and len(err.splitlines()) == 1 and "Read-only file system" in err
    assert not (point / "new").exists()
