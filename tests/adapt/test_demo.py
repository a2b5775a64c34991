"""`pearl-robot demo`, the README's main command, end to end at a toy training budget: meta-training, a
virtual arm with held-out dynamics on a pseudo-terminal, adaptation over the serial path."""

import re
import shutil
import subprocess
import sys

from adapt_helpers import TINY

from pearl_robot.cli.demo import reusable_run
from pearl_robot.cli.main import main


def _demo(out, *extra):
    args = [sys.executable, "-m", "pearl_robot.cli.main", "demo", "--out", str(out), "--episodes", "2", *extra]
    for item in TINY:
        args += ["--set", item]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_demo_trains_then_adapts_over_serial_and_reuses_its_run(tmp_path):
    out = tmp_path / "demo"
    first = _demo(out)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "1/3 meta-training" in first.stdout and "virtual arm on /dev/" in first.stdout
    assert re.search(r"^\s+0\s+prior\s+-?\d", first.stdout, re.M)  # the table: episode 0 on the prior,
    assert re.search(r"^\s+1\s+posterior\s+-?\d", first.stdout, re.M)  # episode 1 on the posterior
    sessions = list(out.glob("session-*"))
    assert len(sessions) == 1
    assert all((sessions[0] / name).stat().st_size > 0 for name in ("session.jsonl", "session.hdf5", "returns.png"))

    second = _demo(out)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "reusing the trained run" in second.stdout


def test_demo_trains_again_when_its_run_has_another_observation_layout(tmp_path, capsys):
    reach = tmp_path / "reach"
    train = ["train", "--config", "arm-reach-small", "--out", str(reach), "--quiet"]
    assert main(train + [arg for item in TINY for arg in ("--set", item)]) == 0
    demo_run = tmp_path / "demo" / "train"
    shutil.copytree(reach, demo_run)
    (demo_run / "config.yaml").write_text((demo_run / "config.yaml").read_text().replace("arm-reach", "arm-dynamics"))
    assert not reusable_run(demo_run)  # arm-reach observes no goal: 15 observations, arm-dynamics 21
    assert "training again" in capsys.readouterr().out
