"""What the marks do downstream: the posterior's context leaves the operator's steps out unless told to
take them; a resumed session rebuilds the same context (and sessions logged before the mark still load);
the hdf5, Minari and LeRobot exports carry the mark; jogging between episodes in a session."""

import json
import threading
import time

import h5py
import minari  # the optional 'export' extra, which `make test` installs
import numpy as np
import pyarrow.parquet as pq
import pytest
from teleop_helpers import HORIZON, PushingPolicy, context_row, intervention_run, run_session

from pearl_robot import open_robot
from pearl_robot.adapt.export import export_hdf5
from pearl_robot.adapt.export_episodes import load_sources
from pearl_robot.adapt.export_lerobot import export_lerobot
from pearl_robot.adapt.export_minari import export_minari
from pearl_robot.adapt.session import AdaptationSession, SessionConfig
from pearl_robot.adapt.store import SessionStore
from pearl_robot.envs.robot_env import RobotEnv
from pearl_robot.tasks.reach import ReachTask


@pytest.fixture
def recorded(keyboard, tmp_path):
    """A 3-episode session on the simulator with a take-over in episode 0 (context: the policy's only)."""
    source, type_keys = keyboard()
    session, policy, data = run_session(open_robot("sim"), tmp_path / "s", source, type_keys)
    return tmp_path / "s", policy, data


def test_the_posterior_context_leaves_the_operator_out_by_default(recorded):
    _, policy, data = recorded
    n = len(intervention_run(data))
    assert n >= 3
    policy_steps = [s for s in data.steps() if not s["intervention"]]
    first, second = policy.posterior_inputs  # at the starts of episodes 1 and 2
    np.testing.assert_array_equal(first, [context_row(s) for s in policy_steps if s["episode"] == 0])
    np.testing.assert_array_equal(second, [context_row(s) for s in policy_steps if s["episode"] <= 1])
    assert len(first) == HORIZON - n and len(second) == 2 * HORIZON - n
    assert [s["context_size"] for s in data.episode_starts()] == [0, HORIZON - n, 2 * HORIZON - n]


def test_the_option_puts_the_operator_steps_in_the_context(keyboard, tmp_path):
    source, type_keys = keyboard()
    _, policy, data = run_session(open_robot("sim"), tmp_path / "s", source, type_keys, include=True)
    assert len(intervention_run(data)) >= 3
    first, second = policy.posterior_inputs
    np.testing.assert_array_equal(first, [context_row(s) for s in data.steps(0)])  # the operator's too
    assert len(second) == 2 * HORIZON


def resumed_context(folder, include=False):
    policy = PushingPolicy({}, lambda keys: None)
    env = RobotEnv(open_robot("mock"), ReachTask(np.zeros(3), HORIZON))
    store = SessionStore(folder)
    session = AdaptationSession(env, policy, store, SessionConfig(4, 1, context_includes_interventions=include))
    start = session.restore(store.resume())
    store.close()
    return start, session.context


def test_resume_rebuilds_the_same_context(recorded):
    folder, policy, data = recorded
    start, context = resumed_context(folder)
    assert start == 3
    np.testing.assert_array_equal(context, [context_row(s) for s in data.steps() if not s["intervention"]])
    _, everything = resumed_context(folder, include=True)
    assert len(everything) == 3 * HORIZON


def test_a_session_logged_before_the_mark_still_resumes(recorded, tmp_path):
    folder, _, data = recorded
    old = tmp_path / "old"
    old.mkdir()
    meta = json.loads((folder / "meta.json").read_text())
    meta.pop("log")  # the size it promised was of the log with the marks
    (old / "meta.json").write_text(json.dumps(meta))
    lines = []
    for record in data.records:
        record = {k: v for k, v in record.items() if k not in ("intervention", "policy_action", "interventions")}
        lines.append(json.dumps(record))
    (old / "session.jsonl").write_text("\n".join(lines) + "\n")
    start, context = resumed_context(old)
    assert start == 3 and len(context) == 3 * HORIZON  # no marks: every step is the policy's
    export_hdf5(SessionStore(old).load(), tmp_path / "old.hdf5")
    with h5py.File(tmp_path / "old.hdf5") as h5:
        assert not h5["episode_0/infos/intervention"][()].any() and h5["episode_0"].attrs["interventions"] == 0


def test_the_exports_carry_the_mark(recorded, tmp_path, monkeypatch):
    folder, _, data = recorded
    marks = {e: [s["intervention"] for s in data.steps(e)] for e in range(3)}
    assert any(marks[0]) and not any(marks[1] + marks[2])

    export_hdf5(data, tmp_path / "s.hdf5")
    with h5py.File(tmp_path / "s.hdf5") as h5:
        for e in range(3):
            assert h5[f"episode_{e}/infos/intervention"][()].tolist() == marks[e]
            assert h5[f"episode_{e}"].attrs["interventions"] == sum(marks[e])
        actions = h5["episode_0/actions"][()]
    np.testing.assert_allclose(actions, [s["requested_action"] for s in data.steps(0)], rtol=1e-6)

    sources = load_sources([folder])
    out = export_lerobot(sources, tmp_path / "lerobot")
    frames = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
    assert frames["complementary_info.is_intervention"] == [float(m) for e in range(3) for m in marks[e]]
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    assert episodes["intervention_steps"] == [sum(marks[e]) for e in range(3)]
    info = json.loads((out / "meta/info.json").read_text())
    assert info["features"]["complementary_info.is_intervention"]["shape"] == [1]

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    ident, _ = export_minari(sources, "pearl-robot/teleop")
    dataset = minari.load_dataset(ident)
    for e, episode in enumerate(dataset.iterate_episodes()):
        assert episode.infos["intervention"].tolist() == [False, *marks[e]]  # row 0: the reset
    metadata = list(dataset.storage.get_episode_metadata(range(3)))
    assert [m["intervention_steps"] for m in metadata] == [sum(marks[e]) for e in range(3)]


def test_jog_between_episodes_in_a_session(keyboard, tmp_path):
    """With reset jog, episode 1 starts only once the operator hands the arm back; nothing of the jog is
    an episode step."""
    source, type_keys = keyboard()
    made, handed_back = [], {}

    def operator():
        deadline = time.monotonic() + 30
        while not (made and made[0].takeovers == 1) and time.monotonic() < deadline:
            time.sleep(0.005)
        type_keys(b"2+++")
        time.sleep(0.2)
        handed_back["at"] = time.time()
        type_keys(b" ")

    thread = threading.Thread(target=operator)
    thread.start()
    try:
        _, _, data = run_session(open_robot("sim"), tmp_path / "s", source, type_keys, episodes=2, keys={},
                                 reset_jog=True, made=made.append)  # fmt: skip
    finally:
        thread.join(timeout=30)
    assert made[0].takeovers == 1
    assert data.episode_starts()[1]["wall_time"] >= handed_back["at"]
    assert len(data.steps()) == 2 * HORIZON and not any(s["intervention"] for s in data.steps())
