import numpy as np
import pytest

from pearl_robot.calibrate.sysid import excitation, fit_dynamics, record
from pearl_robot.robot.dynamics import ArmDynamics
from pearl_robot.robot.safety import SafeRobot
from pearl_robot.robot.sim import SimRobot
from pearl_robot.robot.spec import load_spec

TICK = 2 * np.pi / 4096
HIDDEN = ArmDynamics(
    damping_scale=(1.6, 0.7, 1.3, 0.8, 1.0),
    frictionloss_scale=(1.4, 0.6, 1.2, 1.5, 1.0),
    armature_scale=(1.3, 0.8, 1.2, 0.7, 1.0),
    gain_scale=(0.8, 1.25, 0.9, 1.1, 1.0),
    payload_mass_kg=0.12,
)


def test_excitation_is_safe():
    spec = load_spec()
    targets, excited = excitation(spec, duration_s=3.0)
    cap = np.minimum(spec.safety.max_step_rad, spec.velocity_max * spec.period_s)
    steps = np.abs(np.diff(np.vstack([spec.home_rad, targets]), axis=0))
    assert np.all(steps <= cap + 1e-12)
    assert np.all(targets >= spec.position_min) and np.all(targets <= spec.position_max)
    assert len(excited) == len(targets) and set(excited) == set(spec.arm_joint_indices)


def test_fit_recovers_hidden_dynamics_through_the_safety_layer():
    """The recorded arm (hidden dynamics, one tick of sensor noise) is fitted to the noise floor, and the
    well-excited parameters (gains, payload) come back within 10%."""
    spec = load_spec()
    robot = SafeRobot(SimRobot(spec, dynamics=HIDDEN))
    targets, excited = excitation(spec, duration_s=3.0)
    with robot:
        robot.enable()
        recording = record(robot, targets)
    assert robot.events["step_capped"] == 0 and robot.events["position_clamped"] == 0
    noise = TICK
    recording.position[:] += np.random.default_rng(0).normal(0, noise, recording.position.shape)
    fit = fit_dynamics(spec, recording, excited)
    assert fit.rms_before_rad > 4 * noise
    assert fit.rms_after_rad < 2 * noise
    arm = spec.arm_joint_indices
    assert np.asarray(fit.dynamics.gain_scale)[arm] == pytest.approx(np.asarray(HIDDEN.gain_scale)[arm], rel=0.1)
    assert fit.dynamics.payload_mass_kg == pytest.approx(HIDDEN.payload_mass_kg, rel=0.1)
