"""The robot server's wire schema, version 1: one msgpack map per ZeroMQ message, never pickle.

docs/wire_protocol.md is the reader's description; this module is the one place the schema lives, as
msgspec Structs: requests are a union tagged by ``op`` (decoded strictly on the server), replies one
``Reply`` (decoded strictly on the client). Decoding checks every type and bound in C and names the field
that broke one.

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
    ...         op-specific keys (see ``Reply``, ``State`` and the server's handlers)

Deadlines without synchronized clocks: for each session the server learns a baseline of ``receive_time - t``
from many messages (``clock.DelayBaseline``: the median of per-window minima, rising no faster than clock
drift); a command's age is its own ``receive_time - t`` minus that baseline, i.e. the delay it suffered beyond
the best the link has shown. A write older than its ``ttl`` (or the server's own limit) is dropped, never
executed late. No single message can move the baseline; a ``t`` more than MAX_CLOCK_LEAP_S ahead of it is
refused (``invalid``) and not learned from.
"""

from __future__ import annotations

import math
import re
import struct
import sys
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

import msgspec
import numpy as np
from msgspec import Meta, Struct

from pearl_robot.robot.base import Fault, RobotState

PROTOCOL_VERSION = 1
Version = Literal[1]  # PROTOCOL_VERSION, as the schema's type
MAX_MESSAGE_BYTES = 4096  # larger frames are refused before decoding
SESSION_ID_BYTES = 16
MAX_SEQ = 2**63
MAX_TTL_S = 10.0
MAX_CLIENT_NAME = 64
MAX_CLOCK_LEAP_S = 1.0  # a send time further ahead of the session's baseline than this is refused
_MAP_MARKERS = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}  # msgpack fixmap, map16, map32
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


# ---- field types -----------------------------------------------------------------------------
_BIG = sys.float_info.max
Seq = Annotated[int, Meta(ge=0, le=MAX_SEQ - 1)]
Finite = Annotated[float, Meta(ge=-_BIG, le=_BIG)]  # NaN and +-inf fail the bounds (ints are accepted)
NonNegative = Annotated[float, Meta(ge=0.0, le=_BIG)]
SessionId = Annotated[bytes, Meta(min_length=SESSION_ID_BYTES, max_length=SESSION_ID_BYTES)]
Ttl = Annotated[float, Meta(gt=0.0, le=MAX_TTL_S)]
ClientName = Annotated[str, Meta(max_length=MAX_CLIENT_NAME)]
Targets = np.ndarray  # on the wire: bin of num_joints float64 LE, all finite (decoded by ``request_decoder``)


# ---- requests (client -> server) -------------------------------------------------------------
class _Request(Struct, tag_field="op", frozen=True, gc=False):
    op: ClassVar[str]
    sid: ClassVar[bytes | None] = None
    v: Version
    seq: Seq
    t: Finite


class Hello(_Request, tag="hello"):
    op = "hello"
    client: ClientName = ""


class _SessionRequest(_Request):
    sid: SessionId  # type: ignore[misc]  # a field from here on (hello has none)


class Ping(_SessionRequest, tag="ping"):
    op = "ping"


class Read(_SessionRequest, tag="read"):
    op = "read"


class Enable(_SessionRequest, tag="enable"):
    op = "enable"


class Disable(_SessionRequest, tag="disable"):
    op = "disable"


class Teleport(_SessionRequest, tag="teleport"):
    op = "teleport"
    q: Targets


class Write(_SessionRequest, tag="write"):
    op = "write"
    q: Targets
    ttl: Ttl


class Stats(_SessionRequest, tag="stats"):
    op = "stats"


class Bye(_SessionRequest, tag="bye"):
    op = "bye"


Request = Union[Hello, Ping, Read, Enable, Disable, Teleport, Write, Stats, Bye]  # noqa: UP007 (a runtime type)
OPS = frozenset(kind.op for kind in get_args(Request))


class _Header(Struct, gc=False):
    """What a refusal needs from a request that failed to decode: its version, seq and op, of any type."""

    v: Any = None
    seq: Any = None
    op: Any = None


