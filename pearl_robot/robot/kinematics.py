"""Forward kinematics from the arm's MJCF, usable on every backend (hardware included)."""

from __future__ import annotations

import numpy as np

from pearl_robot.errors import ConfigError
from pearl_robot.robot.spec import RobotSpec


class Kinematics:
    def __init__(self, spec: RobotSpec) -> None:
        import mujoco  # here, not at import: the CLI's `--help` imports this module and must stay light

        from pearl_robot.robot.sim import load_model

        self.model = load_model(spec)
        self.data = mujoco.MjData(self.model)
        self._mj_kinematics = mujoco.mj_kinematics
        self._qpos = np.array([self.model.joint(n).qposadr[0] for n in spec.joint_names])
        site = spec.end_effector_site
        if site is None:
            raise ConfigError(spec.source, "sim.end_effector_site", "needed for end-effector positions")
        try:
            self._site = self.model.site(site).id
        except KeyError:
            raise ConfigError(spec.mjcf, "site", f"no site named '{site}'") from None

    def end_effector(self, position_rad: np.ndarray) -> np.ndarray:
        """World position (m) of the end-effector site for joint positions in spec order."""
        self.data.qpos[self._qpos] = position_rad
        self._mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self._site].copy()
