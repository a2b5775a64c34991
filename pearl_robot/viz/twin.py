"""The digital twin: the arm's MJCF posed by joint positions, as plain geometry for a viewer.

Rerun has no MJCF loader (it reads URDF), so the model's geoms are read from MuJoCo and posed by its
forward kinematics (``mj_kinematics``: no dynamics, no contacts). Geoms welded to the world (the table)
are posed once; planes are left out (the viewer's grid is the ground); the moving geoms are grouped by
shape, so one posed arm costs one batch per shape (boxes, capsules, cylinders, ellipsoids) plus one
transform per mesh. A joint equality (the gripper's mimic finger) is applied as MuJoCo would hold it:
``q1 = polycoef(q2)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pearl_robot.robot.spec import RobotSpec

SHAPES = ("box", "capsule", "cylinder", "ellipsoid", "mesh")


@dataclass
class GeomGroup:
    """Geoms of one shape: their sizes and colours (static) and, once posed, their world poses."""

    shape: str
    ids: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    sizes: list[np.ndarray] = field(default_factory=list)  # box/ellipsoid: half sizes; capsule/cylinder: (r, half)
    colors: list[np.ndarray] = field(default_factory=list)  # RGBA 0..255


@dataclass(frozen=True)
class Pose:
    """World poses of one group's geoms: positions (n, 3), quaternions (n, 4) as x, y, z, w, axes (n, 3, 3)."""

    positions: np.ndarray
    quaternions: np.ndarray
    rotations: np.ndarray


class ArmTwin:
    def __init__(self, spec: RobotSpec) -> None:
        import mujoco  # here: the CLI's --help imports the modules that import this one

        from pearl_robot.robot.sim import load_model

        self._mujoco = mujoco
        self.model = load_model(spec)
        self.data = mujoco.MjData(self.model)
        self._qpos = np.array([self.model.joint(n).qposadr[0] for n in spec.joint_names])
        self._site = None
        if spec.end_effector_site is not None:
            try:
                self._site = self.model.site(spec.end_effector_site).id
            except KeyError:
                self._site = None
        self._mimics = self._joint_equalities()
        self.static: dict[str, GeomGroup] = {}
        self.moving: dict[str, GeomGroup] = {}
        self._read_geoms()
        self.pose(spec.home_rad)

    # ---- the model's geometry ---------------------------------------------------------------
    def _joint_equalities(self) -> list[tuple[int, int, np.ndarray]]:
        model, mj = self.model, self._mujoco
        mimics = []
        for i in range(model.neq):
            if int(model.eq_type[i]) != int(mj.mjtEq.mjEQ_JOINT) or model.eq_obj2id[i] < 0:
                continue
            follower = model.jnt_qposadr[model.eq_obj1id[i]]
            leader = model.jnt_qposadr[model.eq_obj2id[i]]
            mimics.append((int(follower), int(leader), model.eq_data[i, :5].copy()))
        return mimics

    def _read_geoms(self) -> None:
        model, mj = self.model, self._mujoco
        geom = mj.mjtGeom
        kinds = {
            int(geom.mjGEOM_BOX): "box",
            int(geom.mjGEOM_CAPSULE): "capsule",
            int(geom.mjGEOM_CYLINDER): "cylinder",
            int(geom.mjGEOM_SPHERE): "ellipsoid",
            int(geom.mjGEOM_ELLIPSOID): "ellipsoid",
            int(geom.mjGEOM_MESH): "mesh",
        }
        for gid in range(model.ngeom):
            gtype = int(model.geom_type[gid])
            shape = kinds.get(gtype)
            if shape is None or model.geom_rgba[gid, 3] == 0:
                continue
            size = model.geom_size[gid].copy()
            if gtype == int(geom.mjGEOM_SPHERE):
                size = np.full(3, size[0])
            rgba = model.geom_rgba[gid]
            if model.geom_matid[gid] >= 0:
                rgba = model.mat_rgba[model.geom_matid[gid]]
            welded = model.body_weldid[model.geom_bodyid[gid]] == 0
            groups = self.static if welded else self.moving
            group = groups.setdefault(shape, GeomGroup(shape))
            group.ids.append(gid)
            group.names.append(model.geom(gid).name or f"geom{gid}")
            group.sizes.append(size)
            group.colors.append(np.round(np.clip(rgba, 0, 1) * 255).astype(np.uint8))

    def mesh(self, gid: int) -> tuple[np.ndarray, np.ndarray]:
        """A mesh geom's vertices (in the geom's frame, as MuJoCo compiles them) and triangles."""
        model = self.model
        mesh = model.geom_dataid[gid]
        v0, nv = model.mesh_vertadr[mesh], model.mesh_vertnum[mesh]
        f0, nf = model.mesh_faceadr[mesh], model.mesh_facenum[mesh]
        return model.mesh_vert[v0 : v0 + nv].copy(), model.mesh_face[f0 : f0 + nf].copy()

    # ---- posing -----------------------------------------------------------------------------
    def pose(self, position_rad: np.ndarray) -> np.ndarray | None:
        """Run forward kinematics for joint positions in spec order; returns the end effector (m) if known."""
        qpos = self.data.qpos
        qpos[self._qpos] = position_rad
        for follower, leader, coef in self._mimics:
            x = qpos[leader]
            qpos[follower] = coef[0] + x * (coef[1] + x * (coef[2] + x * (coef[3] + x * coef[4])))
        self._mujoco.mj_kinematics(self.model, self.data)
        return None if self._site is None else self.data.site_xpos[self._site].copy()

    def poses(self, group: GeomGroup) -> Pose:
        """World poses of a group's geoms after the last ``pose()``."""
        ids = group.ids
        rotations = self.data.geom_xmat[ids].reshape(-1, 3, 3)
        positions = self.data.geom_xpos[ids].copy()
        if group.shape == "capsule":  # rerun's capsule starts at its origin and extends along +z
            half = np.array([s[1] for s in group.sizes])
            positions -= rotations[:, :, 2] * half[:, None]
        return Pose(positions, _quaternions_xyzw(rotations), rotations)


def _quaternions_xyzw(rotations: np.ndarray) -> np.ndarray:
    """Rotation matrices (n, 3, 3) to unit quaternions (n, 4) in x, y, z, w order (Shepperd's method)."""
    out = np.empty((len(rotations), 4))
    for i, m in enumerate(rotations):
        trace = m[0, 0] + m[1, 1] + m[2, 2]
        if trace > 0:
            s = 2.0 * np.sqrt(trace + 1.0)
            out[i] = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
        elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
            s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
            out[i] = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
        elif m[1, 1] > m[2, 2]:
            s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
            out[i] = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
        else:
            s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
            out[i] = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    return out / np.linalg.norm(out, axis=1, keepdims=True)