# what each field must be, for refusals that name it
_FIELD_RULES = {
    "t": "'t' (the client's send time, s) must be a finite number",
    "sid": f"'sid' must be {SESSION_ID_BYTES} bytes",
    "q": "'q' must be bin (little-endian float64 targets)",
    "ttl": f"'ttl' must be a number in (0, {MAX_TTL_S}] seconds",
    "client": f"'client' must be a string of at most {MAX_CLIENT_NAME} characters",
}
_ERROR_PATH = re.compile(r" - at `\$\.?([^`]*)`")  # msgspec's "... - at `$.state.age`"
_MISSING_FIELD = re.compile(r"missing required field `(\w+)`")
_FINITE_BOUNDS = {f"Expected `float` >= {-_BIG!r}", f"Expected `float` <= {_BIG!r}"}  # how msgspec refuses NaN, inf
_NOT_FINITE = "got NaN or an infinity"


# ---- helpers ---------------------------------------------------------------------------------
def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, np.generic):  # numpy scalars (a spec's rates, a robot's timestamps) travel as numbers
        return obj.item()
    raise NotImplementedError(f"cannot send {type(obj).__name__} on the wire")


_encode = msgspec.msgpack.Encoder(enc_hook=_enc_hook).encode
_isfinite = math.isfinite


def pack(message: Any) -> bytes:
    return _encode(message)


def encode_array(values: np.ndarray) -> bytes:
    if type(values) is np.ndarray and values.dtype is ARRAY_DTYPE:  # the common case, no conversion
        return values.tobytes()
    return np.ascontiguousarray(values, dtype=ARRAY_DTYPE).tobytes()


def decode_array(blob: bytes | None, n: int, name: str = "array") -> np.ndarray:
    """``n`` float64 LE values (client side: the server's arrays); raises WireError for any other length."""
    if blob is None or len(blob) != 8 * n:
        got = "nothing" if blob is None else f"{len(blob)} bytes"
        raise WireError(MALFORMED, f"'{name}' must hold {n} float64 values, got {got}")
    return np.ndarray((n,), ARRAY_DTYPE, bytearray(blob))  # a writable copy (cheaper than frombuffer + copy)


# ---- requests --------------------------------------------------------------------------------
def encode_request(op: str, seq: int, t: float, sid: bytes | None = None, **fields: Any) -> bytes:
    if sid is None:
        message: dict[str, Any] = {"v": PROTOCOL_VERSION, "op": op, "seq": seq, "t": t}
    else:
        message = {"v": PROTOCOL_VERSION, "op": op, "seq": seq, "t": t, "sid": sid}
    if fields:
        message.update(fields)
    return _encode(message)


class _WriteFrame(Struct, gc=False):
    """A write request as the client encodes it: the keys of ``encode_request``, in its order."""

    v: int
    op: str
    seq: int
    t: float
    sid: bytes
    q: bytes
    ttl: float


def encode_write(seq: int, t: float, sid: bytes, q: bytes, ttl: float) -> bytes:
    """``encode_request("write", seq, t, sid, q=q, ttl=ttl)``, byte for byte, at a third of the cost (the hot path)."""
    return _encode(_WriteFrame(PROTOCOL_VERSION, "write", seq, t, sid, q, ttl))


