"""A full RobotEnv episode through the server, tcp and ipc: the env cannot tell the remote arm from a
local one (same observations and rewards, step for step, as the same simulation run in-process)."""

from __future__ import annotations

import numpy as np
from server_helpers import remote_of

from pearl_robot.control.loop import RateLoop
from pearl_robot.envs.robot_env import RobotEnv
from pearl_robot.robot.base import Lifecycle
from pearl_robot.robot.registry import open_robot
from pearl_robot.tasks.reach import ReachTask

HORIZON = 12
# generous watchdogs on both sides: a loaded CI machine must not add a hold (an extra simulated
# period) to one run and not the other; the watchdog itself is tested elsewhere
SAFETY = {"watchdog_periods": 40}


def run_episode(env: RobotEnv, actions: np.ndarray) -> tuple[list[np.ndarray], list[float], list[dict]]:
    obs, _ = env.reset(seed=7)
    observations, rewards, infos = [obs], [], []
    for k, action in enumerate(actions):
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        assert not terminated
        assert truncated == (k == len(actions) - 1)
    return observations, rewards, infos


def test_full_episode_through_the_server(start_server, spec, transport) -> None:
    server = start_server(transport, robot=open_robot("sim", spec, safety=SAFETY), watchdog_periods=40)
    task = ReachTask(goal=np.array([0.2, 0.05, 0.15]), horizon=HORIZON)
    actions = np.random.default_rng(3).uniform(-1, 1, (HORIZON, len(spec.arm_joint_indices)))

    remote_robot = open_robot(server.endpoints[0], spec, safety=SAFETY)
    remote_env = RobotEnv(remote_robot, task, loop=RateLoop(spec.period_s, realtime=True))
    try:
        remote = run_episode(remote_env, actions)
        assert remote_robot.can_teleport  # a simulated arm behind the server resets like a local one
        assert server.events["writes"] == HORIZON
        assert remote_robot.lifecycle is Lifecycle.ACTIVE
    finally:
        remote_env.close()
    assert remote_robot.lifecycle is Lifecycle.CLOSED
    assert server.robot.lifecycle is Lifecycle.INACTIVE  # the client's close disabled the arm
    assert remote_of(remote_robot).events["command_expired"] == 0

    local_env = RobotEnv(open_robot("sim", spec, safety=SAFETY), task)
    try:
        local = run_episode(local_env, actions)
    finally:
        local_env.close()

    for remote_obs, local_obs in zip(remote[0], local[0]):
        np.testing.assert_array_equal(remote_obs, local_obs)
    np.testing.assert_array_equal(remote[1], local[1])
    assert [i["distance_m"] for i in remote[2]] == [i["distance_m"] for i in local[2]]
    assert all(not i["faults"] for i in remote[2])
