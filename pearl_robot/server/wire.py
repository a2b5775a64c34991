"""The robot server's wire schema, version 1: one msgpack map per ZeroMQ message, never pickle.

docs/wire_protocol.md is the reader's description; this module is the one place the schema lives.

Transport: the server binds a ROUTER socket, a client connects a DEALER (a REQ also works: the server
answers in the envelope it was sent). Every message is ONE frame holding one msgpack map with string
keys. Arrays travel as msgpack ``bin`` holding little-endian float64 values in ``spec.joint_names``
order (radians, radians per second). Receivers ignore keys they do not know; anything that changes the
meaning of a known key, or adds a required one, bumps ``PROTOCOL_VERSION``.

Request (client -> server)::

    v    int    protocol version, must equal PROTOCOL_VERSION
    op   str    one of OPS
    seq  int    0 <= seq < 2**63, increasing per client; replies echo it
    t    float  the client's monotonic clock at sending, seconds (used for deadlines, see below)
    sid  bin16  session id from the hello reply (every op except hello)
    q    bin    write/teleport: joint position targets, num_joints float64 LE
    ttl  float  write: seconds after ``t`` the command may still be executed, 0 < ttl <= MAX_TTL_S
    client str  hello: a name for logs (optional, <= 64 characters)

Reply (server -> client)::

    v    int    PROTOCOL_VERSION
    seq  int    the request's seq (nil when the request was too broken to read one)
    ok   bool
    err  str    when not ok: one of ERROR_CODES
    msg  str    when not ok: a sentence for the user
    ...         op-specific keys (see ``encode_state`` and the server's handlers)

Deadlines without synchronized clocks: for each session the server learns a baseline of ``receive_time - t``
from many messages (``clock.DelayBaseline``: the median of per-window minima, rising no faster than clock
drift); a command's age is its own ``receive_time - t`` minus that baseline, i.e. the delay it suffered beyond
the best the link has shown. A write older than its ``ttl`` (or the server's own limit) is dropped, never
executed late. No single message can move the baseline; a ``t`` more than MAX_CLOCK_LEAP_S ahead of it is
refused (``invalid``) and not learned from.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgpack
import numpy as np

from pearl_robot.robot.base import Fault, RobotState

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 4096  # larger frames are refused before decoding
SESSION_ID_BYTES = 16
MAX_SEQ = 2**63
MAX_TTL_S = 10.0
MAX_CLIENT_NAME = 64
MAX_CLOCK_LEAP_S = 1.0  # a send time further ahead of the session's baseline than this is refused
_MAP_MARKERS = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}  # msgpack fixmap, map16, map32

OPS = frozenset({"hello", "ping", "read", "enable", "disable", "write", "teleport", "stats", "bye"})
ARRAY_DTYPE = np.dtype("<f8")

# error codes: every refusal names one
MALFORMED = "malformed"  # not msgpack, not a map, a field missing or of the wrong type
OVERSIZED = "oversized"  # frame larger than MAX_MESSAGE_BYTES
VERSION = "version"  # v != PROTOCOL_VERSION
BAD_OP = "bad_op"  # op not in OPS
INVALID = "invalid"  # well-formed but unusable values (wrong joint count, NaN/inf targets)
NO_SESSION = "no_session"  # sid unknown (server restarted, session expired, never said hello)
UNAUTHORIZED = "unauthorized"  # the sid belongs to another CURVE key
BUSY = "busy"  # another client holds the robot
OUT_OF_ORDER = "out_of_order"  # a write whose seq is not above the last write's
EXPIRED = "expired"  # a write that arrived (or would run) after its deadline
SUPERSEDED = "superseded"  # a newer write from the same session arrived in the same batch
LIFECYCLE = "lifecycle"  # the robot's lifecycle refuses the op (LifecycleError)
FAULT = "fault"  # the robot raised a fault (RobotFault and other robot errors)
UNSUPPORTED = "unsupported"  # the served robot cannot do this (teleport on hardware)
ERROR_CODES = frozenset(
    {MALFORMED, OVERSIZED, VERSION, BAD_OP, INVALID, NO_SESSION, UNAUTHORIZED, BUSY, OUT_OF_ORDER, EXPIRED}
    | {SUPERSEDED, LIFECYCLE, FAULT, UNSUPPORTED}
)


class WireError(Exception):
    """A refused message: ``code`` is one of ERROR_CODES, ``seq`` the request's seq where readable."""

    def __init__(self, code: str, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.seq = seq


@dataclass(slots=True)
class Request:
    op: str
    seq: int
    t: float
    sid: bytes | None
    q: np.ndarray | None = None
    ttl: float | None = None
    client: str = ""


# ---- helpers ---------------------------------------------------------------------------------
def pack(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


_unpackb = msgpack.unpackb
_packb = msgpack.packb
_isfinite = math.isfinite


def unpack(frame: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """raw=False: strings stay str; strict_map_key: map keys only str/bytes. msgpack bounds every
    container by the frame's length, and callers bound the frame (``max_bytes``) before decoding."""
    if len(frame) > max_bytes:
        raise ValueError(f"frame of {len(frame)} bytes over the {max_bytes}-byte limit")
    return _unpackb(frame, raw=False, strict_map_key=True)


def encode_array(values: np.ndarray) -> bytes:
    if type(values) is np.ndarray and values.dtype == ARRAY_DTYPE:  # the common case, no conversion
        return values.tobytes()
    return np.ascontiguousarray(values, dtype=ARRAY_DTYPE).tobytes()


def decode_array(blob: bytes, n: int) -> np.ndarray:
    return np.frombuffer(blob, dtype=ARRAY_DTYPE, count=n).copy()


@lru_cache(maxsize=8)
def _array_struct(n: int) -> struct.Struct:
    return struct.Struct(f"<{n}d")


def decode_finite_array(blob: bytes, n: int) -> np.ndarray | None:
    """``n`` float64 LE values, or None if any is NaN or infinite (struct + math: cheaper than numpy for a
    handful of joints)."""
    values = _array_struct(n).unpack(blob)
    for value in values:
        if not _isfinite(value):
            return None
    return np.array(values)


# ---- requests --------------------------------------------------------------------------------
def encode_request(op: str, seq: int, t: float, sid: bytes | None = None, **fields: Any) -> bytes:
    message: dict[str, Any] = {"v": PROTOCOL_VERSION, "op": op, "seq": seq, "t": t}
    if sid is not None:
        message["sid"] = sid
    message.update(fields)
    return pack(message)


def check_frame(frame: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
    """The checks that need no decoding: the size, and that the frame starts a msgpack map."""
    if len(frame) > max_bytes:
        raise WireError(OVERSIZED, f"message of {len(frame)} bytes exceeds the {max_bytes}-byte limit")
    if not frame or frame[0] not in _MAP_MARKERS:
        raise WireError(MALFORMED, "not a msgpack map")


def decode_request(frame: bytes, num_joints: int, max_bytes: int = MAX_MESSAGE_BYTES) -> Request:
    """Validate one request frame; raises WireError naming why it is refused.

    Written flat (no helper calls on the common path): it runs once per message on the robot computer."""
    check_frame(frame, max_bytes)
    try:
        message = _unpackb(frame, raw=False, strict_map_key=True)
    except Exception as exc:  # any decoder complaint: truncated, extra data, bad type byte, limits
        raise WireError(MALFORMED, f"not a msgpack message ({type(exc).__name__})") from None
    if type(message) is not dict:
        raise WireError(MALFORMED, f"expected a msgpack map, got {type(message).__name__}")
    get = message.get
    seq = get("seq")
    if type(seq) is not int or not 0 <= seq < MAX_SEQ:
        seq = None
    version = get("v")
    if type(version) is not int:
        raise WireError(MALFORMED, "missing integer protocol version 'v'", seq)
    if version != PROTOCOL_VERSION:
        raise WireError(VERSION, f"protocol version {version} not supported (server speaks {PROTOCOL_VERSION})", seq)
    if seq is None:
        raise WireError(MALFORMED, f"'seq' must be an integer in [0, 2**63), got {get('seq')!r}"[:200])
    op = get("op")
    if type(op) is not str or op not in OPS:
        raise WireError(BAD_OP, f"unknown op {op!r}"[:200], seq)
    t = get("t")
    kind = type(t)
    if not ((kind is float and _isfinite(t)) or kind is int):
        raise WireError(MALFORMED, "'t' (the client's send time, s) must be a finite number", seq)
    if op == "hello":
        client = get("client", "")
        if type(client) is not str or len(client) > MAX_CLIENT_NAME:
            raise WireError(MALFORMED, f"'client' must be a string of at most {MAX_CLIENT_NAME} characters", seq)
        return Request(op, seq, float(t), None, client=client)
    sid = get("sid")
    if type(sid) is not bytes or len(sid) != SESSION_ID_BYTES:
        raise WireError(MALFORMED, f"'sid' must be {SESSION_ID_BYTES} bytes", seq)
    if op != "write" and op != "teleport":
        return Request(op, seq, float(t), sid)
    blob = get("q")
    if type(blob) is not bytes:
        raise WireError(MALFORMED, "'q' must be bin (little-endian float64 targets)", seq)
    if len(blob) != 8 * num_joints:  # float64
        raise WireError(INVALID, f"'q' must hold {num_joints} float64 values, got {len(blob)} bytes", seq)
    q = decode_finite_array(blob, num_joints)
    if q is None:
        raise WireError(INVALID, "joint targets must be finite", seq)
    if op == "teleport":
        return Request(op, seq, float(t), sid, q)
    ttl = get("ttl")
    kind = type(ttl)
    if not ((kind is float and _isfinite(ttl)) or kind is int) or not 0 < ttl <= MAX_TTL_S:
        raise WireError(MALFORMED, f"'ttl' must be a number in (0, {MAX_TTL_S}] seconds", seq)
    return Request(op, seq, float(t), sid, q, float(ttl))


# ---- replies ---------------------------------------------------------------------------------
def encode_reply(seq: int | None, **fields: Any) -> bytes:
    message: dict[str, Any] = {"v": PROTOCOL_VERSION, "seq": seq, "ok": True}
    message.update(fields)
    return pack(message)


def encode_error(seq: int | None, code: str, text: str, **fields: Any) -> bytes:
    message: dict[str, Any] = {"v": PROTOCOL_VERSION, "seq": seq, "ok": False, "err": code, "msg": text}
    message.update(fields)
    return pack(message)


def decode_reply(frame: bytes, max_bytes: int = 1 << 20) -> dict[str, Any]:
    """Client side: a reply map (validated loosely; the values are checked where used)."""
    try:
        message = unpack(frame, max_bytes)
    except Exception as exc:
        raise WireError(MALFORMED, f"reply is not msgpack ({type(exc).__name__})") from None
    if type(message) is not dict or type(message.get("ok")) is not bool:
        raise WireError(MALFORMED, "reply is not a map with a boolean 'ok'")
    if message.get("v") != PROTOCOL_VERSION:
        raise WireError(VERSION, f"server speaks protocol version {message.get('v')!r}, this client {PROTOCOL_VERSION}")
    return message


# ---- robot state -----------------------------------------------------------------------------
def encode_state(state: RobotState, now: float) -> dict[str, Any]:
    """A RobotState as a map. ``age`` = how long before the reply the state was measured (s), so the
    client can place it on its own clock; server clocks are never compared directly."""
    return {
        "p": encode_array(state.position),
        "dq": encode_array(state.velocity),
        "e": None if state.effort is None else encode_array(state.effort),
        "age": max(0.0, now - state.timestamp),
        "f": [[f.kind, f.joint, f.detail] for f in state.faults] if state.faults else [],
    }


def encode_write_reply(seq: int, sent: np.ndarray, state: RobotState, now: float, work_s: float) -> bytes:
    """The reply to an executed write (the hot path: built in one go)."""
    return _packb(
        {
            "v": PROTOCOL_VERSION,
            "seq": seq,
            "ok": True,
            "sent": encode_array(sent),
            "state": encode_state(state, now),
            "dt": work_s,
        },
        use_bin_type=True,
    )


def decode_state(message: Any, num_joints: int, received_at: float) -> RobotState:
    """Client side: a state map -> RobotState with ``timestamp`` on the client's monotonic clock."""
    try:
        position = decode_array(message["p"], num_joints)
        velocity = decode_array(message["dq"], num_joints)
        effort = None if message["e"] is None else decode_array(message["e"], num_joints)
        age = float(message["age"])
        faults = tuple(
            Fault(str(kind), None if joint is None else str(joint), str(detail)) for kind, joint, detail in message["f"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(MALFORMED, f"malformed state in reply ({exc})") from None
    return RobotState(position, velocity, effort, received_at - age, faults)
