"""The `--viz` option: without the extra nothing changes and `--viz` says in one line how to install it;
`--help` never loads rerun; a bad value or a headless `live` is one clear line, before anything starts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from viz_helpers import WITHOUT_RERUN, run_cli

from pearl_robot.errors import PearlRobotError
from pearl_robot.viz import INSTALL_HINT, parse_viz
from pearl_robot.viz.sink import memory_bytes

HELP_PROBE = r"""
import contextlib, io, json, sys
from pearl_robot.cli.main import main
seen = {}
for line in (["adapt"], ["serve"], ["demo"], ["view"], ["bench", "loop"]):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main([*line, "--help"])
        except SystemExit:
            pass
    loaded = [m for m in ("rerun", "mujoco") if m in sys.modules]
    seen[" ".join(line)] = {"viz": "--viz" in out.getvalue(), "loaded": loaded}
print(json.dumps(seen))
"""


def test_help_shows_viz_and_loads_neither_rerun_nor_mujoco():
    result = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert set(seen) == {"adapt", "serve", "demo", "view", "bench loop"}
    for command, found in seen.items():
        assert found == {"viz": True, "loaded": []}, command


def test_without_the_extra_viz_says_how_to_install_it_in_one_line(viz_session, tmp_path):
    session, _ = viz_session
    target = tmp_path / "x.rrd"
    for args in (["view", session, "--viz", f"save:{target}"], ["demo", "--scripted", "--viz", f"save:{target}"]):
        result = run_cli(*args, code=WITHOUT_RERUN)
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1 and INSTALL_HINT in result.stderr, result.stderr
        assert not target.exists()


def test_without_the_extra_a_session_without_viz_runs_as_before(tiny_run, tmp_path):
    session = tmp_path / "s"
    args = ["adapt", "--checkpoint", tiny_run, "--robot", "sim", "--episodes", "1", "--out", session, "--fast"]
    refused = run_cli(*args, "--viz", f"save:{tmp_path / 'x.rrd'}", code=WITHOUT_RERUN)
    assert refused.returncode == 1 and INSTALL_HINT in refused.stderr and refused.stderr.count("\n") == 1
    assert not session.exists()  # refused before the session was created
    result = run_cli(*args, code=WITHOUT_RERUN)
    assert result.returncode == 0, result.stderr
    assert "returns per episode" in result.stdout and (session / "session.jsonl").exists()


@pytest.mark.parametrize(
    "value, memory, message",
    [
        ("bogus", "256MiB", "expected live, live:URL, save:PATH.rrd or serve[:PORT]"),
        ("save:", "256MiB", "needs a file name"),
        ("save:out.txt", "256MiB", "must end in .rrd"),
        ("serve:http", "256MiB", "the port must be a number"),
        ("live", "lots", "is not a size"),
        ("live", "100kB", "below 1 MiB"),
    ],
)
def test_a_bad_viz_value_is_one_clear_error(value, memory, message):
    with pytest.raises(PearlRobotError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_viz(value, memory)


def test_viz_values():
    assert parse_viz(None) is None
    assert parse_viz("live:10.0.0.2:9876").url == "rerun+http://10.0.0.2:9876/proxy"
    assert parse_viz("serve:9091", "1GB").port == 9091 and parse_viz("serve:9091", "1GB").memory_bytes == 10**9
    assert parse_viz("save:a/b.rrd").path.name == "b.rrd"
    assert memory_bytes("2MiB") == 2 << 20 and memory_bytes("50%") == 1 << 30


def test_live_on_a_headless_machine_says_what_to_use_instead(viz_session, tmp_path):
    session, _ = viz_session
    env = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}
    result = run_cli("view", session, env=env)  # view's default: --viz live
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "--viz save:PATH.rrd or --viz serve" in result.stderr


def test_save_into_a_missing_folder_is_one_line(viz_session, tmp_path):
    session, _ = viz_session
    result = run_cli("view", session, "--viz", f"save:{tmp_path / 'nowhere' / 'x.rrd'}")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "no such folder" in result.stderr
