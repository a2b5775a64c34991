"""The calibration rehearsed on an arm without servo LEDs, as a user does it: `pearl-robot virtual-bus
--hardware so101 --operator --operator-cues FILE` (Feetech STS3215 servos, hidden offsets, a reversed
joint, 2 ticks of encoder noise) in one process, `pearl-robot calibrate joints --cue-file FILE
--non-interactive` in another, talking the Feetech protocol over the pty; the scripted hand follows the
cue file where a person would read the screen."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "calibrate"))  # the calibration tests' CLI runner, shared
from calibration_helpers import CliRun  # noqa: E402

from pearl_robot.calibrate.joints import CueFile, read_cue_file  # noqa: E402
from pearl_robot.calibrate.model import load_calibration  # noqa: E402
from pearl_robot.robot.spec import load_spec  # noqa: E402

pytestmark = pytest.mark.timeout(150)
HIDDEN_OFFSETS_TICKS = [300, -700, 150, 0, 40, -20]
HIDDEN_DIRECTIONS = [1, -1, 1, 1, 1, 1]
TICK = 2 * np.pi / 4096  # STS3215: 12-bit positions over one turn


def test_the_cue_file_is_replaced_whole_and_only_on_a_change(tmp_path):
    path = tmp_path / "cues.json"
    assert read_cue_file(path) is None  # nothing shown yet
    cues = CueFile(path)
    cues.show([2])
    assert read_cue_file(path) == {2} and json.loads(path.read_text()) == {"lit": [2]}
    stamp = path.stat().st_mtime_ns
    cues.show({2})
    assert path.stat().st_mtime_ns == stamp  # the same cue: not rewritten
    cues.show(range(6))
    assert read_cue_file(path) == set(range(6))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cues.json"]  # no partial file left
    path.write_text("{not json")
    assert read_cue_file(path) is None


def test_an_operator_without_leds_or_cue_file_is_one_clear_line(tmp_path):
    run = CliRun(["virtual-bus", "--hardware", "so101", "--operator", "--link", tmp_path / "arm"])
    try:
        code, _, stderr = run.wait(timeout_s=30)
    finally:
        run.close()
    assert code != 0
    assert stderr.strip().count("\n") == 0 and "--operator-cues FILE" in stderr and "--cue-file FILE" in stderr


def test_calibrate_joints_on_the_so101_by_its_cue_file(tmp_path):
    spec = load_spec("so101")
    link, cues, out = tmp_path / "arm", tmp_path / "cues.json", tmp_path / "cal.yaml"
    bus = CliRun(
        [
            "virtual-bus", "--hardware", "so101", "--operator", "--operator-cues", cues, "--link", link,
            "--hidden-offsets", ",".join(map(str, HIDDEN_OFFSETS_TICKS)),
            "--hidden-directions", ",".join(map(str, HIDDEN_DIRECTIONS)),
            "--sensor-noise-ticks", 2,
        ]
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not bus.lines:  # the device path comes first, once the link exists
            assert bus.proc.poll() is None, f"virtual-bus exited: {bus.proc.stderr.read()}"
            assert time.monotonic() < deadline, "virtual-bus did not start"
            time.sleep(0.05)
        cli = CliRun(
            [
                "calibrate", "joints", "--robot", f"serial:{link}?timeout_margin_ms=50", "--hardware", "so101",
                "--non-interactive", "--cue-file", cues, "--out", out, "--range-seconds", 5, "--timeout", 20,
            ]
        )  # fmt: skip
        try:
            code, stdout, stderr = cli.wait(timeout_s=120)
        finally:
            cli.close()
        bus.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            bus.proc.wait(timeout=10)
        hand = bus.proc.stderr.read()
    finally:
        bus.close()
    assert code == 0, f"{stderr}\n{stdout}\nvirtual-bus:\n{hand}"
    assert "The cue file" in stdout
    calibration = load_calibration(out)
    calibration.check_matches(spec)
    offsets, directions = calibration.arrays(spec)
    errors = offsets / TICK - np.array(HIDDEN_OFFSETS_TICKS)
    assert np.abs(errors).max() <= 1.0, errors
    assert list(directions) == HIDDEN_DIRECTIONS
    assert "sweeping every joint" in hand and hand.count("its positive direction") == spec.num_joints
