"""The memory budget: with `--viz serve`, the server keeps at most `--viz-memory` of a long session for a
viewer that connects late (the oldest steps are dropped, the twin's static geometry is kept), and a
session's process does not grow with the length of the session."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
from viz_helpers import read_rrd

from pearl_robot.robot.spec import load_spec
from pearl_robot.viz import open_telemetry, parse_viz
from pearl_robot.viz.server import free_port, rerun_binary

BUDGET = 1 << 20  # 1 MiB: the smallest budget --viz-memory takes
STEPS = 3000  # about three times the budget of telemetry


def wait_until_stable(path, seconds: float = 1.5, timeout: float = 60.0) -> None:
    deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else -1
        if size != last:
            last, since = size, time.monotonic()
        elif size > 0 and time.monotonic() - since > seconds:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} still growing after {timeout} s")


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@pytest.mark.filterwarnings("ignore:RRD file has no footer")  # a stream saved as it came: no footer
def test_a_late_viewer_gets_the_newest_budget_and_the_static_twin(tmp_path):
    spec = load_spec()
    telemetry = open_telemetry(parse_viz(f"serve:{free_port()}", "1MiB"), spec)
    late = tmp_path / "late.rrd"
    saver = None
    try:
        assert telemetry.url.startswith("http://127.0.0.1:")
        telemetry.on_episode_start({"episode": 0, "goal": [0.2, 0.0, 0.1]})
        rss = []
        for i in range(STEPS):
            q = spec.home_rad + 0.2 * np.sin(i / 50)
            telemetry.on_step(0, i, q, q, -0.1, period_error_ms=0.01)
            if i % 1000 == 999:
                rss.append(rss_mb())
        telemetry.rec.flush(timeout_sec=10)
        # a viewer that connects now: rerun's own client, saving what the server still holds
        saver = subprocess.Popen(
            [rerun_binary(), telemetry._server.grpc_url, "--save", str(late), "--bind", "127.0.0.1",
             "--port", str(free_port())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until_stable(late)
    finally:
        if saver is not None:
            saver.terminate()
            saver.wait(timeout=10)
        telemetry.close()
    entities = read_rrd(late)
    seen = entities["joints/joint1/measured"].steps()
    assert seen and seen[-1] == STEPS - 1  # the newest steps are there
    assert seen[0] > STEPS // 2 and len(seen) < STEPS // 2  # the oldest were dropped to keep the budget
    assert late.stat().st_size < 2 * BUDGET
    assert len(entities["twin/arm/box"].static["Boxes3D:half_sizes"]) == 6  # static data is never dropped
    assert "Boxes3D:centers" in entities["twin/scene/box"].static
    assert max(rss) - min(rss) < 32  # MB: the control process does not keep the stream
