"""The Rerun sink: what an adaptation session looks like while it runs (or when replayed).

Entities (every one on the timelines ``step``: control steps of the session, ``wall_time`` and ``episode``):

- ``joints/<joint>/measured``, ``joints/<joint>/sent``: joint positions (rad) read and commanded, per step;
- ``task/reward``, ``task/reach_error_m`` (end effector to goal, from forward kinematics), per step;
- ``timing/period_error_ms`` per step (the RateLoop's wake-up error live; on replay the interval between
  recorded state timestamps less one period), ``timing/period_error_p99_ms`` and
  ``timing/missed_deadlines`` per episode;
- ``posterior/mean``, ``posterior/std`` (one value per latent dimension), ``posterior/std_mean``: the
  distribution z is drawn from, once per episode, at its first step;
- ``episode/return`` at each episode's end;
- ``safety/log`` (text: caps hit, faults, holds, e-stops, how an episode ended) and
  ``safety/events/<kind>`` (counts per episode, as in the episode table);
- ``twin/arm/<shape>`` (and ``twin/arm/mesh/<geom>``): the MJCF's moving geoms posed by the measured joints;
  ``twin/scene/<shape>``: the geoms welded to the world, posed once; ``twin/target``, ``twin/end_effector``,
  ``twin/reach_error`` (the segment between them).

Logging happens on the caller's thread, between control steps (the loop's wait is not delayed by a second
thread holding the GIL); rerun's own threads batch and write.
"""

from __future__ import annotations

import math
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import rerun as rr
import rerun.blueprint as rrb

from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.spec import RobotSpec
from pearl_robot.viz.server import RerunServer, rerun_binary
from pearl_robot.viz.sink import DEFAULT_LIVE_PORT, DEFAULT_WEB_PORT, ROUTINE_EVENTS, Telemetry, VizTarget
from pearl_robot.viz.twin import ArmTwin

TIMELINES = ("step", "wall_time", "episode")
SEVERE_EVENTS = frozenset({"estop", "fault_stop", "enable_refused_estop", "server_lost", "disabled", "hold_failed"})
EYE, LOOK_AT = (0.55, -0.5, 0.42), (0.12, 0.0, 0.12)  # m: the arm from the front left, the table's centre
MEASURED_COLOR = (31, 119, 180)
SENT_COLOR = (255, 127, 14)


