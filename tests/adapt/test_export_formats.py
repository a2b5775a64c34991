"""``pearl-robot export``: sessions recorded on the simulator (a scripted policy, no training) become a
Minari dataset that ``minari.load_dataset`` opens and a LeRobotDataset in the v3.0 layout, both checked
against the session logs; several sessions merge into one dataset; episodes cut short are truncated and
marked partial; bad input and a missing extra are one clear line."""

import contextlib
import json
import shutil
import sys

import minari  # the optional 'export' extra, which `make test` installs
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pearl_robot import open_robot
from pearl_robot.adapt.export_episodes import load_sources
from pearl_robot.adapt.session import AdaptationSession, SessionAborted, SessionConfig
from pearl_robot.adapt.store import SessionStore
from pearl_robot.cli.main import main
from pearl_robot.envs.robot_env import RobotEnv
from pearl_robot.robot.spec import load_spec
from pearl_robot.tasks.reach import ReachTask

HORIZON = 8
SPEC = load_spec()
ARM = [SPEC.joint_names[i] for i in SPEC.arm_joint_indices]


class WavePolicy:
    """Every joint's target swings; ``stop_at``: ask the session to stop after that many actions."""

    latent_size = 2

    def __init__(self, stop_at=None):
        self.t, self.stop_at, self.session = 0, stop_at, None

    def act(self, obs, z, deterministic=True):
        self.t += 1
        if self.t == self.stop_at:
            self.session.request_stop("operator stop")
        return np.sin(0.3 * self.t + np.arange(4))

    def context_reward(self, reward, info):
        return reward

    def context_row(self, obs, action, reward, next_obs):
        return np.zeros(1)

    def posterior(self, context):
        return np.array([0.3, -0.2]), np.array([0.04, 0.09])

    def prior(self):
        return np.zeros(2), np.ones(2)


def record(folder, episodes, stop_at=None, goal_observed=True, dry_run=False):
    robot = open_robot("sim")
    env = RobotEnv(robot, ReachTask(np.array([0.2, 0.0, 0.15]), HORIZON, goal_observed=goal_observed), dry_run=dry_run)
    store = SessionStore(folder)
    store.create({"robot": "sim", "hardware": None, "robot_id": SPEC.robot_id, "joint_names": list(SPEC.joint_names)})
    policy = WavePolicy(stop_at)
    policy.session = AdaptationSession(env, policy, store, SessionConfig(episodes, seed=1, dry_run=dry_run))
    with robot, pytest.raises(SessionAborted) if stop_at else contextlib.nullcontext():
        policy.session.run()
    return folder


def crash_in_an_episode(folder):
    """A start that recorded no step (a refused start, as older sessions have), then an episode of two steps
    whose process died: no end record, and the session never resumed."""
    store = SessionStore(folder)
    data = store.resume()
    zero = {"z": [0.1, 0.2], "z_source": "posterior", "posterior_mean": [0.3, -0.2], "posterior_var": [0.04, 0.09]}
    store.append("episode_start", episode=2, **zero)
    store.append("episode_end", sync=True, episode=2, episode_return=0.0, steps=0, aborted=True, reason="refused")
    store.append("episode_start", episode=3, **zero)
    for step in data.steps(1)[:2]:
        store.append("step", **{**{k: v for k, v in step.items() if k != "kind"}, "episode": 3})
    store.close()


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """s1: a full episode, then one stopped by the operator after 3 steps; s2: two full episodes, a refused
    start, then a crash 2 steps into an episode."""
    root = tmp_path_factory.mktemp("export")
    s1 = record(root / "s1", episodes=3, stop_at=HORIZON + 3)
    s2 = record(root / "s2", episodes=2)
    crash_in_an_episode(s2)
    return s1, s2


# (session, its episode index, steps, partial), in the merged order
EXPECTED = [("s1", 0, 8, False), ("s1", 1, 3, True), ("s2", 0, 8, False), ("s2", 1, 8, False), ("s2", 3, 2, True)]


