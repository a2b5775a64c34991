"""RobotServer: any Robot over ZeroMQ, run on the computer next to the servos.

One ROUTER socket, one thread, one controlling client at a time. The server keeps the arm safe on its
own, whatever the network does:

- watchdog: no valid command for ``watchdog_periods`` control periods -> hold the present position;
- heartbeats: the controlling client silent for ``heartbeat_timeout_s`` -> hold, then disable (torque off),
  and the session ends;
- latest-only commands: a write is executed only if it is the newest of its session in the batch read,
  its seq is above the last write's, and it is younger than its deadline (measured against a delay
  baseline no single message can move, ``clock.py``); otherwise it is refused, counted, and the arm keeps
  its present target;
- the owner first: messages from the peers the session has used are served as soon as they are read;
  every other peer waits in its own bounded queue (``inbox.py``), served round-robin for at most
  INBOX_BUDGET_S per wake-up, so a flood costs the owner at most that, and bounded memory;
- every refused message (malformed, oversized, wrong version, unknown session, unauthenticated) is
  counted in ``events``, answered with an error naming the request's seq where the sender can be
  answered, and logged (at most one line per kind every few seconds); nothing a peer sends can raise out
  of the loop.

Binding off loopback requires CurveZMQ (``curve=CurveConfig(...)``); see ``security.py``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from pearl_robot.errors import ConfigError, LifecycleError, PearlRobotError
from pearl_robot.robot.base import Lifecycle, Robot
from pearl_robot.server import wire
from pearl_robot.server.clock import DelayBaseline
from pearl_robot.server.inbox import MUTE_S, Inbox
from pearl_robot.server.ratelog import RateLimitedLog
from pearl_robot.server.security import AllowList, CurveConfig, endpoint_is_local
from pearl_robot.viz.sink import NullTelemetry, Telemetry

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_HEARTBEAT_TIMEOUT_S = 1.0
ZAP_DOMAIN = "pearl-robot"  # the authenticator's allow list applies to this domain only
MAX_BATCH = 256  # messages read per wake-up before they are served and the timers checked
READ_BUDGET_S = 0.001  # ... and at most this long spent reading them
INBOX_BUDGET_S = 0.001  # time per wake-up spent answering peers that do not hold the session
MAX_TIMER_WAIT_MS = 100
MAX_TIMER_WAIT_S = MAX_TIMER_WAIT_MS / 1000
WATCHDOG_SPIN_S = 0.003
TRANSPORT_LIMIT_FACTOR = 2  # the transport drops peers sending frames over twice the message limit (8 KiB)
PEER_HWM = 64  # messages ZeroMQ queues per peer on the way in (a client has one or two in flight)
MAX_SESSION_PEERS = 4  # routing ids served first per session (a client uses two: commands, heartbeats)
HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


@dataclass
class Session:
    sid: bytes
    user: str | None  # CURVE User-Id (the client's public key); None without CURVE
    client: str
    last_seen: float
    delay: DelayBaseline  # of (receive time - client send time)
    peers: set[bytes]  # the routing ids this session's messages came from: served before anyone else
    last_write_seq: int = -1


@dataclass(frozen=True)
class HoldRecord:
    at: float  # server monotonic time of the hold
    after_s: float  # time since the last valid command (or enable)
    reason: str


def check_bind_allowed(endpoint: str, curve: CurveConfig | None) -> None:
    if curve is None and not endpoint_is_local(endpoint):
        raise ConfigError(
            "--bind",
            endpoint,
            "binding off loopback exposes the arm to the network and needs CurveZMQ keys: create them with "
            "`pearl-robot keys`, then pass --server-key server.key_secret --allow client.key "
            "(or bind tcp://127.0.0.1:PORT / ipc://PATH)",
        )


class RobotServer:
    def __init__(
        self,
        robot: Robot,
        bind: str | Sequence[str] = DEFAULT_ENDPOINT,
        *,
        curve: CurveConfig | None = None,
        watchdog_periods: int | None = None,
        heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S,
        max_command_age_s: float | None = None,
        max_message_bytes: int = wire.MAX_MESSAGE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.robot = robot
        self.spec = robot.spec
        self.bind_endpoints = [bind] if isinstance(bind, str) else list(bind)
        if not self.bind_endpoints:
            raise PearlRobotError("RobotServer needs at least one endpoint to bind")
        for endpoint in self.bind_endpoints:
            check_bind_allowed(endpoint, curve)
        self.curve = curve
        self.watchdog_periods = watchdog_periods or self.spec.safety.watchdog_periods
        self.heartbeat_timeout_s = float(heartbeat_timeout_s)
        if self.watchdog_periods < 1 or not 0 < self.heartbeat_timeout_s < 3600:
            raise PearlRobotError(
                f"watchdog periods must be >= 1 and the heartbeat timeout in (0, 3600) s, got "
                f"{self.watchdog_periods} and {heartbeat_timeout_s}"
            )
        self.max_command_age_s = max_command_age_s or self.spec.period_s
        self._watchdog_s = self.watchdog_periods * self.spec.period_s  # silence before a hold
        self.max_message_bytes = max_message_bytes
        self._decode_request = wire.request_decoder(self.spec.num_joints)  # frames pass wire.check_frame first
        self.clock = clock
        self.telemetry = telemetry or NullTelemetry()  # --viz: each executed write, logged after its reply
        self._telemetry_pending: tuple[Any, Any] | None = None
        self.endpoints: list[str] = []  # the resolved endpoints (ports chosen by the OS filled in)
        self.events: collections.Counter[str] = collections.Counter()
        self.holds: collections.deque[HoldRecord] = collections.deque(maxlen=256)
        self._events_lock = threading.Lock()  # the ZAP thread counts refusals too
        self._owner: Session | None = None
        self._inbox = Inbox()
        self._refusal_log = RateLimitedLog(log)
        self._expired: collections.OrderedDict[bytes, str] = collections.OrderedDict()
        self._last_command = clock()
        self._holding = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._context: zmq.Context | None = None
        self._router: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        # stop() wakes the loop with a message on this in-process endpoint of the ROUTER itself
        self._wake_endpoint = f"inproc://pearl-robot-server-wake-{id(self)}-{secrets.token_hex(4)}"
        self._wake_id = b"pearl-robot-wake-" + secrets.token_bytes(8)
        self._next_monitor_check = 0.0
        self._auth = None
        self._closed = False
        self._spec_message = {
            "robot_id": self.spec.robot_id,
            "joints": list(self.spec.joint_names),
            "rate_hz": self.spec.control_rate_hz,
        }

    # ---- starting and stopping ------------------------------------------------------------
    def open(self) -> RobotServer:
        """Connect the robot if needed and bind every endpoint; ``endpoints`` then holds the real ones."""
        if self._router is not None:
            return self
        if self._closed:
            raise PearlRobotError("this RobotServer was closed; create a new one")
        if self.robot.lifecycle is Lifecycle.UNCONFIGURED:
            self.robot.connect()
        self._context = zmq.Context()
        try:
            if self.curve is not None:
                from zmq.auth.thread import ThreadAuthenticator

                self._auth = ThreadAuthenticator(self._context, log=logging.getLogger(__name__ + ".zap"))
                self._auth.start()
                self._auth.configure_curve_callback(
                    ZAP_DOMAIN, AllowList(self.curve.allowed_clients, self.events, self._events_lock)
                )
            router = self._context.socket(zmq.ROUTER)
            router.setsockopt(zmq.LINGER, 0)
            router.setsockopt(zmq.MAXMSGSIZE, TRANSPORT_LIMIT_FACTOR * self.max_message_bytes)
            router.setsockopt(zmq.SNDHWM, 1000)
            router.setsockopt(zmq.RCVHWM, PEER_HWM)
            if self.curve is not None:
                router.curve_server = True
                router.curve_publickey = self.curve.server.public
                router.curve_secretkey = self.curve.server.secret
                router.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
            self._router = router
            self._monitor = router.get_monitor_socket(HANDSHAKE_EVENTS)
            for endpoint in self.bind_endpoints:
                self._prepare_ipc(endpoint)
                try:
                    router.bind(endpoint)
                except zmq.ZMQError as exc:
                    raise PearlRobotError(f"cannot bind {endpoint}: {exc}") from None
                self.endpoints.append(router.get(zmq.LAST_ENDPOINT).decode())
            router.bind(self._wake_endpoint)
        except BaseException:
            self._close_sockets()
            raise
        return self

    @staticmethod
    def _prepare_ipc(endpoint: str) -> None:
        if endpoint.startswith("ipc://"):
            path = endpoint[len("ipc://") :]
            if path and not path.startswith("@"):  # '@' = Linux abstract namespace, no file
                parent = os.path.dirname(path)
                if parent and not os.path.isdir(parent):
                    raise PearlRobotError(f"cannot bind {endpoint}: folder {parent} does not exist")

    def start(self) -> RobotServer:
        """Bind, then serve in a background thread (tests, benchmarks, embedding)."""
        self.open()
        self._thread = threading.Thread(target=self.serve_forever, name="pearl-robot-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the loop to end (thread-safe, and safe from a signal handler)."""
        self._stop.set()
        context = self._context
        if context is None or context.closed:
            return
        with contextlib.suppress(zmq.ZMQError):
            poke = context.socket(zmq.DEALER)
            try:
                poke.setsockopt(zmq.LINGER, 100)
                poke.setsockopt(zmq.ROUTING_ID, self._wake_id)
                poke.connect(self._wake_endpoint)
                poke.send(b"", zmq.NOBLOCK)
            finally:
                poke.close()

    def close(self) -> None:
        """Stop serving, leave the arm safe (held, then torque off), release sockets. Idempotent."""
        self.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
            if thread.is_alive():
                log.error("robot server thread did not stop within 5 s")
        self._thread = None
        self._make_safe("server stopped")
        self._close_sockets()
        self._closed = True

    def _close_sockets(self) -> None:
        if self._router is not None and self._monitor is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._router.disable_monitor()
        for name in ("_monitor", "_router"):
            sock = getattr(self, name)
            if sock is not None:
                sock.close(linger=0)
                setattr(self, name, None)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def __enter__(self) -> RobotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def owner(self) -> Session | None:
        return self._owner

    def count(self, event: str, n: int = 1) -> None:
        # the loop thread bumps every key but one: the ZAP thread's 'refused_unknown_key'; updates of
        # different keys never interfere under the GIL
        self.events[event] += n

    # ---- the loop --------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Serve until ``stop()``; the arm is left safe when it returns."""
        self.open()
        router, monitor = self._router, self._monitor
        curve = self.curve is not None  # under CURVE, frames carry the authenticated User-Id
        receive_timeout = -2
        try:
            while not self._stop.is_set():
                # one blocking receive, timed to the next watchdog/heartbeat deadline (a poller over
                # several sockets costs a round trip ~10 us; stop() wakes this receive through inproc)
                timeout = 0 if self._inbox else self._next_timer_ms()
                if timeout != receive_timeout:
                    router.setsockopt(zmq.RCVTIMEO, timeout)
                    receive_timeout = timeout
                try:
                    message = _receive(router, 0, curve)
                except zmq.Again:
                    message = None
                if message is not None:
                    self._serve_owner(router, self._read(router, message, curve))
                    if self._telemetry_pending is not None:
                        self._log_telemetry()
                if self._inbox:
                    self._serve_inbox(router)
                now = self.clock()
                if now >= self._next_monitor_check:
                    self._next_monitor_check = now + MAX_TIMER_WAIT_MS / 1000
                    self._drain_monitor(monitor)
                self._check_timers(now)
        finally:
            self._make_safe("server stopped")

    def _next_timer_ms(self) -> int:
        """How long the next receive may block. The last WATCHDOG_SPIN_S before a hold is due are spent
        polling instead of sleeping, so that the hold is not late by the scheduler's wake-up latency."""
        now = self.clock()
        wait = MAX_TIMER_WAIT_S
        if not self._holding and self.robot.lifecycle is _ACTIVE:
            until_hold = self._last_command + self._watchdog_s - now
            wait = min(wait, until_hold - WATCHDOG_SPIN_S if until_hold > WATCHDOG_SPIN_S else 0.0)
        owner = self._owner
        if owner is not None:
            wait = min(wait, owner.last_seen + self.heartbeat_timeout_s - now)
        return max(0, int(wait * 1000 + 0.999))

    def _check_timers(self, now: float) -> None:
        owner = self._owner
        if owner is not None and now - owner.last_seen >= self.heartbeat_timeout_s:
            self.count("client_lost")
            self._end_session(owner, f"no heartbeat from client '{owner.client}' for {self.heartbeat_timeout_s:g} s")
        if not self._holding and now - self._last_command >= self._watchdog_s and self.robot.lifecycle is _ACTIVE:
            self._hold(now, "watchdog: no valid command")

    def _read(self, router: zmq.Socket, first: _Message, curve: bool) -> list[_Item]:
        """Read what else is queued (up to MAX_BATCH, for up to READ_BUDGET_S; ROUTER takes turns between
        peers). Returns the owner's messages; every other peer's go to its queue in the inbox, or are
        dropped unanswered while that peer is muted for flooding."""
        owner = self._owner
        peers = owner.peers if owner is not None else ()
        inbox, clock = self._inbox, self.clock
        mine: list[_Item] = []
        message, read = first, 0
        now = clock()
        deadline = now + READ_BUDGET_S
        while True:
            peer = message[0][0]
            if peer in peers and peer not in inbox:  # a peer with older messages queued keeps its order
                mine.append(self._split(message, now))
            elif peer == self._wake_id:
                pass
            elif inbox.muted(peer, now):
                self.count("dropped_flood")
            elif not inbox.put(peer, self._split(message, now), now):
                self.count("dropped_flood")
                if inbox.muted(peer, now):
                    self._refusal_log.warning(
                        "flood", "robot server: a peer sends faster than the server answers; muted for %g s", MUTE_S
                    )
            read += 1
            if read >= MAX_BATCH or now > deadline or not router.get(_EVENTS) & _POLLIN:
                return mine
            try:
                message = _receive(router, _NOBLOCK, curve)
            except zmq.Again:
                return mine
            now = clock()

    def _serve_owner(self, router: zmq.Socket, items: list[_Item]) -> None:
        """Answer in order; only the newest write of a session in the batch runs."""
        if len(items) == 1:  # the common case: one request in flight
            self._handle(router, items[0], _decode(self._decode_request, items[0][2]), False)
            return
        requests = [_decode(self._decode_request, item[2]) for item in items]
        newest_write: dict[bytes, int] = {}
        for index, request in enumerate(requests):
            if type(request) is wire.Write:
                newest_write[request.sid] = index
        for index, (item, request) in enumerate(zip(items, requests)):
            superseded = type(request) is wire.Write and newest_write[request.sid] != index
            self._handle(router, item, request, superseded)

    def _serve_inbox(self, router: zmq.Socket) -> None:
        """Answer the other peers, one message per peer in turn, for at most INBOX_BUDGET_S."""
        inbox = self._inbox
        deadline = self.clock() + INBOX_BUDGET_S
        while True:
            item = inbox.pop()
            self._handle(router, item, _decode(self._decode_request, item[2]), False)
            if not inbox or self.clock() >= deadline:
                return

    def _split(self, message: _Message, received: float) -> _Item:
        """-> (envelope, CURVE user id, payload or its refusal, answerable, receive time), checked without decoding."""
        frames, user = message
        envelope = frames[:1]
        body = frames[1:]
        if not body:
            return envelope, None, wire.WireError(wire.MALFORMED, "no payload"), False, received
        if len(body) == 2 and len(body[0]) == 0:  # a REQ socket's empty delimiter
            envelope.append(b"")
            body = body[1:]
        if len(body) != 1:
            refusal = wire.WireError(wire.MALFORMED, f"expected one frame, got {len(body)}")
            return envelope, None, refusal, True, received
        payload = body[0]
        try:
            wire.check_frame(payload, self.max_message_bytes)
        except wire.WireError as exc:
            return envelope, user, exc, True, received
        return envelope, user, payload, True, received

    def _handle(
        self, router: zmq.Socket, item: _Item, request: wire.Request | wire.WireError, superseded: bool
    ) -> None:
        envelope, user, _, answerable, received = item
        self.events["messages"] += 1
        try:
            if isinstance(request, wire.WireError):
                raise request
            reply = self._dispatch(request, envelope[0], user, received, superseded)
        except wire.WireError as exc:
            seq = exc.seq if exc.seq is not None else request.seq  # a robot's refusal names the request too
            self.count(f"refused_{exc.code}")
            self._log_refusal(request, envelope[0], exc)
            extra = self._held_targets() if exc.code in (wire.EXPIRED, wire.SUPERSEDED, wire.OUT_OF_ORDER) else {}
            reply = wire.encode_error(seq, exc.code, exc.message, **extra)
        except Exception as exc:  # a robot or server bug must not take the server down
            self.count("internal_error")
            log.exception("robot server: error while handling a request")
            reply = wire.encode_error(request.seq, wire.FAULT, _one_line(f"server error: {exc}"))
        if answerable:
            try:  # frame by frame: send_multipart costs more than the sends (a ROUTER drops, never blocks)
                for frame in envelope:
                    router.send(frame, _SNDMORE_NOBLOCK)
                router.send(reply, _NOBLOCK)
            except zmq.ZMQError:
                self.count("reply_dropped")

    def _log_refusal(self, request: wire.Request | wire.WireError, peer: bytes, exc: wire.WireError) -> None:
        owner = self._owner
        if isinstance(request, wire.Hello):
            who = f"client '{request.client or 'client'}'"
        elif owner is not None and peer in owner.peers:
            who = f"client '{owner.client}'"
        else:
            who = "a peer without the session"
        what = "a message" if isinstance(request, wire.WireError) else request.op
        text = exc.message + (f" ('{owner.client}')" if exc.code == wire.BUSY and owner is not None else "")
        self._refusal_log.warning(
            f"{exc.code} {who}", "robot server: refused %s from %s (%s): %s", what, who, exc.code, text
        )

    def _held_targets(self) -> dict[str, Any]:
        if self.robot.lifecycle is not Lifecycle.ACTIVE:
            return {}
        try:
            return {"held": wire.encode_array(self.robot.read().position)}
        except Exception:
            return {}

    # ---- requests ---------------------------------------------------------------------------
    def _dispatch(
        self, request: wire.Request, peer: bytes, user: str | None, received: float, superseded: bool
    ) -> bytes:
        seq = request.seq
        if request.op == "hello":
            return self._hello(request, peer, user, received)
        session = self._session_for(request, user)
        if peer not in session.peers and len(session.peers) < MAX_SESSION_PEERS:
            session.peers.add(peer)
        self._observe_delay(session, request, received)
        session.last_seen = received
        op = request.op
        if op == "write":
            return self._write(session, request, received, superseded)
        if op == "ping":
            return wire.encode_reply(seq, life=self.robot.lifecycle.value, holding=self._holding)
        if op == "read":
            return wire.encode_reply(seq, state=wire.encode_state(self._robot_call(self.robot.read), self.clock()))
        if op == "enable":
            self._robot_call(self.robot.enable)
            self._last_command = self.clock()
            self._holding = False
            self.count("enabled")
            return wire.encode_reply(seq, life=self.robot.lifecycle.value)
        if op == "disable":
            self._disable("client asked")
            return wire.encode_reply(seq, life=self.robot.lifecycle.value)
        if op == "teleport":
            if not self.robot.can_teleport:
                raise wire.WireError(wire.UNSUPPORTED, "the served robot cannot teleport (hardware)", seq)
            self._robot_call(self.robot.teleport, request.q)
            self._last_command = self.clock()
            self._holding = False
            return wire.encode_reply(seq, state=wire.encode_state(self._robot_call(self.robot.read), self.clock()))
        if op == "stats":
            with self._events_lock:
                events = dict(self.events)
            holds = [[h.after_s, h.reason] for h in list(self.holds)[-16:]]
            return wire.encode_reply(seq, events=events, holds=holds, life=self.robot.lifecycle.value)
        if op == "bye":
            self._end_session(session, "client said bye")
            return wire.encode_reply(seq, life=self.robot.lifecycle.value)
        raise wire.WireError(wire.BAD_OP, f"unknown op {op!r}", seq)  # pragma: no cover (OPS is closed)

    def _hello(self, request: wire.Hello, peer: bytes, user: str | None, received: float) -> bytes:
        owner = self._owner
        if owner is not None:
            if received - owner.last_seen < self.heartbeat_timeout_s:
                raise wire.WireError(
                    wire.BUSY, "the robot is in use by another client; one controlling client at a time", request.seq
                )
            self.count("client_lost")
            self._end_session(owner, "a new client arrived after this one's heartbeats stopped")
        last_error = getattr(self.robot, "last_error", None) if self.robot.lifecycle is Lifecycle.ERROR else None
        # every session starts with the arm connected, torque off
        if self.robot.lifecycle in (Lifecycle.ACTIVE, Lifecycle.ERROR):
            self._disable("new session")
        session = Session(
            sid=secrets.token_bytes(wire.SESSION_ID_BYTES),
            user=user,
            client=request.client or "client",
            last_seen=received,
            delay=DelayBaseline(received - request.t, received),
            peers={peer},
        )
        self._owner = session
        self.count("sessions")
        log.info("robot server: session for '%s' started", session.client)
        return wire.encode_reply(
            request.seq,
            sid=session.sid,
            spec=self._spec_message,
            life=self.robot.lifecycle.value,
            last_error=last_error,
            heartbeat_timeout_s=self.heartbeat_timeout_s,
            watchdog_periods=self.watchdog_periods,
            max_command_age_s=self.max_command_age_s,
            can_teleport=bool(self.robot.can_teleport),
        )

    def _session_for(self, request: wire.Request, user: str | None) -> Session:
        owner = self._owner
        if owner is None or not secrets.compare_digest(owner.sid, request.sid):
            reason = self._expired.get(request.sid)
            text = (
                f"session ended: {reason}" if reason else "unknown session (the server restarted, or never said hello)"
            )
            raise wire.WireError(wire.NO_SESSION, text, request.seq)
        if owner.user != user:
            raise wire.WireError(wire.UNAUTHORIZED, "this session belongs to another client key", request.seq)
        return owner

    @staticmethod
    def _observe_delay(session: Session, request: wire.Request, received: float) -> None:
        """Learn from the message's (receive - send) time; refuse, and learn nothing from, a send time that
        leaps far ahead of the session's baseline."""
        delay = received - request.t
        ahead = session.delay.value - delay
        if ahead > wire.MAX_CLOCK_LEAP_S:
            raise wire.WireError(
                wire.INVALID, f"send time 't' is {ahead:.3f} s ahead of this session's clock", request.seq
            )
        session.delay.observe(delay, received)

    def _write(self, session: Session, request: wire.Write, received: float, superseded: bool) -> bytes:
        seq = request.seq
        if seq <= session.last_write_seq:
            raise wire.WireError(
                wire.OUT_OF_ORDER, f"write {seq} is not newer than write {session.last_write_seq}", seq
            )
        if superseded:
            raise wire.WireError(wire.SUPERSEDED, "a newer write from this client arrived in the same batch", seq)
        limit = min(request.ttl, self.max_command_age_s)
        now = self.clock()
        age = (now - request.t) - session.delay.value
        if age > limit:
            raise wire.WireError(
                wire.EXPIRED, f"write {seq} is {age * 1e3:.1f} ms old, past its {limit * 1e3:.1f} ms deadline", seq
            )
        if self.robot.lifecycle is not Lifecycle.ACTIVE:
            raise wire.WireError(
                wire.LIFECYCLE, f"commands are refused unless ACTIVE; the robot is {self.robot.lifecycle.value}", seq
            )
        session.last_write_seq = seq  # only a write that runs moves the bar (a refused one cannot block later ones)
        robot = self.robot
        started = time.perf_counter()
        try:
            sent = robot.write(request.q)
            self._last_command = now
            self._holding = False
            state = robot.read()
        except Exception as exc:
            raise _robot_refusal(exc) from None
        work_s = time.perf_counter() - started
        self.events["writes"] += 1
        self._telemetry_pending = (sent, state)
        return wire.encode_write_reply(seq, sent, state, self.clock(), work_s)

    def _log_telemetry(self) -> None:
        sent, state = self._telemetry_pending
        self._telemetry_pending = None
        self.telemetry.on_step(0, self.events["writes"], state.position, sent, faults=[str(f) for f in state.faults])

    def _robot_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            raise _robot_refusal(exc) from None

    # ---- keeping the arm safe ---------------------------------------------------------------
    def _hold(self, now: float, reason: str) -> None:
        """Command the present position (inside the limits): the arm stops where it is."""
        after = now - self._last_command
        self._holding = True
        try:
            present = self.robot.read().position
            self.robot.write(np.clip(present, self.spec.position_min, self.spec.position_max))
        except Exception:
            self.count("hold_failed")
            log.exception("robot server: holding position failed; disabling")
            self._disable("hold failed")
            return
        self.count("watchdog_hold" if reason.startswith("watchdog") else "hold")
        self.telemetry.on_safety_event("watchdog_hold" if reason.startswith("watchdog") else "hold", reason)
        self.holds.append(HoldRecord(now, after, reason))
        log.info("robot server: holding position (%s, %.1f ms after the last command)", reason, after * 1e3)

    def _disable(self, reason: str) -> None:
        lifecycle = self.robot.lifecycle
        if lifecycle is Lifecycle.ACTIVE and not self._holding:
            self._hold(self.clock(), reason)
        if self.robot.lifecycle in (Lifecycle.ACTIVE, Lifecycle.ERROR):
            try:
                self.robot.disable()
                self.count("disabled")
                self.telemetry.on_safety_event("disabled", reason)
            except Exception:
                self.count("disable_failed")
                log.exception("robot server: disable failed")
        self._holding = False

    def _end_session(self, session: Session, reason: str) -> None:
        if self._owner is session:
            self._disable(reason)
            self._owner = None
            self._expired[session.sid] = reason
            while len(self._expired) > 64:
                self._expired.popitem(last=False)
            log.info("robot server: session for '%s' ended: %s", session.client, reason)

    def _make_safe(self, reason: str) -> None:
        if self._owner is not None:
            self._end_session(self._owner, reason)
        elif self.robot.lifecycle in (Lifecycle.ACTIVE, Lifecycle.ERROR):
            self._disable(reason)

    def _drain_monitor(self, monitor: zmq.Socket) -> None:
        for _ in range(64):
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                return
            self.count("refused_handshake")
            self._refusal_log.warning("handshake", "robot server: refused a connection (%s)", event.get("event"))


