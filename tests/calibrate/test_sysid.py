"""System identification: the excitation is safe, the fast replay is SimRobot's, and ``identify`` finds the
hidden dynamics (latency included) of a lock-step arm and of the real-time virtual arm, says how well the
fit replays motion it never saw against the encoder noise, and warns when the truth is out of its bounds."""

import dataclasses
import json

import numpy as np
import pytest

from pearl_robot.calibrate.model import Calibration
from pearl_robot.calibrate.sysid import (
    TrajectorySimulator,
    excitation,
    identify,
    record,
    still_hold,
    validation_excitation,
)
from pearl_robot.calibrate.sysid_replay import BatchReplay
from pearl_robot.robot.base import RobotState, RobotWrapper
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.robot.registry import open_robot
from pearl_robot.robot.safety import SafeRobot
from pearl_robot.robot.sim import SimRobot
from pearl_robot.robot.spec import load_spec
from pearl_robot.virtual import VirtualServoBus

TICK = 2 * np.pi / 4096
HIDDEN = ArmDynamics(
    damping_scale=(1.6, 0.7, 1.3, 0.8, 1.0),
    frictionloss_scale=(1.4, 0.6, 1.2, 1.5, 1.0),
    armature_scale=(1.3, 0.8, 1.2, 0.7, 1.0),
    gain_scale=(0.8, 1.25, 0.9, 1.1, 1.0),
    payload_mass_kg=0.12,
    latency_s=0.06,
)
# the demo's held-out virtual arm: arm-dynamics-small's test task 0 plus the serial link's 20 ms
DEMO_HELD_OUT = ArmDynamics(
    damping_scale=0.690, frictionloss_scale=2.104, gain_scale=0.946, payload_mass_kg=0.369, latency_s=0.0998
)
# stated tolerances, for 2 s of excitation per joint. Measured on the demo's arm with 2 ticks of noise: latency
# within 2 ms, gains and damping of joints 2-4 within 5 %; joint 1 (no gravity load: its standard errors are
# 10-20 %) within 11 %.
LATENCY_TOLERANCE_S = 0.010
GAIN_DAMPING_TOLERANCE = 0.20


class NoisyEncoders(RobotWrapper):
    """Gaussian encoder noise of ``ticks`` (std) on present position, then quantized to whole ticks."""

    def __init__(self, inner, ticks: float, seed: int = 0) -> None:
        super().__init__(inner)
        self.ticks = ticks
        self.rng = np.random.default_rng(seed)

    def read(self) -> RobotState:
        state = self.inner.read()
        noisy = state.position + self.rng.normal(0.0, self.ticks * TICK, state.position.shape)
        return dataclasses.replace(state, position=np.round(noisy / TICK) * TICK)


def _arm(values, spec) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=float), (spec.num_joints,))[spec.arm_joint_indices]


def _assert_recovered(result, truth, spec) -> None:
    assert result.latency_s == pytest.approx(truth.latency_s, abs=LATENCY_TOLERANCE_S)
    ratios = {}
    for field in ("gain_scale", "damping_scale"):
        fitted, hidden = _arm(getattr(result.dynamics, field), spec), _arm(getattr(truth, field), spec)
        ratios[field] = fitted / hidden
        # the base yaw joint (the first) carries no gravity load: scaling its gain, damping, friction and
        # armature together gives the same motion, so only their ratios are identifiable there
        assert np.abs(ratios[field][1:] - 1).max() < GAIN_DAMPING_TOLERANCE, (field, fitted, hidden)
    lag = ratios["gain_scale"] / ratios["damping_scale"]  # kp / damping: the servo's time constant
    assert np.abs(lag - 1).max() < GAIN_DAMPING_TOLERANCE, ("gain / damping", lag)
    assert result.dynamics.payload_mass_kg == pytest.approx(truth.payload_mass_kg, abs=0.03)
    assert result.validation_ratio <= 2.0
    assert result.validation_rms_before_rad > 4 * result.validation_rms_rad  # the nominal model is far off
    assert result.warnings() == []


def test_excitations_are_safe():
    spec = load_spec()
    cap = np.minimum(spec.safety.max_step_rad, spec.velocity_max * spec.period_s)
    targets, excited = excitation(spec, duration_s=3.0)
    start = spec.home_rad + 0.3
    hold = still_hold(spec, start, 1.0)
    for first, sequence in ((spec.home_rad, targets), (spec.home_rad, validation_excitation(spec, 4.0)), (start, hold)):
        steps = np.abs(np.diff(np.vstack([first, sequence]), axis=0))
        assert np.all(steps <= cap + 1e-12)
        assert np.all(sequence >= spec.position_min) and np.all(sequence <= spec.position_max)
    assert len(excited) == len(targets) and set(excited) == set(spec.arm_joint_indices)
    assert np.allclose(hold[-20:], spec.home_rad)  # the last second is still


