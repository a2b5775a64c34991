"""`--viz` on the robot computer's side (`pearl-robot serve`: each executed write, logged after its reply, and
the holds) and in `bench loop` (the loop's period error with and without telemetry, in the same run)."""

from __future__ import annotations

import time

import numpy as np
from viz_helpers import read_rrd

from pearl_robot.cli.main import build_parser
from pearl_robot.robot.registry import open_robot
from pearl_robot.robot.remote import RemoteRobot
from pearl_robot.server.server import RobotServer
from pearl_robot.viz import open_telemetry, parse_viz


def test_the_server_logs_each_write_and_its_holds(tmp_path):
    rrd = tmp_path / "serve.rrd"
    robot = open_robot("sim")
    telemetry = open_telemetry(parse_viz(f"save:{rrd}"), robot.spec, name="serve sim")
    server = RobotServer(robot, "tcp://127.0.0.1:*", telemetry=telemetry, heartbeat_timeout_s=2.0)
    client = None
    sent = []
    try:
        server.start()
        client = RemoteRobot.from_address(server.endpoints[0], robot.spec)
        client.connect()
        client.enable()
        target = client.read().position.copy()
        for _ in range(8):
            target[0] += 0.02
            sent.append(client.write(target).copy())
            time.sleep(robot.spec.period_s)
        time.sleep(robot.spec.period_s * (robot.spec.safety.watchdog_periods + 4))  # silence: the watchdog holds
    finally:
        if client is not None:
            client.close()
        server.close()
        robot.close()
        telemetry.close()
    entities = read_rrd(rrd)
    logged = [v[0] for v in entities["joints/joint1/sent"].values()]
    assert np.allclose(logged, [s[0] for s in sent])  # a hold's own write is a safety event, not a step
    assert len(entities["joints/joint1/measured"].rows) == 8
    log = [row["TextLog:text"][0] for row in entities["safety/log"].rows]
    assert any(text.startswith("watchdog_hold: watchdog") for text in log), log
    assert any(text.startswith("disabled") for text in log), log


def test_bench_loop_reports_the_period_error_with_and_without_telemetry(tmp_path):
    rrd = tmp_path / "loop.rrd"
    args = build_parser().parse_args(
        ["bench", "loop", "--json", "--cycles", "10", "--no-hog", "--no-rt", "--viz", f"save:{rrd}"]
    )
    result = args.bench_module.run(args)
    quiet = result["quiet"]
    assert result["telemetry"] == f"save:{rrd}"
    assert quiet["cycles"] == quiet["telemetry_cycles"] == quiet["host_noise_cycles"] == 10
    for key in ("period_error_p99_ms", "period_error_p99_ms_telemetry", "period_error_max_ms_telemetry"):
        assert quiet[key] >= 0, key
    assert (
        quiet["missed_deadlines_telemetry"] >= 0
        and 0 < quiet["telemetry_call_p50_ms"] <= quiet["telemetry_call_p99_ms"]
    )
    assert set(result["targets"]) == {"period_error_p99_ms<=0.5", "period_error_max_ms<=5", "missed_deadlines==0"}
    assert len(read_rrd(rrd)["joints/joint1/measured"].rows) == 10
