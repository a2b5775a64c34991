"""``pearl-robot replay``: a session recorded on a simulated arm replays on the simulator with no gap when
the simulator has that arm's dynamics, with a clear gap when it has other dynamics; bad sessions are one
clear line."""

import json

import numpy as np
import pytest
import yaml
from toy_training import TINY

from pearl_robot import open_robot
from pearl_robot.adapt.replay import recorded_period
from pearl_robot.adapt.session import AdaptationSession, SessionConfig
from pearl_robot.adapt.store import SessionData, SessionStore
from pearl_robot.calibrate.model import Calibration
from pearl_robot.cli.main import main
from pearl_robot.envs.robot_env import RobotEnv
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.robot.spec import load_spec
from pearl_robot.tasks.reach import ReachTask

HELD_OUT = ArmDynamics(gain_scale=0.6, damping_scale=1.8, frictionloss_scale=1.5, payload_mass_kg=0.1, latency_s=0.04)


class WavePolicy:
    """A scripted policy: every joint's target swings (no training needed to make a session)."""

    latent_size = 2

    def __init__(self) -> None:
        self.t = 0

    def act(self, obs, z, deterministic=True):
        self.t += 1
        return np.sin(0.3 * self.t + np.arange(4))

    def context_reward(self, reward, info):
        return reward

    def context_row(self, obs, action, reward, next_obs):
        return np.zeros(1)

    def posterior(self, context):
        return np.zeros(2), np.ones(2)

    def prior(self):
        return np.zeros(2), np.ones(2)


def record(folder, dynamics, episodes=2, horizon=20, dry_run=False):
    robot = open_robot("sim")
    robot.unwrapped().set_dynamics(dynamics)
    spec = robot.spec
    env = RobotEnv(robot, ReachTask(goal=np.array([0.2, 0.0, 0.15]), horizon=horizon), dry_run=dry_run)
    store = SessionStore(folder)
    store.create({"robot": "sim", "hardware": None, "robot_id": spec.robot_id, "joint_names": list(spec.joint_names)})
    with robot:
        AdaptationSession(env, WavePolicy(), store, SessionConfig(episodes, seed=1, dry_run=dry_run)).run()
    return folder


@pytest.fixture(scope="module")
def held_out_session(tmp_path_factory):
    return record(tmp_path_factory.mktemp("replay") / "s", HELD_OUT)


def identified(tmp_path, dynamics):
    calibration = Calibration.identity(load_spec())
    calibration.dynamics = dynamics
    return calibration.save(tmp_path / "calibration.yaml")


