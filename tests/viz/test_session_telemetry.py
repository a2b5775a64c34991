"""`pearl-robot adapt --viz save:` on the sim arm at 20 Hz writes an .rrd whose entities hold what the session
recorded; `pearl-robot view` of the recorded session gives the same entities."""

from __future__ import annotations

import json

import numpy as np
from viz_helpers import read_rrd, run_cli

from pearl_robot.adapt.store import read_session
from pearl_robot.robot.kinematics import Kinematics
from pearl_robot.robot.spec import load_spec

PER_STEP = (
    "task/reward", "task/reach_error_m", "control/intervention", "timing/period_error_ms", "twin/end_effector",
    "twin/reach_error",
)  # fmt: skip
PER_EPISODE = ("posterior/mean", "posterior/std", "posterior/std_mean", "episode/return")
TWIN = ("twin/arm/box", "twin/arm/capsule", "twin/arm/cylinder", "twin/scene/box", "twin/target")


def expected_entities(joints) -> set[str]:
    joint_paths = {f"joints/{j}/{what}" for j in joints for what in ("measured", "sent")}
    return joint_paths | set(PER_STEP) | set(PER_EPISODE) | set(TWIN) | {"safety/log", "timing/period_error_p99_ms"}


def test_a_live_session_logs_what_it_records(viz_session):
    session, rrd = viz_session
    data = read_session(session)
    steps, starts, ends = data.steps(), data.episode_starts(), data.episode_ends()
    assert len(steps) == 30 and len(starts) == len(ends) == 3
    spec = load_spec()
    entities = read_rrd(rrd)
    assert expected_entities(spec.joint_names) <= set(entities)

    for j, name in enumerate(spec.joint_names):
        measured, sent = entities[f"joints/{name}/measured"], entities[f"joints/{name}/sent"]
        assert measured.steps() == list(range(30))  # the step timeline: control steps of the session
        assert np.allclose([v[0] for v in measured.values()], [s["position"][j] for s in steps])
        assert np.allclose([v[0] for v in sent.values()], [s["sent_target"][j] for s in steps])
        assert measured.static["SeriesLines:names"] == ["measured"]
    assert np.allclose([v[0] for v in entities["task/reward"].values()], [s["reward"] for s in steps])
    assert [v[0] for v in entities["control/intervention"].values()] == [0.0] * 30  # no take-over in this session

    # one posterior entry per episode, at its first step, from the distribution its z was drawn from
    posterior = entities["posterior/mean"]
    assert [row["episode"] for row in posterior.rows] == [0, 1, 2]
    assert posterior.steps() == [0, 10, 20]
    for row, start in zip(posterior.rows, starts):
        assert np.allclose(row["Scalars:scalars"], start["posterior_mean"])
    std = [row["Scalars:scalars"] for row in entities["posterior/std"].rows]
    assert np.allclose(std, [np.sqrt(start["posterior_var"]) for start in starts])
    assert np.allclose([v[0] for v in entities["episode/return"].values()], [e["episode_return"] for e in ends])

    # the reach error is the twin's end effector to the recorded goal
    kinematics = Kinematics(spec)
    goals = {start["episode"]: np.asarray(start["goal"]) for start in starts}
    errors = [np.linalg.norm(kinematics.end_effector(np.asarray(s["position"])) - goals[s["episode"]]) for s in steps]
    assert np.allclose([v[0] for v in entities["task/reach_error_m"].values()], errors, atol=1e-6)
    assert len(entities["timing/period_error_ms"].rows) == 30  # the RateLoop's own figure, every step

    # the digital twin: the MJCF's moving boxes posed every step (after the home pose), its scene posed once
    boxes = entities["twin/arm/box"]
    assert len(boxes.static["Boxes3D:half_sizes"]) == 6 and len(boxes.rows) == 31
    assert all(len(row["Boxes3D:centers"]) == 6 and len(row["Boxes3D:quaternions"]) == 6 for row in boxes.rows)
    assert "Boxes3D:centers" in entities["twin/scene/box"].static
    ee = [row["Points3D:positions"][0] for row in entities["twin/end_effector"].rows]
    assert np.allclose(ee[-1], kinematics.end_effector(np.asarray(steps[-1]["position"])), atol=1e-6)

    # wall time runs forward with the steps
    walls = [row["wall_time"] for row in entities["joints/joint1/measured"].rows]
    assert walls == sorted(walls) and walls[-1] - walls[0] > 1.0  # 30 steps at 20 Hz
    log = [row["TextLog:text"][0] for row in entities["safety/log"].rows]
    assert sum("done: return" in text for text in log) == 3


def test_view_of_the_recorded_session_gives_the_same_entities(viz_session, tmp_path):
    session, live_rrd = viz_session
    replay_rrd = tmp_path / "replay.rrd"
    result = run_cli("view", session, "--viz", f"save:{replay_rrd}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"replayed {session}: 3 episodes, 30 steps to {replay_rrd}"
    live, replay = read_rrd(live_rrd), read_rrd(replay_rrd)
    logged = {path for path, entity in live.items() if entity.rows or entity.static}
    assert logged - {"__properties"} == set(replay) - {"__properties"}
    for path in ("joints/joint2/measured", "joints/gripper/sent", "task/reward", "posterior/mean", "episode/return"):
        assert live[path].steps() == replay[path].steps(), path
        assert np.allclose(live[path].values(), replay[path].values()), path
    assert np.allclose(live["task/reach_error_m"].values(), replay["task/reach_error_m"].values(), atol=1e-6)
    # replayed period errors come from the recorded state timestamps: every step but each episode's first
    assert len(replay["timing/period_error_ms"].rows) == 27
    walls = [row["wall_time"] for row in replay["joints/joint1/measured"].rows]
    assert walls == sorted(walls)


def test_view_refuses_a_session_of_another_arm_in_one_line(viz_session, tmp_path):
    session, _ = viz_session
    other = tmp_path / "other.yaml"
    text = load_spec().source.read_text().replace("name: gripper", "name: claw")
    other.write_text(text.replace("mjcf: ../sim/", f"mjcf: {load_spec().mjcf.parent}/"))
    result = run_cli("view", session, "--hardware", other, "--viz", f"save:{tmp_path / 'x.rrd'}")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "give the session's arm with --hardware" in result.stderr
    assert not (tmp_path / "x.rrd").exists()


def test_view_marks_the_operators_steps(viz_session, tmp_path):
    """A session where the operator took over steps 3-6 (as `--teleop` records them): the view marks them."""
    session, _ = viz_session
    marked = tmp_path / "marked"
    marked.mkdir()
    for item in session.iterdir():
        if item.is_file():
            (marked / item.name).write_bytes(item.read_bytes())
    lines = (marked / "session.jsonl").read_text().splitlines()
    out, t = [], 0
    for line in lines:
        record = json.loads(line)
        if record.get("kind") == "step":
            record["intervention"] = 3 <= t <= 6
            t += 1
            line = json.dumps(record)
        out.append(line)
    (marked / "session.jsonl").write_text("\n".join(out) + "\n")
    rrd = tmp_path / "marked.rrd"
    result = run_cli("view", marked, "--viz", f"save:{rrd}")
    assert result.returncode == 0, result.stderr
    flags = [v[0] for v in read_rrd(rrd)["control/intervention"].values()]
    assert flags == [1.0 if 3 <= t <= 6 else 0.0 for t in range(30)]