class RerunTelemetry(Telemetry):
    enabled = True

    def __init__(self, target: VizTarget, spec: RobotSpec, name: str = "pearl-robot", first_step: int = 0) -> None:
        self.target = target
        self.spec = spec
        self.joints = list(spec.joint_names)
        self.period_s = spec.period_s
        self.step = first_step
        self.episode = 0
        self.url: str | None = None  # serve: the web viewer's address
        self._server: RerunServer | None = None
        self._goal: np.ndarray | None = None
        self._faults: tuple[str, ...] = ()
        self._events: dict[str, int] = {}
        self._closed = False
        self._wall = time.time()
        self._paths = [(f"joints/{j}/measured", f"joints/{j}/sent") for j in self.joints]
        self.twin = ArmTwin(spec) if spec.mjcf is not None else None
        budget = target.memory_bytes
        batcher = rr.ChunkBatcherConfig(flush_tick=0.25, flush_num_bytes=min(budget // 16, 4 << 20))
        self.rec = rr.RecordingStream("pearl-robot", recording_id=uuid.uuid4(), batcher_config=batcher)
        self._connect(self._blueprint())
        self.rec.send_recording_name(name)
        self._log_static()

    # ---- sinks ------------------------------------------------------------------------------
    def _connect(self, blueprint: rrb.Blueprint) -> None:
        target, rec = self.target, self.rec
        try:
            if target.mode == "save":
                path = target.path
                if not path.parent.is_dir():
                    raise PearlRobotError(f"--viz save:{path}: no such folder {path.parent}")
                if not os.access(path.parent, os.W_OK):
                    raise PearlRobotError(f"--viz save:{path}: the folder is not writable")
                rec.save(path, default_blueprint=blueprint)
            elif target.mode == "serve":
                self._server = RerunServer(target.memory_limit, web_port=target.port or DEFAULT_WEB_PORT).start()
                rec.connect_grpc(self._server.grpc_url, default_blueprint=blueprint)
                self.url = self._server.web_url
                print(f"telemetry: web viewer at {self.url} (native: rerun {self._server.grpc_url})", flush=True)
            elif target.url is not None:
                rec.connect_grpc(target.url, default_blueprint=blueprint)
            else:
                if sys.platform.startswith("linux") and not _has_display():
                    raise PearlRobotError(
                        "--viz live needs a display on this machine; headless, use --viz save:PATH.rrd or --viz serve"
                    )
                rr.spawn(  # reuses a viewer listening there; a new one drops the oldest data past the budget
                    port=DEFAULT_LIVE_PORT, memory_limit=target.memory_limit, server_memory_limit=target.memory_limit,
                    executable_path=rerun_binary(), recording=rec, default_blueprint=blueprint,
                )  # fmt: skip
        except PearlRobotError:
            raise
        except Exception as exc:  # the SDK's errors (a port taken, no viewer binary) in one line
            raise PearlRobotError(f"--viz {target.mode}: {str(exc).strip().splitlines()[0]}") from None

    def _blueprint(self) -> rrb.Blueprint:
        joints = [rrb.TimeSeriesView(name=j, origin=f"/joints/{j}") for j in self.joints]
        return rrb.Blueprint(
            rrb.Horizontal(
                rrb.Vertical(
                    rrb.Spatial3DView(
                        name="digital twin (measured joints) and target",
                        origin="/twin",
                        eye_controls=rrb.EyeControls3D(position=EYE, look_target=LOOK_AT, eye_up=(0.0, 0.0, 1.0)),
                    ),
                    rrb.TextLogView(name="safety", origin="/safety/log"),
                    row_shares=[3, 1],
                ),
                rrb.Vertical(*joints, name="joints (rad): measured, sent"),
                rrb.Vertical(
                    rrb.TimeSeriesView(name="reward, reach error (m)", origin="/task"),
                    rrb.TimeSeriesView(name="posterior of z", origin="/posterior"),
                    rrb.TimeSeriesView(name="return per episode", origin="/episode"),
                    rrb.TimeSeriesView(name="loop period error (ms)", origin="/timing"),
                ),
                column_shares=[3, 2, 2],
            ),
            rrb.TimePanel(timeline="step", state="collapsed"),
            collapse_panels=True,
        )

    def _log_static(self) -> None:
        rec = self.rec
        for measured, sent in self._paths:
            rec.log(measured, rr.SeriesLines(colors=[MEASURED_COLOR], names=["measured"]), static=True)
            rec.log(sent, rr.SeriesLines(colors=[SENT_COLOR], names=["sent"]), static=True)
        if self.twin is None:
            return
        rec.log("twin", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        for shape, group in self.twin.static.items():
            self._log_group(f"twin/scene/{shape}", group, static=True)
        for shape, group in self.twin.moving.items():
            if shape == "mesh":
                for gid, name, color in zip(group.ids, group.names, group.colors):
                    vertices, faces = self.twin.mesh(gid)
                    mesh = rr.Mesh3D(vertex_positions=vertices, triangle_indices=faces, albedo_factor=color)
                    rec.log(f"twin/arm/mesh/{name}", mesh, static=True)
            else:
                self._log_group(f"twin/arm/{shape}", group, static=True, shapes_only=True)
        self._at(self.step, None)
        self._log_pose()  # at home until the first step

    def _log_group(self, path: str, group: Any, static: bool, shapes_only: bool = False) -> None:
        sizes, colors, labels = np.array(group.sizes), group.colors, group.names
        if group.shape == "mesh":  # meshes welded to the world: one entity each, posed once
            pose = self.twin.poses(group)
            for i, (gid, name) in enumerate(zip(group.ids, group.names)):
                vertices, faces = self.twin.mesh(gid)
                mesh = rr.Mesh3D(vertex_positions=vertices, triangle_indices=faces, albedo_factor=colors[i])
                self.rec.log(f"{path}/{name}", mesh, static=True)
                transform = rr.Transform3D(translation=pose.positions[i], mat3x3=pose.rotations[i])
                self.rec.log(f"{path}/{name}", transform, static=True)
            return
        if group.shape == "box":
            shape = rr.Boxes3D(half_sizes=sizes, colors=colors, labels=labels, show_labels=False, fill_mode="solid")
        elif group.shape == "ellipsoid":
            shape = rr.Ellipsoids3D(
                half_sizes=sizes, colors=colors, labels=labels, show_labels=False, fill_mode="solid"
            )
        elif group.shape == "capsule":
            shape = rr.Capsules3D(
                lengths=2 * sizes[:, 1], radii=sizes[:, 0], colors=colors, labels=labels, show_labels=False
            )
        else:
            shape = rr.Cylinders3D(
                lengths=2 * sizes[:, 1], radii=sizes[:, 0], colors=colors, labels=labels, show_labels=False
            )
        self.rec.log(path, shape, static=static)
        if not shapes_only:
            self._log_placement(path, group.shape, self.twin.poses(group), static)

    def _log_placement(self, path: str, shape: str, pose: Any, static: bool = False) -> None:
        if shape == "capsule":
            fields = rr.Capsules3D.from_fields(translations=pose.positions, quaternions=pose.quaternions)
        else:
            archetype = {"box": rr.Boxes3D, "ellipsoid": rr.Ellipsoids3D, "cylinder": rr.Cylinders3D}[shape]
            fields = archetype.from_fields(centers=pose.positions, quaternions=pose.quaternions)
        self.rec.log(path, fields, static=static)

    def _log_pose(self) -> None:
        """The moving geoms where the last ``twin.pose()`` put them."""
        twin = self.twin
        for shape, group in twin.moving.items():
            pose = twin.poses(group)
            if shape == "mesh":
                for i, name in enumerate(group.names):
                    transform = rr.Transform3D(translation=pose.positions[i], mat3x3=pose.rotations[i])
                    self.rec.log(f"twin/arm/mesh/{name}", transform)
            else:
                self._log_placement(f"twin/arm/{shape}", shape, pose)

    # ---- the interface ----------------------------------------------------------------------
    def _at(self, step: int, wall_time: float | None) -> None:
        rec = self.rec
        self._wall = time.time() if wall_time is None else float(wall_time)
        rec.set_time("step", sequence=step)
        rec.set_time("wall_time", timestamp=self._wall)
        rec.set_time("episode", sequence=self.episode)

    def on_episode_start(self, record: Mapping[str, Any]) -> None:
        self.episode = int(record.get("episode", self.episode))
        self._at(self.step, record.get("wall_time"))
        mean = np.asarray(record.get("posterior_mean", []), dtype=float)
        var = np.asarray(record.get("posterior_var", []), dtype=float)
        if mean.size:
            std = np.sqrt(np.maximum(var, 0.0))
            self.rec.log("posterior/mean", rr.Scalars(mean))
            self.rec.log("posterior/std", rr.Scalars(std))
            self.rec.log("posterior/std_mean", rr.Scalars([float(std.mean())]))
        source = record.get("z_source", "")
        text = f"episode {self.episode} starts: z from the {source}" if source else f"episode {self.episode} starts"
        self.rec.log("safety/log", rr.TextLog(text, level=rr.TextLogLevel.INFO))
        goal = record.get("goal")
        self._set_goal(None if goal is None else np.asarray(goal, dtype=float))

    def _set_goal(self, goal: np.ndarray | None) -> None:
        if goal is None or (self._goal is not None and np.array_equal(goal, self._goal)):
            return
        self._goal = goal.copy()
        if self.twin is not None:
            self.rec.log("twin/target", rr.Points3D([goal], radii=0.012, colors=[(40, 200, 80)], labels=["target"]))

    def on_step(
        self,
        episode: int,
        t: int,
        position: np.ndarray,
        sent_target: np.ndarray | None = None,
        reward: float | None = None,
        *,
        goal: np.ndarray | None = None,
        faults: Sequence[str] = (),
        period_error_ms: float | None = None,
        wall_time: float | None = None,
        intervention: bool = False,
    ) -> None:
        self._log_step(episode, position, sent_target, reward, goal, faults, period_error_ms, wall_time, intervention)
        self.step += 1

    def _log_step(
        self,
        episode: int,
        position: np.ndarray,
        sent_target: np.ndarray | None,
        reward: float | None,
        goal: np.ndarray | None,
        faults: Sequence[str],
        period_error_ms: float | None,
        wall_time: float | None,
        intervention: bool = False,
    ) -> None:
        rec = self.rec
        self.episode = episode
        self._at(self.step, wall_time)
        if goal is not None:
            self._set_goal(np.asarray(goal, dtype=float))
        position = np.asarray(position, dtype=float)
        sent = None if sent_target is None else np.asarray(sent_target, dtype=float)
        for j, (measured_path, sent_path) in enumerate(self._paths):
            rec.log(measured_path, rr.Scalars([position[j]]))
            if sent is not None:
                rec.log(sent_path, rr.Scalars([sent[j]]))
        if reward is not None:
            rec.log("task/reward", rr.Scalars([float(reward)]))
        rec.log("control/intervention", rr.Scalars([float(intervention)]))  # 1: the operator drove this step
        if period_error_ms is not None:
            rec.log("timing/period_error_ms", rr.Scalars([float(period_error_ms)]))
        faults = tuple(faults or ())
        if faults != self._faults:  # a lasting fault is one line, not one per step
            self._faults = faults
            if faults:
                self._log_event("fault", ", ".join(faults))
        if self.twin is not None:
            ee = self.twin.pose(position)
            self._log_pose()
            if ee is not None:
                rec.log("twin/end_effector", rr.Points3D([ee], radii=0.008, colors=[(220, 40, 40)]))
                if self._goal is not None:
                    rec.log("task/reach_error_m", rr.Scalars([float(np.linalg.norm(ee - self._goal))]))
                    rec.log("twin/reach_error", rr.LineStrips3D([[ee, self._goal]], radii=0.002))

    def on_env_step(
        self, env: Any, episode: int, t: int, reward: float, info: Mapping[str, Any], intervention: bool = False
    ) -> None:
        loop = env.loop
        errors = loop.stats.period_errors_s if loop is not None else ()
        self._log_step(
            episode, env.last_state.position, info.get("sent_target"), reward, getattr(env.task, "goal", None),
            info.get("faults", ()), errors[-1] * 1e3 if len(errors) else None, None, intervention,
        )  # fmt: skip
        events = getattr(env.robot, "events", None)
        if events:
            for kind, count in events.items():
                delta = count - self._events.get(kind, 0)
                if delta > 0 and kind not in ROUTINE_EVENTS:
                    self._log_event(kind, count=delta)
            self._events = dict(events)
        self.step += 1

    def on_episode_end(self, record: Mapping[str, Any]) -> None:
        rec = self.rec
        self.episode = int(record.get("episode", self.episode))
        self._at(max(self.step - 1, 0), record.get("wall_time"))
        ret = float(record.get("episode_return", math.nan))
        rec.log("episode/return", rr.Scalars([ret]))
        if "period_error_p99_ms" in record:
            rec.log("timing/period_error_p99_ms", rr.Scalars([float(record["period_error_p99_ms"])]))
            rec.log("timing/missed_deadlines", rr.Scalars([float(record.get("missed_deadlines", 0))]))
        for kind, count in sorted((record.get("safety_events") or {}).items()):
            if kind not in ROUTINE_EVENTS:
                rec.log(f"safety/events/{kind}", rr.Scalars([float(count)]))
        if record.get("aborted"):
            text, level = f"episode {self.episode} stopped: {record.get('reason', '')}", rr.TextLogLevel.ERROR
        else:
            steps = record.get("steps", "?")
            text, level = f"episode {self.episode} done: return {ret:.3f} in {steps} steps", rr.TextLogLevel.INFO
        rec.log("safety/log", rr.TextLog(text, level=level))

    def on_safety_event(self, kind: str, detail: str = "", count: int = 1) -> None:
        self._at(self.step, None)
        self._log_event(kind, detail, count)

    def _log_event(self, kind: str, detail: str = "", count: int = 1) -> None:
        level = rr.TextLogLevel.ERROR if kind in SEVERE_EVENTS else rr.TextLogLevel.WARN
        text = kind + (f" x{count}" if count != 1 else "") + (f": {detail}" if detail else "")
        self.rec.log("safety/log", rr.TextLog(text, level=level))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.rec.flush(timeout_sec=10.0)
            self.rec.disconnect()
        except Exception:  # noqa: BLE001 - telemetry never takes a session down on its way out
            pass
        if self._server is not None:
            self._server.stop()


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