def check_frame(frame: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
    """The checks that need no decoding: the size, and that the frame starts a msgpack map."""
    if len(frame) > max_bytes:
        raise WireError(OVERSIZED, f"message of {len(frame)} bytes exceeds the {max_bytes}-byte limit")
    if not frame or frame[0] not in _MAP_MARKERS:
        raise WireError(MALFORMED, "not a msgpack map")


def request_decoder(num_joints: int) -> Callable[[bytes], Request]:
    """-> ``decode(frame)``: one request, validated; raises WireError naming why it is refused. The caller
    has passed the frame through ``check_frame``.

    The targets ``q`` become a float64 array of ``num_joints`` finite values, or the request is refused as
    ``invalid`` (a wrong length, NaN or inf)."""
    size = 8 * num_joints
    unpack = struct.Struct(f"<{num_joints}d").unpack
    array = np.array

    def targets(kind: type, blob: Any) -> np.ndarray:
        if kind is not Targets:
            raise NotImplementedError(kind)
        if type(blob) is not bytes:
            raise TypeError(f"got {type(blob).__name__}")
        if len(blob) != size:
            raise WireError(INVALID, f"'q' must hold {num_joints} float64 values, got {len(blob)} bytes")
        values = unpack(blob)
        # a finite sum means every value is finite; otherwise look (a sum of huge values may overflow)
        if not _isfinite(sum(values)) and not all(map(_isfinite, values)):
            raise WireError(INVALID, "joint targets must be finite")
        return array(values)

    typed = msgspec.msgpack.Decoder(Request, strict=True, dec_hook=targets).decode

    def decode(frame: bytes) -> Request:
        try:
            return typed(frame)
        except Exception as exc:  # the rare path: say what is wrong, with the seq where it is readable
            raise _refusal(frame, exc) from None

    return decode


@lru_cache(maxsize=8)
def _cached_decoder(num_joints: int) -> Callable[[bytes], Request]:
    return request_decoder(num_joints)


def decode_request(frame: bytes, num_joints: int, max_bytes: int = MAX_MESSAGE_BYTES) -> Request:
    """Validate one request frame; raises WireError naming why it is refused (``request_decoder`` for a loop)."""
    check_frame(frame, max_bytes)
    return _cached_decoder(num_joints)(frame)


_decode_header = msgspec.msgpack.Decoder(_Header).decode


def _refusal(frame: bytes, error: Exception) -> WireError:
    """Why a request failed to decode, checked in order: msgpack map, version, seq, op, then its fields."""
    try:
        header = _decode_header(frame)
    except msgspec.ValidationError as exc:  # valid msgpack, but not a map with string keys
        return WireError(MALFORMED, f"expected a msgpack map with string keys ({_detail(exc)})")
    except msgspec.DecodeError as exc:
        return WireError(MALFORMED, f"not a msgpack message ({exc})")
    except Exception as exc:  # nested too deep
        return WireError(MALFORMED, f"not a msgpack message ({type(exc).__name__})")
    seq = header.seq
    if type(seq) is not int or not 0 <= seq < MAX_SEQ:
        seq = None
    version = header.v
    if type(version) is not int:
        return WireError(MALFORMED, "missing integer protocol version 'v'", seq)
    if version != PROTOCOL_VERSION:
        return WireError(VERSION, f"protocol version {version} not supported (server speaks {PROTOCOL_VERSION})", seq)
    if seq is None:
        return WireError(MALFORMED, f"'seq' must be an integer in [0, 2**63), got {header.seq!r}"[:200])
    op = header.op
    if type(op) is not str or op not in OPS:
        return WireError(BAD_OP, f"unknown op {op!r}"[:200], seq)
    if isinstance(error, WireError):  # from the targets: invalid values
        error.seq = seq
        return error
    return WireError(MALFORMED, _explain(error), seq)


def _detail(error: Exception) -> str:
    """msgspec's complaint without its path (NaN and inf in plain words); any other error's name."""
    if isinstance(error, msgspec.ValidationError):
        detail = str(error).split(" - at `")[0][:200]
        return _NOT_FINITE if detail in _FINITE_BOUNDS else detail
    return str(error)[:200] if isinstance(error, msgspec.DecodeError) else type(error).__name__


def _explain(error: Exception) -> str:
    """A decoder's complaint as a sentence naming the field: "'ttl' must be ... (Expected `float` > 0.0)"."""
    if not isinstance(error, msgspec.ValidationError):
        return f"not a msgpack message ({type(error).__name__})"
    text = str(error)
    at = _ERROR_PATH.search(text)
    field = at.group(1) if at else ""
    missing = _MISSING_FIELD.search(text)
    if missing:
        field = f"{field}.{missing.group(1)}" if field else missing.group(1)
    detail = "missing" if missing else _detail(error)
    rule = _FIELD_RULES.get(field)
    if rule is not None:
        return f"{rule} ({detail})"
    return f"'{field}': {detail}" if field else detail


# ---- replies ---------------------------------------------------------------------------------
class ServedSpec(Struct, frozen=True, gc=False):
    """The served robot, in a hello reply: the client checks it against its own hardware file."""

    robot_id: str
    joints: list[str]
    rate_hz: float


class State(Struct, gc=False):
    """A RobotState on the wire. ``age`` = how long before the reply the state was measured (s), so the
    client can place it on its own clock; server clocks are never compared directly."""

    p: bytes
    dq: bytes
    e: bytes | None
    age: NonNegative
    f: list[tuple[str, str | None, str]]  # faults: [kind, joint or nil, detail]


class Reply(Struct, kw_only=True, gc=False):
    """Every reply's keys, each typed; a key a reply does not carry is None (``ok`` and ``v`` always come)."""

    v: int
    seq: Seq | None = None
    ok: bool
    err: str | None = None
    msg: str | None = None
    held: bytes | None = None  # a dropped write: the targets the arm holds
    sent: bytes | None = None  # write
    state: State | None = None  # write, read, teleport
    dt: NonNegative | None = None  # write: the served robot's own time
    life: str | None = None
    holding: bool | None = None  # ping
    sid: SessionId | None = None  # hello
    spec: ServedSpec | None = None
    last_error: str | None = None
    heartbeat_timeout_s: Finite | None = None
    watchdog_periods: int | None = None
    max_command_age_s: Finite | None = None
    can_teleport: bool | None = None
    events: dict[str, int] | None = None  # stats
    holds: list[tuple[float, str]] | None = None


class WriteReply(Struct, gc=False):
    """An executed write's reply as the server encodes it (keys in this order); clients decode it as a Reply."""

    v: int
    seq: int
    ok: bool
    sent: bytes
    state: State
    dt: float


class _ReplyHeader(Struct, gc=False):
    """What a reply that failed to decode says of itself: its version and ``ok``, of any type."""

    v: Any = None
    ok: Any = None


def encode_reply(seq: int | None, **fields: Any) -> bytes:
    message: dict[str, Any] = {"v": PROTOCOL_VERSION, "seq": seq, "ok": True}
    message.update(fields)
    return _encode(message)


def encode_error(seq: int | None, code: str, text: str, **fields: Any) -> bytes:
    message: dict[str, Any] = {"v": PROTOCOL_VERSION, "seq": seq, "ok": False, "err": code, "msg": text}
    message.update(fields)
    return _encode(message)


_decode_reply = msgspec.msgpack.Decoder(Reply, strict=True).decode
_decode_reply_header = msgspec.msgpack.Decoder(_ReplyHeader).decode


def decode_reply(frame: bytes, max_bytes: int = 1 << 20) -> Reply:
    """Client side: a reply, every key it carries checked against ``Reply``."""
    if len(frame) > max_bytes:
        raise WireError(MALFORMED, f"reply of {len(frame)} bytes over the {max_bytes}-byte limit")
    try:
        reply = _decode_reply(frame)
    except Exception as exc:
        try:
            header = _decode_reply_header(frame)
        except Exception:
            raise WireError(MALFORMED, f"reply is not a msgpack map ({_detail(exc)})") from None
        if type(header.ok) is not bool:
            raise WireError(MALFORMED, "reply is not a map with a boolean 'ok'") from None
        if header.v != PROTOCOL_VERSION:
            raise _version_error(header.v) from None
        raise WireError(MALFORMED, f"bad reply: {_explain(exc)}") from None
    if reply.v != PROTOCOL_VERSION:
        raise _version_error(reply.v)
    return reply


def _version_error(version: Any) -> WireError:
    return WireError(VERSION, f"server speaks protocol version {version!r}, this client {PROTOCOL_VERSION}")


# ---- robot state -----------------------------------------------------------------------------
def encode_state(state: RobotState, now: float) -> State:
    age = now - state.timestamp
    return State(
        encode_array(state.position),
        encode_array(state.velocity),
        None if state.effort is None else encode_array(state.effort),
        age if age > 0.0 else 0.0,
        [(f.kind, f.joint, f.detail) for f in state.faults] if state.faults else [],
    )


def encode_write_reply(seq: int, sent: np.ndarray, state: RobotState, now: float, work_s: float) -> bytes:
    """The reply to an executed write (the hot path)."""
    return _encode(WriteReply(PROTOCOL_VERSION, seq, True, encode_array(sent), encode_state(state, now), work_s))


def decode_state(state: State, num_joints: int, received_at: float) -> RobotState:
    """Client side: a State -> RobotState with ``timestamp`` on the client's monotonic clock."""
    return RobotState(
        decode_array(state.p, num_joints, "p"),
        decode_array(state.dq, num_joints, "dq"),
        None if state.e is None else decode_array(state.e, num_joints, "e"),
        received_at - state.age,
        tuple(Fault(kind, joint, detail) for kind, joint, detail in state.f),
    )
