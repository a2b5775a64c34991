import errno
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from pearl_robot.adapt.export import export_hdf5
from pearl_robot.adapt.store import SessionStore, SessionStoreError

WRITER = """
import sys, time
from pearl_robot.adapt.store import SessionStore
store = SessionStore(sys.argv[1])
store.create({"robot": "mock"})
i = 0
while True:
    store.append("step", episode=0, t=i, obs=[float(i)] * 50)
    i += 1
    if i % 50 == 0:
        print(i, flush=True)
"""


def test_kill_9_loses_at_most_the_record_in_flight(tmp_path):
    folder = tmp_path / "session"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(4):
            reported = int(proc.stdout.readline())
        time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    data = SessionStore(folder).load()
    steps = data.steps()
    assert len(steps) >= reported
    assert [s["t"] for s in steps] == list(range(len(steps)))  # contiguous: nothing lost before the tail
    assert data.torn_records <= 1


def test_torn_tail_is_dropped_and_resume_appends_cleanly(tmp_path):
    store = SessionStore(tmp_path / "s")
    store.create({"robot": "mock"})
    for t in range(3):
        store.append("step", episode=0, t=t)
    store.close()
    with open(store.log_path, "a") as handle:
        handle.write('{"kind": "step", "episode": 0, "t": 3, "obs": [1.0, 2')  # the write in flight
    resumed = SessionStore(tmp_path / "s")
    data = resumed.resume()
    assert data.torn_records == 1 and len(data.steps()) == 3
    resumed.append("step", episode=0, t=3)
    resumed.close()
    assert [s["t"] for s in SessionStore(tmp_path / "s").load().steps()] == [0, 1, 2, 3]


def test_existing_session_is_not_overwritten(tmp_path):
    SessionStore(tmp_path / "s").create({})
    with pytest.raises(SessionStoreError, match="--resume"):
        SessionStore(tmp_path / "s").create({})


def test_disk_full_is_a_clear_error(tmp_path, monkeypatch):
    store = SessionStore(tmp_path / "s")
    store.create({})
    store.append("step", episode=0, t=0)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store._handle, "write", full)
    with pytest.raises(SessionStoreError, match="disk full.*intact"):
        store.append("step", episode=0, t=1)
    monkeypatch.undo()
    store.close()
    assert len(SessionStore(tmp_path / "s").load().steps()) == 1


def test_hdf5_export_minari_layout(tmp_path):
    store = SessionStore(tmp_path / "s")
    store.create({"robot": "mock"})
    for episode in range(2):
        store.append(
            "episode_start",
            episode=episode,
            z=np.ones(5),
            z_source="prior",
            posterior_mean=np.zeros(5),
            posterior_var=np.ones(5),
        )
        for t in range(4):
            store.append(
                "step",
                episode=episode,
                t=t,
                timestamp=float(t),
                obs=np.full(3, t),
                requested_action=[0.1, 0.2],
                sent_target=[1.0, 2.0],
                position=[1.0, 2.0],
                velocity=[0.0, 0.0],
                reward=-1.0,
                context_reward=-1.0,
                sparse_reward=0.0,
                next_obs=np.full(3, t + 1),
            )
        store.append("episode_end", episode=episode, episode_return=-4.0, aborted=False, steps=4)
    store.close()
    out = export_hdf5(tmp_path / "s", tmp_path / "s.hdf5")
    with h5py.File(out) as h5:
        assert h5.attrs["total_episodes"] == 2 and h5.attrs["total_steps"] == 8
        episode = h5["episode_1"]
        assert episode["observations"].shape == (5, 3) and episode["actions"].shape == (4, 2)
        assert np.array_equal(episode["observations"][:, 0], [0, 1, 2, 3, 4])
        assert list(episode["truncations"]) == [False, False, False, True]
        assert episode["infos/sent_target"].shape == (4, 2) and episode["infos/z"].shape == (5,)
