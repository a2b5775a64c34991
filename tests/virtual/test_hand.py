"""The operator's hand on the virtual arm: moves a joint at a hand's pace, holds it against gravity with
torque off, lets go. Stepped by hand (``advance_to``), no real-time thread."""

import numpy as np
import pytest

from pearl_robot.robot.spec import load_spec
from pearl_robot.virtual import Hand, IdealPlant, MujocoPlant


def run_until(plant, t_s):
    while plant.data.time < t_s - 1e-9:  # in slices under the plant's max_lag_s
        plant.advance_to(min(t_s, plant.data.time + 0.1))


def test_hand_moves_holds_and_releases_a_limp_joint():
    spec = load_spec()
    plant = MujocoPlant(spec, initial_position_rad=np.zeros(spec.num_joints))  # torque off: limp
    hand = Hand(plant, spec.num_joints)
    hand.pose(np.zeros(spec.num_joints), speed_rad_s=None)
    hand.hold(1, 0.5, speed_rad_s=1.0)
    run_until(plant, 0.2)
    q, qd, _ = plant.joint_state(1)
    assert q == pytest.approx(0.2, abs=0.005) and qd == pytest.approx(1.0)
    assert not plant.hand_settled()
    run_until(plant, 1.0)
    assert plant.joint_state(1)[:2] == (0.5, 0.0)  # there, and held there exactly against gravity
    assert plant.hand_settled() and hand.wait(timeout_s=0.0)
    assert [plant.joint_state(j)[0] for j in (0, 2, 3)] == [0.0, 0.0, 0.0]
    hand.release(1)
    assert hand.holding == {0, 2, 3, 4}
    run_until(plant, 1.3)
    assert plant.joint_state(1)[0] > 0.6  # leaning forward, it falls on under gravity
    hand.release()
    assert hand.holding == set()
    with pytest.raises(IndexError):
        hand.hold(5, 0.0)
    with pytest.raises(ValueError):
        hand.hold(0, 0.0, speed_rad_s=0.0)


def test_hand_overrides_the_servo_and_the_ideal_plant_obeys_it_too():
    spec = load_spec()
    plant = MujocoPlant(spec, initial_position_rad=spec.home_rad)
    for j in range(spec.num_joints):
        plant.set_torque(j, True)
    plant.hold(0, 0.4)  # at once
    run_until(plant, 0.5)
    assert plant.joint_state(0)[0] == 0.4  # the servo (goal 0) does not win against the hand
    ideal = IdealPlant(np.zeros(2))
    ideal.set_torque(0, True)
    ideal.hold(0, 0.3)
    ideal.set_goal(0, 1.0)
    assert ideal.joint_state(0)[0] == 0.3
    ideal.release(0)
    ideal.set_goal(0, 1.0)
    assert ideal.joint_state(0)[0] == 1.0