def test_batch_replay_is_simrobot_with_a_continuous_latency():
    """At a latency that is a whole number of physics steps the fast replay is SimRobot's exactly; between
    two, it moves continuously from one to the other (what lets the fit estimate the latency)."""
    spec = load_spec()
    robot = SimRobot(spec, dynamics=HIDDEN)
    with robot:
        robot.enable()
        recording = record(robot, excitation(spec, duration_s=1.0)[0])
    reference = TrajectorySimulator(spec, recording)
    batch = BatchReplay(spec, recording.sent, recording.position[0], recording.period_s)
    at = [dataclasses.replace(HIDDEN, latency_s=s) for s in (0.0, 0.06, 0.061, 0.062)]
    fast = batch.replay(at)
    for dynamics, replayed in zip(at[:2], fast[:2]):
        assert np.abs(replayed - reference.rollout(dynamics)).max() < 1e-9
    assert np.abs(fast[1] - recording.position).max() < 1e-9  # the truth replays the recording
    between, ends = fast[2] - fast[1], fast[3] - fast[1]
    assert 0.3 < np.sum(between * ends) / np.sum(ends * ends) < 0.7  # about half way


def test_identify_recovers_latency_and_dynamics_through_the_safety_layer():
    """Lock-step arm with hidden dynamics, 60 ms latency and 2 ticks of encoder noise, through SafeRobot."""
    spec = load_spec()
    robot = NoisyEncoders(SafeRobot(SimRobot(spec, dynamics=HIDDEN)), ticks=2)
    with robot:
        robot.enable()
        result = identify(robot, seconds_per_joint=2.0)
    assert robot.inner.events["step_capped"] == 0 and robot.inner.events["position_clamped"] == 0
    print("\n".join(result.summary()))
    _assert_recovered(result, HIDDEN, spec)
    assert result.noise_floor_rad == pytest.approx(2 * TICK, rel=0.3)
    figures = json.loads(json.dumps(result.to_dict()))  # JSON-able, for bench sim2real
    assert figures["latency_estimated"] and figures["at_bounds"] == []
    assert set(figures) >= {"parameters", "latency_s", "validation_rms_rad", "noise_floor_rad", "validation_ratio"}


def test_identify_on_the_virtual_arm_with_the_demos_hidden_latency(tmp_path):
    """The demo's held-out virtual arm (100 ms latency hidden, 2 ticks of noise) over the serial path, in
    real time: the latency within 10 ms, gains and damping within 20 %, validation within 2x the noise."""
    spec = load_spec()
    bus = VirtualServoBus.from_spec(spec, dynamics=DEMO_HELD_OUT, sensor_noise_ticks=2, return_delay_time=0)
    with bus:
        calibration = Calibration.identity(spec).save(tmp_path / "arm.yaml")
        robot = open_robot(bus.address, spec, calibration=calibration, timeout_margin_ms=30)
        with robot:
            robot.enable()
            result = identify(robot, spec, seconds_per_joint=2.0)
    print("\n".join(result.summary() + result.warnings()))
    print(f"loop: {result.missed_deadlines} missed deadlines, up to {result.period_error_max_s * 1e3:.1f} ms late")
    if result.timing_off or bus.plant.lag_events:
        # a starved CPU (another job on a shared machine): the recording's timing is not the replay's, so
        # the fit cannot be held to the tolerances; what must hold then is that sysid says so
        assert result.warnings() or bus.plant.lag_events
        return
    _assert_recovered(result, DEMO_HELD_OUT, spec)


def test_identify_warns_at_a_bound_and_keeps_a_given_latency():
    """An arm far more damped than the bounds allow (x20): the damping sits at its upper bound, and says so.
    A latency given by the user is kept as it is, not fitted."""
    spec = load_spec()
    truth = ArmDynamics(damping_scale=(20.0, 1.0, 1.0, 1.0, 1.0), latency_s=0.04)
    robot = SimRobot(spec, dynamics=truth)
    with robot:
        robot.enable()
        result = identify(robot, seconds_per_joint=1.5, latency_s=0.04)
    flagged = [p.name for p in result.parameters if p.warn]
    assert "damping_scale[joint1]" in flagged
    assert any("damping_scale[joint1]" in w and "upper bound" in w for w in result.warnings())
    assert result.to_dict()["at_bounds"] == flagged
    assert result.latency_s == 0.04 and not result.latency_estimated
    assert "latency_s" not in result.to_dict()["parameters"]
