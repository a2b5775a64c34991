"""``pearl-robot train | eval | plot`` end to end on a tiny run (in-process, CI=true, no TTY)."""

from __future__ import annotations

import json

import yaml
from pearl_helpers import tiny_config

from pearl_robot.cli.main import main


def test_train_list_shows_each_family_and_its_small_variant(capsys):
    assert main(["train", "--list"]) == 0
    out = capsys.readouterr().out
    for family in ("point-robot", "cheetah-vel", "arm-dynamics", "sparse-point-robot"):
        assert f"{family}-small" in out


def test_train_eval_plot(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tensorboard=True).to_dict()))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--seed", "5", "--set", "num_iterations=2"]) == 0
    out = capsys.readouterr().out
    assert "it 2/2" in out and "\r" not in out  # plain lines without a TTY
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 5
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert main(["train", "--config", str(config), "--out", str(run)]) == 1  # refuses to overwrite a run
    capsys.readouterr()

    assert main(["eval", "--checkpoint", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["iteration"] == 2 and len(result["return_per_trajectory"]) == 3
    assert result["final_return"] == result["return_per_trajectory"][-1]
    assert main(["eval", "--checkpoint", str(run), "--prior-only"]) == 0
    assert "trajectory 2" in capsys.readouterr().out

    assert main(["plot", str(run)]) == 0
    for name in ("learning_curve.png", "adaptation.png", "losses.png"):
        png = run / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--config", "point-robot-small", "--set", "nope=1", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "field 'nope': unknown field" in err and "Traceback" not in err
    assert main(["train"]) == 1
