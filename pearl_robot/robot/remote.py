"""RemoteRobot: the Robot backend that drives an arm through a RobotServer (``pearl-robot serve``).

Same lifecycle, same states, same command semantics as the robot the server exposes; ``open_robot``
wraps it in a SafeRobot like any other backend, and since time passes on the far side between commands
(``realtime = True``) that SafeRobot runs its watchdog here too. The server keeps its own watchdog and
heartbeat checks, so the arm stays safe when this process or the network dies.

Failure semantics:
- no reply within ``timeout_s`` to a request, or none to anything (heartbeats included) for
  ``server_timeout_s``: the robot enters ERROR and every call raises RobotFault("robot server lost ...")
  until the server answers again; recover with ``disable()`` then ``enable()``;
- the server restarted, or ended this session (heartbeats lost): the next call re-opens a session; if
  this robot was ACTIVE it enters ERROR and raises RobotFault (the server disabled the arm), so the
  caller knows to ``disable()`` then ``enable()`` again;
- a write that reached the server too late (past its deadline) is dropped there, never executed; the
  write returns the targets the arm is holding and counts ``events['command_expired']``.

Off-host endpoints need CurveZMQ: ``server_key`` (the server's public NAME.key) and ``client_key`` (this
client's NAME.key_secret), or the environment variables PEARL_ROBOT_SERVER_KEY / PEARL_ROBOT_CLIENT_KEY.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import threading
import time
from typing import Any

import msgspec
import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from pearl_robot.errors import ConfigError, LifecycleError, RobotFault
from pearl_robot.robot.base import Lifecycle, Robot, RobotState
from pearl_robot.robot.spec import RobotSpec
from pearl_robot.server import wire
from pearl_robot.server.security import KeyPair, apply_client_curve, endpoint_is_local, load_key

log = logging.getLogger(__name__)

SERVER_KEY_ENV = "PEARL_ROBOT_SERVER_KEY"
CLIENT_KEY_ENV = "PEARL_ROBOT_CLIENT_KEY"
HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)
# write refusals that are not errors: the command was dropped, the arm holds
DROPPED_WRITE = frozenset({wire.EXPIRED, wire.SUPERSEDED, wire.OUT_OF_ORDER})
# the hello reply's keys kept in ``server_info``
HELLO_INFO = (
    "spec",
    "life",
    "last_error",
    "heartbeat_timeout_s",
    "watchdog_periods",
    "max_command_age_s",
    "can_teleport",
)


class _NoReply(Exception):
    pass


def _answers(reply: wire.Reply, seq: int | None) -> bool:
    """Is this the reply to request ``seq``? A refusal without a seq answers the request in flight: the
    server could not read the seq, and dropping the refusal would turn it into a lost server."""
    return reply.seq == seq or (reply.seq is None and not reply.ok)


class RemoteRobot(Robot):
    realtime = True

    def __init__(
        self,
        spec: RobotSpec,
        endpoint: str,
        *,
        timeout_s: float = 0.5,
        connect_timeout_s: float = 3.0,
        server_timeout_s: float = 1.0,
        command_ttl_s: float | None = None,
        server_key: str | os.PathLike[str] | bytes | None = None,
        client_key: str | os.PathLike[str] | None = None,
        client_name: str = "",
    ) -> None:
        super().__init__(spec)
        self.endpoint = endpoint
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.server_timeout_s = float(server_timeout_s)
        self.command_ttl_s = float(command_ttl_s or spec.period_s)
        self.client_name = client_name or f"pid{os.getpid()}"
        self._num_joints = spec.num_joints
        self.events: collections.Counter[str] = collections.Counter()
        self._last_state: tuple[wire.State, float] | None = None
        self.last_server_work_s: float | None = None  # the served robot's own time for the last write (+read)
        self.server_info: dict[str, Any] = {}
        self._curve = self._load_keys(server_key, client_key)
        self._seq = itertools.count(1)
        self._sid: bytes | None = None
        self._context: zmq.Context | None = None
        self._control: zmq.Socket | None = None
        self._heartbeat_socket: zmq.Socket | None = None
        self._heartbeat_thread: threading.Thread | None = None
        self._heartbeat_stop = threading.Event()
        self._heartbeat_interval_s = 0.1
        self._last_reply = time.monotonic()
        self._lost_reason: str | None = None
        self._can_teleport = False

    @classmethod
    def from_address(cls, address: str, spec: RobotSpec, **options: Any) -> RemoteRobot:
        options.setdefault("server_key", os.environ.get(SERVER_KEY_ENV) or None)
        options.setdefault("client_key", os.environ.get(CLIENT_KEY_ENV) or None)
        return cls(spec, address, **options)

    def _load_keys(
        self, server_key: str | os.PathLike[str] | bytes | None, client_key: str | os.PathLike[str] | None
    ) -> tuple[bytes, KeyPair] | None:
        if server_key is None and client_key is None:
            if not endpoint_is_local(self.endpoint):
                raise ConfigError(
                    "--robot",
                    self.endpoint,
                    f"an off-host robot server needs CurveZMQ keys: set {SERVER_KEY_ENV} (the server's .key) "
                    f"and {CLIENT_KEY_ENV} (this client's .key_secret), made with `pearl-robot keys`",
                )
            return None
        if server_key is None or client_key is None:
            raise ConfigError(
                "--robot", self.endpoint, "CurveZMQ needs both the server's public key and a client key pair"
            )
        if isinstance(server_key, bytes) and len(server_key) == 40:
            server_public = server_key
        else:
            server_public = load_key(server_key, secret=False).public
        return server_public, load_key(client_key, secret=True)

    # ---- sockets ------------------------------------------------------------------------------
    def _socket(self, timeout_s: float | None = None) -> zmq.Socket:
        timeout_ms = max(1, int((timeout_s or self.timeout_s) * 1000))
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # never queue requests for a server that is not there
        sock.setsockopt(zmq.SNDHWM, 16)
        sock.setsockopt(zmq.RCVHWM, 64)
        sock.setsockopt(zmq.RECONNECT_IVL, 50)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
        sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
        if self._curve is not None:
            apply_client_curve(sock, *self._curve)
        return sock

    def _exchange(self, sock: zmq.Socket, op: str, fields: dict[str, Any], timeout_s: float) -> wire.Reply:
        """Send one request and wait for its reply; replies to earlier, abandoned requests are skipped.

        The socket's own send/receive timeouts bound the common case in one system call each; a
        timeout shorter than the socket's is enforced with a poll."""
        seq = next(self._seq)
        sent_at = time.monotonic()
        if op == "write":  # the hot path: no keyword packing
            frame = wire.encode_write(seq, sent_at, self._sid, fields["q"], fields["ttl"])
        else:
            frame = wire.encode_request(op, seq, sent_at, self._sid if op != "hello" else None, **fields)
        try:
            sock.send(frame)
        except zmq.Again:
            raise _NoReply(f"could not send to {self.endpoint} (not connected)") from None
        deadline = sent_at + timeout_s
        short = timeout_s < self.timeout_s and timeout_s * 1000 < sock.getsockopt(zmq.RCVTIMEO)
        while True:
            try:
                if short and not sock.poll(max(0, int((deadline - time.monotonic()) * 1000)), zmq.POLLIN):
                    raise zmq.Again
                raw = sock.recv()
            except zmq.Again:
                raise _NoReply(f"no reply from {self.endpoint} within {timeout_s * 1e3:.0f} ms") from None
            try:
                reply = wire.decode_reply(raw)
            except wire.WireError as exc:
                raise RobotFault(f"robot server at {self.endpoint} sent a bad reply: {exc}") from None
            if _answers(reply, seq):
                self._last_reply = time.monotonic()
                return reply
            self.events["stale_reply"] += 1
            if time.monotonic() > deadline:
                raise _NoReply(f"no reply from {self.endpoint} within {timeout_s * 1e3:.0f} ms")

    def _call(self, op: str, fields: dict[str, Any] | None = None, accept: frozenset[str] = frozenset()) -> wire.Reply:
        """One request on the control socket, with session recovery and errors raised as exceptions."""
        fields = fields or {}
        if self._lost_reason is not None:
            raise RobotFault(self._lost_reason)
        try:
            if self._sid is None:  # an earlier attempt to renew the session failed: try again
                self._renew_session(op, "no session")
            reply = self._exchange(self._control, op, fields, self.timeout_s)
            if not reply.ok and reply.err == wire.NO_SESSION:
                self._renew_session(op, reply.msg or "")
                reply = self._exchange(self._control, op, fields, self.timeout_s)
        except _NoReply as exc:
            raise RobotFault(self._server_lost(str(exc))) from None
        if not reply.ok and reply.err not in accept:
            raise self._refusal(op, reply)
        return reply

    def _renew_session(self, op: str, why: str) -> None:
        """A new session after the server forgot ours (it restarted, or ended the session). The server
        disabled the arm meanwhile, so an ACTIVE client enters ERROR and says so, rather than carry on."""
        self.events["session_restarted"] += 1
        was_active = self._lifecycle is Lifecycle.ACTIVE
        self._hello(self.timeout_s)
        if was_active and op not in ("disable", "bye"):
            reason = (
                f"the robot server at {self.endpoint} ended this client's session ({why}) and "
                "disabled the arm; call disable() then enable() to go on"
            )
            self.fail(reason)
            raise RobotFault(reason)

    def _refusal(self, op: str, reply: wire.Reply) -> Exception:
        """The server's refusal as the exception the served robot would have raised, its reason in one line."""
        code = reply.err
        text = ((reply.msg or "no reason given").splitlines() or [""])[0]
        if code == wire.LIFECYCLE:
            return LifecycleError(f"robot server: {text}")
        if code == wire.INVALID:
            return ValueError(f"robot server refused {op}: {text}")
        return RobotFault(f"robot server refused {op} ({code}): {text}")

    def _server_lost(self, detail: str, *, from_heartbeat: bool = False) -> str:
        """Remember the loss (calls fail fast until the server answers again) and enter ERROR."""
        reason = f"robot server lost: {detail}"
        if self._lost_reason is None:
            self.events["server_lost"] += 1
        self._lost_reason = reason
        self._fail(reason, from_heartbeat)
        return reason

    def _fail(self, reason: str, from_heartbeat: bool) -> None:
        if not from_heartbeat:
            self.fail(reason)
        elif self._io_lock.acquire(timeout=0.05):
            # the heartbeat thread never waits on a busy caller: that caller meets the problem itself
            try:
                self.fail(reason)
            finally:
                self._io_lock.release()

    def _hello(self, timeout_s: float, monitor: zmq.Socket | None = None) -> None:
        self._sid = None
        if monitor is None:
            reply = self._exchange(
                self._control, "hello", {"client": self.client_name[: wire.MAX_CLIENT_NAME]}, timeout_s
            )
        else:
            reply = self._first_hello(timeout_s, monitor)
        if not reply.ok:
            raise RobotFault(f"robot server at {self.endpoint} refused this client ({reply.err}): {reply.msg}")
        if reply.sid is None:
            raise RobotFault(f"robot server at {self.endpoint} sent a bad reply: a hello reply without 'sid'")
        served = reply.spec or wire.ServedSpec("", [], 0.0)
        if served.joints != list(self.spec.joint_names) or served.rate_hz != self.spec.control_rate_hz:
            raise ConfigError(
                self.spec.source,
                "joints",
                f"the robot server at {self.endpoint} drives {served.robot_id!r} with joints {served.joints} at "
                f"{served.rate_hz:g} Hz; this hardware file describes {list(self.spec.joint_names)} at "
                f"{self.spec.control_rate_hz} Hz",
            )
        if reply.last_error:
            log.warning("robot server at %s: the arm had stopped after a fault: %s", self.endpoint, reply.last_error)
        self.server_info = {name: getattr(reply, name) for name in HELLO_INFO}
        self.server_info["spec"] = msgspec.structs.asdict(served)
        self._can_teleport = bool(reply.can_teleport)
        heartbeat_timeout = reply.heartbeat_timeout_s or 1.0
        self._heartbeat_interval_s = max(0.01, min(heartbeat_timeout, self.server_timeout_s) / 4)
        self._sid = reply.sid
        self._lost_reason = None

    def _first_hello(self, timeout_s: float, monitor: zmq.Socket) -> wire.Reply:
        """The first hello watches the handshake, so a refused key is reported at once and by name."""
        deadline = time.monotonic() + timeout_s
        poller = zmq.Poller()
        poller.register(monitor, zmq.POLLIN)
        poller.register(self._control, zmq.POLLOUT)
        phase = zmq.POLLOUT
        seq = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready = dict(poller.poll(max(1, int(remaining * 1000))))
            if monitor in ready:
                event = recv_monitor_message(monitor)
                auth = event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
                raise RobotFault(
                    f"the robot server at {self.endpoint} refused the connection "
                    + (
                        "(CurveZMQ: this client's key is not on the server's --allow list)"
                        if auth
                        else "(security handshake failed: does the server use CurveZMQ keys, and this client the "
                        "server's public key?)"
                    )
                )
            if ready.get(self._control, 0) & zmq.POLLOUT and phase == zmq.POLLOUT:
                seq = next(self._seq)
                self._control.send(
                    wire.encode_request(
                        "hello", seq, time.monotonic(), None, client=self.client_name[: wire.MAX_CLIENT_NAME]
                    )
                )
                poller.modify(self._control, zmq.POLLIN)
                phase = zmq.POLLIN
            elif ready.get(self._control, 0) & zmq.POLLIN:
                try:
                    reply = wire.decode_reply(self._control.recv())
                except wire.WireError as exc:
                    raise RobotFault(f"robot server at {self.endpoint}: {exc}") from None
                if _answers(reply, seq):
                    self._last_reply = time.monotonic()
                    return reply
        raise RobotFault(
            f"no robot server answered at {self.endpoint} within {timeout_s:g} s (is `pearl-robot serve` running?)"
        )

    # ---- heartbeats ---------------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        sock = self._heartbeat_socket
        while not self._heartbeat_stop.wait(self._heartbeat_interval_s):
            now = time.monotonic()
            if now - self._last_reply < self._heartbeat_interval_s and self._lost_reason is None:
                continue  # control traffic doubles as heartbeat
            sid = self._sid
            if sid is None:
                continue
            try:
                reply = self._exchange(sock, "ping", {}, self._heartbeat_interval_s)
            except _NoReply:
                if time.monotonic() - self._last_reply > self.server_timeout_s and self._lost_reason is None:
                    self._server_lost(
                        f"no reply from {self.endpoint} for {self.server_timeout_s:g} s", from_heartbeat=True
                    )
                continue
            except Exception:  # a bad reply: count it, keep beating
                self.events["heartbeat_error"] += 1
                continue
            self._lost_reason = None
            if (
                not reply.ok
                and reply.err == wire.NO_SESSION
                and sid == self._sid
                and self._lifecycle is Lifecycle.ACTIVE
            ):
                self._fail(
                    f"the robot server at {self.endpoint} ended this client's session ({reply.msg}) and "
                    "disabled the arm; call disable() then enable() to go on",
                    from_heartbeat=True,
                )

    # ---- lifecycle hooks ----------------------------------------------------------------------
    def _connect(self) -> None:
        self._context = zmq.Context()
        try:
            self._control = self._socket()
            monitor = self._control.get_monitor_socket(HANDSHAKE_FAILED)
            try:
                self._control.connect(self.endpoint)
                self._hello(self.connect_timeout_s, monitor)
            finally:
                self._control.disable_monitor()
                monitor.close(linger=0)
            self._heartbeat_socket = self._socket(self._heartbeat_interval_s)
            self._heartbeat_socket.connect(self.endpoint)
        except BaseException:
            self._close_sockets()
            raise
        self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        self._heartbeat_stop.clear()
        self._heartbeat_thread = threading.Thread(
            target=self._heartbeat_loop, name="pearl-robot-heartbeat", daemon=True
        )
        self._heartbeat_thread.start()

    def _enable(self) -> None:
        self._call("enable")

    def _disable(self) -> None:
        self._call("disable")

    def _close(self) -> None:
        self._heartbeat_stop.set()
        thread = self._heartbeat_thread
        if thread is not None:
            thread.join(timeout=2.0)
        self._heartbeat_thread = None
        if self._control is not None and self._sid is not None and self._lost_reason is None:
            with contextlib.suppress(Exception):  # best effort: the server disables the arm either way
                self._exchange(self._control, "bye", {}, min(self.timeout_s, 0.25))
        self._close_sockets()

    def _close_sockets(self) -> None:
        for name in ("_control", "_heartbeat_socket"):
            sock = getattr(self, name)
            if sock is not None:
                sock.close(linger=0)
                setattr(self, name, None)
        if self._context is not None:
            self._context.term()
            self._context = None
        self._sid = None

    # ---- I/O ----------------------------------------------------------------------------------
    def write(self, targets: np.ndarray) -> np.ndarray:
        if self._lifecycle is Lifecycle.ERROR:  # say why, not just "not ACTIVE"
            raise RobotFault(getattr(self, "last_error", None) or "the remote robot is in ERROR")
        return super().write(targets)

    def _read(self) -> RobotState:
        return self._state(self._call("read").state, time.monotonic())

    def _write(self, targets: np.ndarray) -> np.ndarray:
        reply = self._call("write", {"q": wire.encode_array(targets), "ttl": self.command_ttl_s}, DROPPED_WRITE)
        if not reply.ok:
            self.events[f"command_{reply.err}"] += 1
            return targets.copy() if reply.held is None else self._array(reply.held, "held")
        if reply.state is None:
            raise RobotFault(f"robot server at {self.endpoint} sent a bad reply: a write reply without 'state'")
        self._last_state = (reply.state, time.monotonic())  # decoded when asked for
        self.last_server_work_s = reply.dt
        return self._array(reply.sent, "sent")

    def _array(self, blob: bytes | None, name: str) -> np.ndarray:
        try:
            return wire.decode_array(blob, self._num_joints, name)
        except wire.WireError as exc:
            raise RobotFault(f"robot server at {self.endpoint} sent a bad reply: {exc}") from None

    def _state(self, state: wire.State | None, received_at: float) -> RobotState:
        try:
            if state is None:
                raise wire.WireError(wire.MALFORMED, "a reply without 'state'")
            return wire.decode_state(state, self._num_joints, received_at)
        except wire.WireError as exc:
            raise RobotFault(f"robot server at {self.endpoint} sent a bad reply: {exc}") from None

    @property
    def last_state(self) -> RobotState | None:
        """The state the server measured right after the last executed write (no extra round trip)."""
        if self._last_state is None:
            return None
        return self._state(*self._last_state)

    # ---- extras -------------------------------------------------------------------------------
    @property
    def can_teleport(self) -> bool:
        """True when the served robot is a simulation that can set its state directly."""
        return self._can_teleport

    def teleport(self, position: np.ndarray) -> None:
        with self._io_lock:
            if self._lifecycle not in (Lifecycle.INACTIVE, Lifecycle.ACTIVE):
                raise LifecycleError(f"teleport() needs a connected robot, this one is {self._lifecycle.value}")
            if not self._can_teleport:
                raise NotImplementedError("the served robot cannot set its state directly; move it instead")
            position = np.asarray(position, dtype=float)
            if position.shape != (self.spec.num_joints,) or not np.all(np.isfinite(position)):
                raise ValueError(f"teleport needs {self.spec.num_joints} finite joint positions")
            self._call("teleport", {"q": wire.encode_array(position)})

    def server_stats(self) -> dict[str, Any]:
        """The server's counters (refusals, holds, sessions) and recent watchdog holds."""
        with self._io_lock:
            reply = self._call("stats")
        holds = [list(hold) for hold in reply.holds or ()]
        return {"events": reply.events or {}, "holds": holds, "life": reply.life}

    def __repr__(self) -> str:
        return f"<RemoteRobot {self.spec.robot_id} at {self.endpoint} {self._lifecycle.value}>"