def log(folder):
    lines = (folder / "session.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def logged_episodes(sessions):
    """Straight from the JSON lines: (start record, steps, end record or None) per expected episode."""
    out = []
    for name, index, _, _ in EXPECTED:
        records = log(sessions[int(name[1]) - 1])
        start = next(r for r in records if r["kind"] == "episode_start" and r["episode"] == index)
        steps = [r for r in records if r["kind"] == "step" and r["episode"] == index]
        end = next((r for r in records if r["kind"] == "episode_end" and r["episode"] == index), None)
        out.append((start, steps, end))
    return out


def export(capsys, *args):
    code = main(["export", *map(str, args)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def fail(capsys, *args):
    assert main(["export", *map(str, args)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pearl-robot export: error: ") and err.count("\n") == 1, err
    return err


# ---- minari ----------------------------------------------------------------------------------------------


def test_minari_dataset_opens_with_minari_load_dataset(sessions, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    out = export(capsys, *sessions, "--format", "minari")
    assert "pearl-robot/s1-and-1-more-v0" in out and "5 episodes (2 partial), 29 steps" in out
    dataset = minari.load_dataset("pearl-robot/s1-and-1-more-v0")
    env = RobotEnv(open_robot("mock"), ReachTask(np.zeros(3)))
    assert dataset.observation_space == env.observation_space and dataset.action_space == env.action_space
    assert dataset.total_episodes == 5 and dataset.total_steps == 29
    metadata = list(dataset.storage.get_episode_metadata(range(5)))
    for episode, meta, (name, index, steps, partial), (start, logged, end) in zip(
        dataset.iterate_episodes(), metadata, EXPECTED, logged_episodes(sessions)
    ):
        assert len(episode) == steps == len(logged)
        expected_obs = np.asarray([s["obs"] for s in logged] + [logged[-1]["next_obs"]], dtype=np.float32)
        np.testing.assert_array_equal(episode.observations, expected_obs)
        np.testing.assert_array_equal(episode.actions, np.float32([s["requested_action"] for s in logged]))
        np.testing.assert_array_equal(episode.rewards, [s["reward"] for s in logged])
        assert not episode.terminations.any() and episode.truncations.tolist() == [False] * (steps - 1) + [True]
        assert all(len(v) == steps + 1 for v in episode.infos.values())  # Minari's T+1 rows: reset, then steps
        np.testing.assert_allclose(episode.infos["z"], np.repeat([start["z"]], steps + 1, 0), rtol=1e-6)
        np.testing.assert_allclose(episode.infos["posterior_mean"][0], start["posterior_mean"], rtol=1e-6)
        np.testing.assert_allclose(episode.infos["posterior_std"][-1], np.sqrt(start["posterior_var"]), rtol=1e-6)
        np.testing.assert_array_equal(episode.infos["position"][1:], [s["position"] for s in logged])
        np.testing.assert_array_equal(episode.infos["timestamp"][1:], [s["timestamp"] for s in logged])
        assert np.isnan(episode.infos["position"][0]).all()
        assert str(meta["session"]).endswith(name) and meta["session_episode"] == index
        assert bool(meta["partial"]) is partial is (end is None or end["aborted"])
    assert "operator stop" in metadata[1]["end_reason"] and "no episode end" in metadata[4]["end_reason"]
    assert dataset.storage.metadata["pearl_robot"]["sessions"] == [str(s) for s in sessions]


def test_minari_names_follow_minari_rules(sessions, tmp_path, capsys):
    out = export(capsys, sessions[0], "--format", "minari", "--out", tmp_path, "--name", "lab/arm-reach")
    assert "lab/arm-reach-v0" in out and (tmp_path / "lab" / "arm-reach-v0" / "data" / "metadata.json").exists()
    assert "already exists" in fail(
        capsys, sessions[0], "--format", "minari", "--out", tmp_path, "--name", "lab/arm-reach"
    )
    assert "not a Minari dataset id" in fail(
        capsys, sessions[0], "--format", "minari", "--out", tmp_path, "--name", "a b"
    )


# ---- lerobot ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lerobot_root(sessions, tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot") / "ds"
    assert main(["export", *map(str, sessions), "--format", "lerobot", "--out", str(root)]) == 0
    return root


def test_lerobot_v3_layout(lerobot_root, sessions):
    files = sorted(str(p.relative_to(lerobot_root)) for p in lerobot_root.rglob("*") if p.is_file())
    assert files == [
        "data/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/info.json",
        "meta/pearl_robot.json",
        "meta/stats.json",
        "meta/tasks.parquet",
    ]  # no videos/
    info = json.loads((lerobot_root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 20 and info["robot_type"] == SPEC.robot_id
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (5, 29, 1)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] is None and info["splits"] == {"train": "0:5"} and info["chunks_size"] == 1000
    features = info["features"]
    assert features["observation.state"] == {"dtype": "float32", "shape": [4], "names": ARM, "unit": "rad"}
    assert features["action"] == {"dtype": "float32", "shape": [5], "names": list(SPEC.joint_names), "unit": "rad"}
    assert features["observation.velocity"]["unit"] == "rad/s"
    assert len(features["observation.environment_state"]["names"]) == 21
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert features[key]["shape"] == [1]

    frames = pq.read_table(lerobot_root / "data/chunk-000/file-000.parquet")
    assert frames.num_rows == 29 and set(frames.column_names) == set(features)
    assert pa.types.is_fixed_size_list(frames.schema.field("observation.state").type)
    columns = {k: np.asarray(frames.column(k).to_pylist()) for k in frames.column_names}
    assert columns["index"].tolist() == list(range(29))
    episodes = pq.read_table(lerobot_root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(e["length"], e["partial"], e["session_episode"]) for e in episodes] == [
        (n, p, i) for _, i, n, p in EXPECTED
    ]
    for row, (name, _, steps, _), (start, logged, _) in zip(episodes, EXPECTED, logged_episodes(sessions)):
        rows = slice(row["dataset_from_index"], row["dataset_to_index"])
        assert row["dataset_to_index"] - row["dataset_from_index"] == steps and row["session"].endswith(name)
        assert (row["data/chunk_index"], row["data/file_index"], row["tasks"]) == (0, 0, [row["tasks"][0]])
        assert (columns["episode_index"][rows] == row["episode_index"]).all()
        assert columns["frame_index"][rows].tolist() == list(range(steps))
        np.testing.assert_allclose(columns["timestamp"][rows], np.arange(steps) / 20, rtol=1e-6)
        np.testing.assert_array_equal(columns["observation.state"][rows], np.float32([s["obs"][:4] for s in logged]))
        np.testing.assert_array_equal(columns["action"][rows], np.float32([s["sent_target"] for s in logged]))
        np.testing.assert_array_equal(
            columns["policy_action"][rows], np.float32([s["requested_action"] for s in logged])
        )
        np.testing.assert_array_equal(columns["next.reward"][rows], np.float32([s["reward"] for s in logged]))
        assert columns["next.done"][rows].tolist() == [False] * (steps - 1) + [True]
        np.testing.assert_allclose(columns["z"][rows][0], start["z"], rtol=1e-6)
        assert row["stats/action/count"] == [steps]
        np.testing.assert_allclose(row["stats/next.reward/mean"], [np.mean([s["reward"] for s in logged])], rtol=1e-5)

    stats = json.loads((lerobot_root / "meta/stats.json").read_text())
    assert set(stats) == set(features) and set(stats["action"]) == {"min", "max", "mean", "std", "count"}
    np.testing.assert_allclose(stats["observation.state"]["mean"], columns["observation.state"].mean(0), rtol=1e-5)
    assert stats["index"]["count"] == [29]
    tasks = pq.read_table(lerobot_root / "meta/tasks.parquet")
    assert tasks.column("task_index").to_pylist() == [0] and tasks.schema.pandas_metadata["index_columns"] == ["task"]
    assert episodes[0]["tasks"] == tasks.column("task").to_pylist()


def test_lerobot_output_is_never_overwritten_nor_left_half_written(sessions, lerobot_root, tmp_path, capsys):
    assert "already exists" in fail(capsys, sessions[0], "--format", "lerobot", "--out", lerobot_root)
    dry = record(tmp_path / "dry", episodes=1, dry_run=True)
    assert "dry run" in fail(capsys, dry, "--format", "lerobot", "--out", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dry"]


# ---- hdf5, merging, partial markers ---------------------------------------------------------------------


def test_hdf5_is_the_existing_export(sessions, tmp_path, capsys):
    import h5py

    export(capsys, sessions[0], "--format", "hdf5", "--out", tmp_path)
    with h5py.File(tmp_path / "session.hdf5") as h5:
        assert sorted(h5) == ["episode_0", "episode_1"] and h5["episode_1/actions"].shape == (3, 4)
    assert "writes one session" in fail(capsys, *sessions, "--format", "hdf5", "--out", tmp_path)


def test_an_end_marked_partial_is_partial(sessions, tmp_path):
    copy = tmp_path / "s"
    shutil.copytree(sessions[1], copy)
    records = log(copy)
    for r in records:
        if r["kind"] == "episode_end" and r["episode"] == 0:
            r.update(aborted=False, partial=True, reason="re-run after resume")
    (copy / "session.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    episodes = load_sources([copy]).episodes
    assert [(e.partial, e.end_reason) for e in episodes][0] == (True, "re-run after resume")
    assert [e.partial for e in episodes] == [True, False, True]


def test_sessions_that_differ_are_not_merged(sessions, tmp_path, capsys):
    blind = record(tmp_path / "blind", episodes=1, goal_observed=False)
    err = fail(capsys, sessions[0], blind, "--format", "minari", "--out", tmp_path)
    assert "differs from" in err and "observation space" in err


# ---- bad input and the missing extra ---------------------------------------------------------------------


@pytest.mark.parametrize("problem", ["missing", "no session", "corrupt meta", "corrupt step", "no steps", "twice"])
def test_bad_sessions_are_one_clear_line(problem, sessions, tmp_path, capsys):
    session = tmp_path / "s"
    args = [session]
    if problem == "no session":
        session.mkdir()
    elif problem == "corrupt meta":
        session.mkdir()
        (session / "meta.json").write_text("{not json")
    elif problem == "corrupt step":
        shutil.copytree(sessions[0], session)
        with (session / "session.jsonl").open("a") as handle:
            handle.write('{"kind": "step", "episode": 0, "t": 9}\n')
    elif problem == "no steps":
        store = SessionStore(session)
        store.create({"robot": "sim"})
        store.close()
    elif problem == "twice":
        args = [sessions[0], sessions[0]]
    err = fail(capsys, *args, "--format", "lerobot", "--out", tmp_path / "out")
    expected = {
        "missing": "no such session folder",
        "no session": "holds no session",
        "corrupt meta": "corrupt session",
        "corrupt step": "step record 11 has no obs",
        "no steps": "no recorded steps",
        "twice": "given twice",
    }
    assert expected[problem] in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("fmt", "module"), [("minari", "minari"), ("lerobot", "pyarrow")])
def test_without_the_extra_says_how_to_install_it(fmt, module, sessions, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    err = fail(capsys, sessions[0], "--format", fmt, "--out", tmp_path / "out")
    assert f"--format {fmt} needs the optional 'export' extra" in err and "pip install 'pearl-robot[export]'" in err


# ---- a controller-action family (arm-fleet: the policy sets the scripted controller, not the joints) ----


class ControllerPolicy(WavePolicy):
    def act(self, obs, z, deterministic=True):
        self.t += 1
        return np.array([np.sin(0.3 * self.t), np.cos(0.3 * self.t)])  # gain, blend


def test_controller_actions_keep_their_own_space_and_names(tmp_path, capsys, monkeypatch):
    from pearl_robot.tasks.registry import make_family

    family = make_family("arm-fleet", max_path_length=HORIZON, residual_scale=0.0)
    robot = open_robot("sim")
    env = family.make_env(seed=0, robot=robot)
    assert env.action_space.shape == (2,)
    store = SessionStore(tmp_path / "fleet")
    store.create({"robot": "sim", "hardware": None, "robot_id": SPEC.robot_id, "joint_names": list(SPEC.joint_names)})
    with robot:
        AdaptationSession(env, ControllerPolicy(), store, SessionConfig(2, seed=1)).run()

    sources = load_sources([tmp_path / "fleet"])
    assert sources.action_names == ["controller.gain", "controller.blend"]
    assert sources.env.action_space.shape == (2,)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    export(capsys, tmp_path / "fleet", "--format", "minari")
    dataset = minari.load_dataset("pearl-robot/fleet-v0")
    assert dataset.action_space.shape == (2,)
    assert all(e.actions.shape == (HORIZON, 2) for e in dataset.iterate_episodes())
    export(capsys, tmp_path / "fleet", "--format", "lerobot", "--out", tmp_path / "lerobot")
    info = json.loads((tmp_path / "lerobot" / "meta" / "info.json").read_text())
    assert info["features"]["policy_action"]["names"] == ["controller.gain", "controller.blend"]
    table = pq.read_table(tmp_path / "lerobot" / "data" / "chunk-000" / "file-000.parquet")
    recorded = [s["requested_action"] for s in log(tmp_path / "fleet") if s["kind"] == "step"]
    assert np.allclose(np.stack(table.column("policy_action").to_numpy(zero_copy_only=False)), recorded, atol=1e-6)
