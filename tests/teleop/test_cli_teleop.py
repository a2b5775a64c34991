"""`pearl-robot adapt --teleop`: the operator at a real terminal (a pty as the command's stdin) takes the
simulated arm over, hands it back and jogs it between episodes; the marks reach the log and the table, and
the terminal gets its mode back. Without a terminal or a gamepad it is one line, at once, before anything
is loaded or created."""

import json
import os
import subprocess
import sys
import termios
import time

import pytest
from teleop_helpers import Lines

from pearl_robot.cli.main import main
from pearl_robot.teleop import gamepad


def adapt_command(*args):
    return [sys.executable, "-m", "pearl_robot.cli.main", "adapt", *map(str, args)]


def one_line_error(capsys, *args):
    assert main(["adapt", *map(str, args)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pearl-robot adapt: error: ") and err.count("\n") == 1, err
    return err


def test_no_terminal_is_one_line_and_no_hang(tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        adapt_command("--checkpoint", tmp_path / "no-run", "--out", tmp_path / "s", "--teleop", "keyboard"),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, start_new_session=True,
        env={**os.environ, "CI": "true"},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("pearl-robot adapt: error: --teleop keyboard needs a terminal")
    assert result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "s").exists() and time.monotonic() - started < 30


def test_bad_teleop_options_are_one_line(capsys, tmp_path, monkeypatch):
    base = ("--checkpoint", tmp_path / "no-run", "--out", tmp_path / "s")
    assert "does not exist" in one_line_error(capsys, *base, "--teleop", f"gamepad:{tmp_path / 'js7'}")
    monkeypatch.setattr(gamepad, "DEVICE_GLOB", str(tmp_path / "js*"))
    assert "no gamepad found" in one_line_error(capsys, *base, "--teleop", "gamepad")
    assert "unknown source" in one_line_error(capsys, *base, "--teleop", "spacemouse")
    assert "needs --teleop" in one_line_error(capsys, *base, "--teleop-reset")
    assert "--dry-run" in one_line_error(capsys, *base, "--teleop", "gamepad", "--dry-run")
    assert not (tmp_path / "s").exists()


def steps_logged(folder):
    log = folder / "session.jsonl"
    if not log.exists():
        return []
    return [r for r in map(json.loads, log.read_text().splitlines()[:-1] or []) if r["kind"] == "step"]


def wait_for(condition, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def pty_terminal():
    master, slave = os.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def test_take_over_hand_back_and_reset_jog_from_a_terminal(tiny_arm_run, tmp_path, pty_terminal):
    master, slave = pty_terminal
    mode_before = termios.tcgetattr(slave)
    folder = tmp_path / "s"
    proc = subprocess.Popen(
        adapt_command("--checkpoint", tiny_arm_run, "--robot", "sim", "--episodes", 3, "--out", folder,
                      "--teleop", "keyboard", "--teleop-reset"),
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out = Lines(proc.stdout)
        out.wait_for("teleop keys:")
        wait_for(lambda: len(steps_logged(folder)) >= 2)  # the first episode is under way, paced at 20 Hz
        os.write(master, b" 1++++")
        out.wait_for("the operator (keyboard) has the arm")
        wait_for(lambda: any(s["intervention"] for s in steps_logged(folder)))
        os.write(master, b" ")
        out.wait_for("reset jog before episode 1")
        os.write(master, b"3--g")
        out.wait_for("reset jog before episode 2")
        os.write(master, b"g")
        proc.wait(timeout=120)
        lines = out.rest()
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0, err
    rows = [line.split() for line in lines]
    table = [row for row in rows if row[:1] in (["0"], ["1"], ["2"])]  # the episode table's rows
    assert len(table) == 3
    records = [json.loads(line) for line in (folder / "session.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    marked = sum(s["intervention"] for s in steps)
    assert marked >= 1 and len(steps) == 30
    assert sum(int(row[8]) for row in table) == marked  # the table's teleop column
    assert sum(e["interventions"] for e in records if e["kind"] == "episode_end") == marked
    assert termios.tcgetattr(slave) == mode_before  # the terminal got its mode back
