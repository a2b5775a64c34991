import subprocess
import sys

import pytest

from pearl_robot.cli.main import build_parser, main


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pearl_robot.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_every_subcommand_has_help():
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    assert {"demo", "bench"} <= set(subcommands)
    for name, sub in subcommands.items():
        text = sub.format_help()
        assert len(text) > 80, name


def test_robot_commands_share_robot_and_hardware_flags():
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    demo_help = subcommands["demo"].format_help()
    assert "--robot" in demo_help and "--hardware" in demo_help


def test_user_mistakes_are_one_clear_line(tmp_path, capsys):
    assert main(["demo", "--scripted", "--robot", "ur5", "--fast"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown robot 'ur5'" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("robot_id: [\n")
    assert main(["demo", "--scripted", "--hardware", str(bad), "--fast"]) == 1
    err = capsys.readouterr().err
    assert "malformed YAML" in err and "Traceback" not in err


def test_demo_runs_end_to_end_in_a_subprocess():
    result = run_cli("demo", "--scripted", "--fast", "--goals", "1", "--steps", "30")
    assert result.returncode == 0, result.stderr
    assert "final distance" in result.stdout and "period_error_p99_ms" in result.stdout


@pytest.mark.parametrize("name", ["sim", "loop"])
def test_bench_prints_one_json_object(name):
    import json

    args = ["bench", name, "--json"] + (
        ["--steps", "50", "--repeats", "1"] if name == "sim" else ["--cycles", "20", "--no-hog"]
    )
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["benchmark"] == name
    if name == "sim":
        assert figures["ratio"] > 0 and "simrobot_s_per_step" in figures
    else:
        assert figures["quiet"]["cycles"] == 20 and "period_error_p99_ms" in figures["quiet"]


def test_bench_zmq_prints_its_figures_and_targets():
    import json

    result = run_cli("bench", "zmq", "--iterations", "200", "--blocks", "2", "--hold-trials", "1", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["benchmark"] == "zmq" and figures["iterations"] == 200
    assert set(figures["targets"]) >= {"link_ratio_p50<=1.5", "link_ratio_p99<=2"}
    assert figures["link_ratio_p50"] > 0 and figures["raw_p50_us"] > 0
    assert figures["watchdog_hold_trials"] == 1