def replay_json(session, tmp_path, capsys, *extra):
    code = main(["replay", str(session), "--robot", "sim", "--out", str(tmp_path / "out"), "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_same_dynamics_replays_without_a_gap(held_out_session, tmp_path, capsys):
    report = replay_json(held_out_session, tmp_path, capsys, "--calibration", str(identified(tmp_path, HELD_OUT)))
    assert report["dynamics_source"].startswith("identified dynamics from")
    assert [e["steps"] for e in report["episodes"]] == [20, 20] and report["overall"]["steps"] == 40
    assert len(report["overall"]["rms_rad"]) == 5
    assert max(report["overall"]["max_rad"]) < 1e-4  # float32 observations of the start state
    assert (tmp_path / "out" / "replay.png").stat().st_size > 5000
    assert json.loads((tmp_path / "out" / "replay.json").read_text())["overall"] == report["overall"]


def test_other_dynamics_show_the_gap(held_out_session, tmp_path, capsys):
    nominal = replay_json(held_out_session, tmp_path, capsys)
    assert nominal["dynamics_source"].startswith("nominal model (no calibration file")
    arm_rms = nominal["overall"]["rms_rad"][:4]
    assert min(arm_rms) > 2e-3  # a few encoder ticks at least, on every arm joint
    closer = identified(tmp_path, ArmDynamics(gain_scale=0.55, damping_scale=1.8, latency_s=0.04))
    near = replay_json(held_out_session, tmp_path, capsys, "--calibration", str(closer))
    assert max(near["overall"]["rms_rad"][:4]) < min(arm_rms)  # closer dynamics, smaller gap


def test_table_report_and_a_calibration_without_dynamics(held_out_session, tmp_path, capsys):
    calibration = Calibration.identity(load_spec()).save(tmp_path / "joints-only.yaml")
    code = main(["replay", str(held_out_session), "--calibration", str(calibration), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "has no identified dynamics" in out and "RMS / max" in out
    assert out.count("\n    all ") == 1 and "joint1" in out
    assert (tmp_path / "replay.png").exists()


def test_recorded_control_period():
    spec = load_spec()
    steps = [{"kind": "step", "episode": 0, "timestamp": 10 + 0.04 * t} for t in range(10)]
    assert recorded_period(SessionData({}, steps), spec) == (pytest.approx(0.04), "recorded timestamps")
    unpaced = [{"kind": "step", "episode": 0, "timestamp": 10 + 0.001 * t} for t in range(10)]
    period, source = recorded_period(SessionData({}, unpaced), spec)
    assert period == spec.period_s and "unpaced" in source


@pytest.mark.parametrize("problem", ["missing", "corrupt meta", "corrupt step", "no steps", "dry run", "not sim"])
def test_bad_sessions_are_one_clear_line(problem, tmp_path, capsys):
    session = tmp_path / "s"
    robot = "sim"
    if problem == "corrupt meta":
        session.mkdir()
        (session / "meta.json").write_text("{not json")
    elif problem == "corrupt step":
        record(session, ArmDynamics(), episodes=1, horizon=3)
        with (session / "session.jsonl").open("a") as log:
            log.write('{"kind": "step", "episode": 0, "t": 3}\n')
    elif problem == "no steps":
        SessionStore(session).create({"robot": "sim"})
    elif problem == "dry run":
        record(session, ArmDynamics(), episodes=1, horizon=3, dry_run=True)
    elif problem == "not sim":
        record(session, ArmDynamics(), episodes=1, horizon=3)
        robot = "serial:/dev/ttyUSB0"
    assert main(["replay", str(session), "--robot", robot]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pearl-robot replay: error: ") and err.count("\n") == 1, err


# ---- the train-time check: does the family cover the identified arm? ------------------------------------

OUTLIER = ArmDynamics(gain_scale=(1.0, 0.1, 1.0, 1.0, 1.0), latency_s=0.5, armature_scale=2.0)


def test_outside_ranges_names_each_parameter_and_how_far():
    from pearl_robot.tasks.coverage import outside_ranges
    from pearl_robot.tasks.registry import make_family

    family = make_family("arm-dynamics")
    findings = outside_ranges(OUTLIER, family.center, family.ranges, family.spec.joint_names)
    assert len(findings) == 3, findings
    gain, latency, armature = (next(f for f in findings if f.startswith(p)) for p in ("gain", "lat", "arm"))
    assert gain.startswith("gain_scale[joint2] = 0.1 lies below") and "x0.4" in gain
    assert "above the family's range" in latency and "by 0.2" in latency
    assert "not varied" in armature
    assert outside_ranges(family.center, family.center, family.ranges, family.spec.joint_names) == []


def train(tmp_path, capsys, *extra):
    args = ["train", "--config", "arm-dynamics-small", "--out", str(tmp_path / "run"), "--quiet"]
    for item in TINY:
        args += ["--set", item]
    code = main([*args, *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.err


def test_train_centres_the_family_on_the_identified_arm(tmp_path, capsys):
    calibration = identified(tmp_path, OUTLIER)
    err = train(tmp_path, capsys, "--calibration", str(calibration))
    assert "warning" not in err
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["family_params"]["calibration"] == str(calibration.resolve())


def test_train_warns_when_a_centred_family_misses_the_identified_arm(tmp_path, capsys):
    calibration = identified(tmp_path, OUTLIER)
    err = train(tmp_path, capsys, "--calibration", str(calibration), "--set", "family_params.center={}")
    assert "gain_scale[joint2] = 0.1 lies below the family's range [0.25, 4]" in err
    assert "latency_s = 0.5 lies above" in err and "meta-training does not cover this arm" in err
