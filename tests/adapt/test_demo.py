"""`pearl-robot demo`, the README's main command, end to end at a toy training budget: meta-training, a
virtual arm with held-out dynamics on a pseudo-terminal, adaptation over the serial path, and the scripted
controller tuned for the fleet on the same arm, side by side."""

import re
import shutil
import subprocess
import sys

from toy_training import TINY

from pearl_robot.cli.demo import reusable_run
from pearl_robot.cli.main import main


def _demo(out, *extra):
    args = [sys.executable, "-m", "pearl_robot.cli.main", "demo", "--out", str(out), "--episodes", "2", *extra]
    for item in TINY:
        args += ["--set", item]
    return subprocess.run(args, capture_output=True, text=True, timeout=420, stdin=subprocess.DEVNULL)


def test_demo_trains_then_adapts_over_serial_and_reuses_its_run(tmp_path):
    out = tmp_path / "demo"
    first = _demo(out, "--scripted-episodes", "2")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "1/4 meta-training" in first.stdout and "virtual arm on /dev/" in first.stdout
    assert re.search(r"^\s+0\s+prior\s+-?\d", first.stdout, re.M)  # the table: episode 0 on the prior,
    assert re.search(r"^\s+1\s+posterior\s+-?\d", first.stdout, re.M)  # episode 1 on the posterior
    sessions = list(out.glob("session-*"))
    assert len(sessions) == 2  # PEARL's and the scripted controller's, on the same arm
    pearl = next(s for s in sessions if not s.name.endswith("-scripted"))
    assert all((pearl / name).stat().st_size > 0 for name in ("session.jsonl", "session.hdf5", "returns.png"))
    # the side-by-side table: prior z, posterior and the scripted controller, each with its episodes
    table = first.stdout[first.stdout.index("same virtual arm, same goal and start") :]
    assert re.search(r"PEARL, z from the prior\s+-?\d+\.\d+\s+\(-?\d", table)
    assert re.search(r"PEARL, posterior sampling\s+-?\d+\.\d+\s+\(-?\d", table)
    scripted = re.search(
        r"scripted, tuned for the fleet\s+(-?\d+\.\d+) \+- \d+\.\d+\s+\((-?\d+\.\d+), (-?\d+\.\d+);", table
    )
    assert scripted and abs(float(scripted[1]) - (float(scripted[2]) + float(scripted[3])) / 2) < 0.01
    assert "posterior minus scripted:" in table

    second = _demo(out, "--scripted-episodes", "0")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "reusing the trained run" in second.stdout


def test_demo_trains_again_when_its_run_has_another_observation_layout(tmp_path, capsys):
    reach = tmp_path / "reach"
    train = ["train", "--config", "arm-reach-small", "--out", str(reach), "--quiet"]
    assert main(train + [arg for item in TINY for arg in ("--set", item)]) == 0
    demo_run = tmp_path / "demo" / "train"
    shutil.copytree(reach, demo_run)
    (demo_run / "config.yaml").write_text((demo_run / "config.yaml").read_text().replace("arm-reach", "arm-fleet"))
    assert not reusable_run(demo_run)  # arm-reach observes no goal: 15 observations, arm-fleet 21
    assert "training again" in capsys.readouterr().out