def _robot_refusal(exc: Exception) -> Exception:
    """The robot's exceptions as refusals (the handler adds the request's seq); anything unexpected stays
    itself (an internal error)."""
    if isinstance(exc, LifecycleError):
        return wire.WireError(wire.LIFECYCLE, _one_line(str(exc)))
    if isinstance(exc, ValueError):  # the request's values, such as a teleport outside the joint limits
        return wire.WireError(wire.INVALID, _one_line(str(exc)))
    if isinstance(exc, PearlRobotError):
        return wire.WireError(wire.FAULT, _one_line(f"{type(exc).__name__}: {exc}"))
    return exc


def _one_line(text: str, limit: int = 300) -> str:
    return (text.strip().splitlines() or [""])[0][:limit]


def _decode(decode: Callable[[bytes], wire.Request], payload: bytes | wire.WireError) -> wire.Request | wire.WireError:
    if isinstance(payload, wire.WireError):
        return payload
    try:
        return decode(payload)
    except wire.WireError as exc:
        return exc


# plain ints: enum flag arithmetic is slow on the hot path
_EVENTS, _POLLIN, _NOBLOCK = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.NOBLOCK)
_ACTIVE = Lifecycle.ACTIVE
_SNDMORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
# one message received: (its frames, routing id first; the sender's CURVE User-Id)
_Message = tuple[list[bytes], str | None]
# one message read: (envelope, CURVE user id, payload or its refusal, answerable, server receive time)
_Item = tuple[list[bytes], str | None, "bytes | wire.WireError", bool, float]


def _receive(router: zmq.Socket, flags: int, curve: bool) -> _Message:
    """One message, all its frames (recv_multipart's option look-ups cost more than the receives)."""
    peer = router.recv(flags)  # a ROUTER's routing id frame, always followed by the message itself
    frame = router.recv(0, copy=False)
    user = None
    if curve:
        with contextlib.suppress(zmq.ZMQError):
            user = frame.get("User-Id")
    frames = [peer, frame.bytes]
    while frame.more:
        frame = router.recv(0, copy=False)
        frames.append(frame.bytes)
    return frames, user
