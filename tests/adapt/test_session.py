"""The adaptation session on in-process robots: the z schedule, dry run, operator stop, faults, resume."""

import gc
import threading
import time

import numpy as np
import pytest

from pearl_robot import open_robot
from pearl_robot.adapt.policy import CheckpointMismatch, check_matches, family_for, load_run
from pearl_robot.adapt.session import AdaptationSession, SessionAborted, SessionConfig
from pearl_robot.adapt.store import SessionStore
from pearl_robot.control.loop import RateLoop


def make_session(run, robot_name, folder, episodes=3, realtime=False, dry_run=False, prior=1, robot=None):
    cfg, policy = load_run(run)
    family = family_for(cfg)
    robot = robot or open_robot(robot_name)
    loop = RateLoop(robot.spec.period_s, realtime=realtime)
    env = family.make_env(seed=0, robot=robot, loop=loop, dry_run=dry_run)
    store = SessionStore(folder)
    store.create({"checkpoint": str(run), "robot": robot_name})
    session = AdaptationSession(env, policy, store, SessionConfig(episodes, prior, seed=3, dry_run=dry_run))
    return session, robot, store


def test_posterior_sampling_schedule(tiny_arm_run, tmp_path):
    session, robot, store = make_session(tiny_arm_run, "sim", tmp_path / "s", episodes=4, prior=2)
    with robot:
        summaries = session.run()
    assert [s.z_source for s in summaries] == ["prior", "prior", "posterior", "posterior"]
    data = store.load()
    starts = data.episode_starts()
    assert [s["context_size"] for s in starts] == [0, 10, 20, 30]  # all context gathered on this robot
    assert np.allclose(starts[0]["posterior_mean"], 0) and np.allclose(starts[0]["posterior_var"], 1)
    assert not np.allclose(starts[2]["posterior_var"], 1)  # inferred from context
    z = [np.array(s["z"]) for s in starts]
    assert not np.allclose(z[2], z[3])  # resampled each episode
    assert len(data.steps()) == 40 and all(s["sent_target"] is not None for s in data.steps())
    assert robot.lifecycle.value == "closed"


def test_dry_run_never_enables_or_sends(tiny_arm_run, tmp_path):
    robot = open_robot("mock")
    session, robot, store = make_session(tiny_arm_run, "mock", tmp_path / "s", episodes=2, dry_run=True, robot=robot)
    with robot:
        session.run()
        assert robot.unwrapped().writes_received == 0 and not robot.unwrapped().torque_enabled
    steps = store.load().steps()
    assert len(steps) == 20 and all(s["sent_target"] is None for s in steps)
    assert all(np.isfinite(s["requested_action"]).all() for s in steps)


def test_operator_stop_is_safe_within_one_period_and_keeps_data(tiny_arm_run, tmp_path):
    session, robot, store = make_session(tiny_arm_run, "sim", tmp_path / "s", episodes=3, realtime=True)
    stopped_at = {}

    def stop_later():  # a few steps into the second episode, however long the first one took
        deadline = time.monotonic() + 30
        while len(session.context) < 13 and time.monotonic() < deadline:
            time.sleep(0.005)
        stopped_at["t"] = time.monotonic()
        session.request_stop("test operator")

    threading.Thread(target=stop_later, daemon=True).start()
    with robot, pytest.raises(SessionAborted, match="test operator"):
        session.run()
    elapsed = time.monotonic() - stopped_at["t"]
    assert elapsed < robot.spec.period_s + 0.05
    assert robot.lifecycle.value in ("inactive", "closed")
    data = store.load()
    assert data.episode_ends()[-1]["aborted"] and len(data.steps()) > 0
    assert data.torn_records == 0


@pytest.mark.parametrize("paced", [True, False])
def test_a_paced_episode_steps_with_the_collector_frozen(tiny_arm_run, tmp_path, monkeypatch, paced):
    """Paced by the clock: no collector pauses in the step loop, collection again after it; an unpaced
    simulation keeps the collector (a pause costs it nothing, a full collection per episode would)."""
    session, robot, _ = make_session(tiny_arm_run, "sim", tmp_path / "s", episodes=2, realtime=paced)
    act, collector_on = session.policy.act, []

    def act_and_look(*args, **kwargs):
        collector_on.append(gc.isenabled())
        return act(*args, **kwargs)

    monkeypatch.setattr(session.policy, "act", act_and_look)
    with robot:
        session.run()
    assert len(collector_on) == 20 and set(collector_on) == {not paced}
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_stop_file_stops_the_session(tiny_arm_run, tmp_path):
    session, robot, store = make_session(tiny_arm_run, "sim", tmp_path / "s", episodes=3)
    session.stop_file.write_text("")
    with robot, pytest.raises(SessionAborted, match="STOP file"):
        session.run()


def test_robot_fault_mid_episode_stops_safely(tiny_arm_run, tmp_path):
    robot = open_robot("mock")
    session, robot, store = make_session(tiny_arm_run, "mock", tmp_path / "s", episodes=3, robot=robot)
    mock = robot.unwrapped()
    original_read = mock._read
    calls = {"n": 0}

    def failing_read():
        calls["n"] += 1
        if calls["n"] == 25:
            mock.faults.joint_error = "joint3"
        return original_read()

    mock._read = failing_read
    with robot, pytest.raises(SessionAborted, match="safety stop.*joint_error\\[joint3\\]"):
        session.run()
    assert not mock.torque_enabled
    data = store.load()
    assert data.episode_ends()[-1]["aborted"] and len(data.steps()) >= 5


def test_resume_continues_where_it_stopped(tiny_arm_run, tmp_path):
    session, robot, store = make_session(tiny_arm_run, "sim", tmp_path / "s", episodes=2)
    with robot:
        session.run()
    cfg, policy = load_run(tiny_arm_run)
    family = family_for(cfg)
    robot = open_robot("sim")
    env = family.make_env(seed=0, robot=robot, loop=RateLoop(robot.spec.period_s, realtime=False))
    resumed_store = SessionStore(tmp_path / "s")
    resumed = AdaptationSession(env, policy, resumed_store, SessionConfig(4, 1, seed=3))
    start = resumed.restore(resumed_store.resume())
    assert start == 2 and len(resumed.context) == 20
    with robot:
        resumed.run(start)
    data = SessionStore(tmp_path / "s").load()
    assert [e["episode"] for e in data.episode_ends()] == [0, 1, 2, 3]
    assert data.episode_starts()[2]["context_size"] == 20


def test_checkpoint_must_match_the_robot(tiny_arm_run):
    _, policy = load_run(tiny_arm_run)
    with pytest.raises(CheckpointMismatch, match="trained for another arm"):
        check_matches(policy, policy.agent.obs_dim + 1, policy.agent.action_dim, "robot 'x'")
