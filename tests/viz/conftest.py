import pytest
from toy_training import TINY
from viz_helpers import run_cli


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A (barely) trained arm-dynamics run: enough for a session to drive the arm."""
    run = tmp_path_factory.mktemp("runs") / "arm"
    args = ["train", "--config", "arm-dynamics-small", "--out", run]
    for item in TINY:
        args += ["--set", item]
    result = run_cli(*args, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def viz_session(tiny_run, tmp_path_factory):
    """A 3-episode adaptation on the sim arm at 20 Hz with --viz save: (session folder, its .rrd)."""
    folder = tmp_path_factory.mktemp("viz")
    session, rrd = folder / "session", folder / "live.rrd"
    result = run_cli(
        "adapt", "--checkpoint", tiny_run, "--robot", "sim", "--episodes", "3", "--out", session, "--viz", f"save:{rrd}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return session, rrd
