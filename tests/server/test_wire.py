"""The wire schema on its own: what is accepted, what is refused and with which code."""

from __future__ import annotations

import math
import pickle
import time
from pathlib import Path

import msgpack
import msgspec
import numpy as np
import pytest

from pearl_robot.robot.base import Fault, RobotState
from pearl_robot.server import wire

N = 5
SID = b"\x01" * wire.SESSION_ID_BYTES


def good_write(**overrides) -> dict:
    message = {
        "v": wire.PROTOCOL_VERSION,
        "op": "write",
        "seq": 7,
        "t": time.monotonic(),
        "sid": SID,
        "q": wire.encode_array(np.arange(N, dtype=float) / 10),
        "ttl": 0.05,
    }
    message.update(overrides)
    return message


def refused(frame: bytes) -> wire.WireError:
    with pytest.raises(wire.WireError) as info:
        wire.decode_request(frame, N)
    return info.value


def test_a_write_round_trips() -> None:
    frame = wire.encode_request("write", 9, 12.5, SID, q=wire.encode_array(np.linspace(-1, 1, N)), ttl=0.05)
    request = wire.decode_request(frame, N)
    assert (request.op, request.seq, request.t, request.sid, request.ttl) == ("write", 9, 12.5, SID, 0.05)
    np.testing.assert_array_equal(request.q, np.linspace(-1, 1, N))


@pytest.mark.parametrize("op", sorted(wire.OPS - {"write", "teleport", "hello"}))
def test_plain_ops_need_only_the_header(op: str) -> None:
    request = wire.decode_request(wire.encode_request(op, 1, 0.0, SID), N)
    assert request.op == op and request.sid == SID and "q" not in request.__struct_fields__


def test_hello_needs_no_session() -> None:
    request = wire.decode_request(wire.encode_request("hello", 1, 0.0, client="lab-pc"), N)
    assert request.op == "hello" and request.sid is None and request.client == "lab-pc"


# the frames hold a timestamp: ids by position and code, so every collection (one per xdist worker) agrees
BAD_FRAMES = [
    (b"", wire.MALFORMED),
    (b"\xc1", wire.MALFORMED),  # a msgpack byte that is never valid
    (b"\x93\x01\x02", wire.MALFORMED),  # truncated array
    (msgpack.packb([1, "write", 7]), wire.MALFORMED),  # not a map
    (msgpack.packb({"op": "write", "seq": 1}), wire.MALFORMED),  # no version
    (msgpack.packb({"v": "1", "op": "ping", "seq": 1}), wire.MALFORMED),
    (msgpack.packb(good_write(v=2)), wire.VERSION),
    (msgpack.packb(good_write(v=0)), wire.VERSION),
    (msgpack.packb(good_write(op="explode")), wire.BAD_OP),
    (msgpack.packb(good_write(op=b"write")), wire.BAD_OP),
    (msgpack.packb(good_write(seq=True)), wire.MALFORMED),
    (msgpack.packb(good_write(seq=-1)), wire.MALFORMED),
    (msgpack.packb(good_write(seq=2.0)), wire.MALFORMED),
    (msgpack.packb(good_write(seq=2**63)), wire.MALFORMED),
    (msgpack.packb(good_write(t=float("nan"))), wire.MALFORMED),
    (msgpack.packb(good_write(t="now")), wire.MALFORMED),
    (msgpack.packb(good_write(sid=b"short")), wire.MALFORMED),
    (msgpack.packb(good_write(sid="x" * 16)), wire.MALFORMED),
    (msgpack.packb({k: v for k, v in good_write().items() if k != "sid"}), wire.MALFORMED),
    (msgpack.packb(good_write(q=[0.0] * N)), wire.MALFORMED),  # a list, not bin
    (msgpack.packb(good_write(q=b"\x00" * 8 * (N - 1))), wire.INVALID),
    (msgpack.packb(good_write(q=b"\x00" * (8 * N + 1))), wire.INVALID),
    (msgpack.packb(good_write(q=wire.encode_array(np.array([0, 0, np.nan, 0, 0])))), wire.INVALID),
    (msgpack.packb(good_write(q=wire.encode_array(np.array([0, 0, 0, np.inf, 0])))), wire.INVALID),
    (msgpack.packb(good_write(ttl=0)), wire.MALFORMED),
    (msgpack.packb(good_write(ttl=-1.0)), wire.MALFORMED),
    (msgpack.packb(good_write(ttl=1e9)), wire.MALFORMED),
    (msgpack.packb({k: v for k, v in good_write().items() if k != "ttl"}), wire.MALFORMED),
    (msgpack.packb({**good_write(), "op": "hello", "client": "x" * 65}), wire.MALFORMED),
    (msgpack.packb({1: 2}), wire.MALFORMED),  # non-string keys
    (msgpack.packb(good_write()) + b"\x00", wire.MALFORMED),  # trailing bytes
]


@pytest.mark.parametrize("frame, code", BAD_FRAMES, ids=[f"{i:02d}-{code}" for i, (_, code) in enumerate(BAD_FRAMES)])
def test_bad_frames_are_refused_with_a_code(frame: bytes, code: str) -> None:
    assert refused(frame).code == code


def test_refusals_echo_a_readable_seq() -> None:
    assert refused(msgpack.packb(good_write(v=3, seq=41))).seq == 41
    assert refused(msgpack.packb(good_write(op="nope", seq=42))).seq == 42
    assert refused(b"\xc1").seq is None


def test_oversized_frames_are_refused_before_decoding() -> None:
    huge = msgpack.packb(good_write(pad=b"x" * wire.MAX_MESSAGE_BYTES))
    assert refused(huge).code == wire.OVERSIZED


def test_pickle_is_never_unpickled() -> None:
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    assert refused(pickle.dumps(Boom())).code == wire.MALFORMED
    assert refused(pickle.dumps(good_write())).code == wire.MALFORMED
    source = Path(wire.__file__).read_text() + Path(wire.__file__).with_name("server.py").read_text()
    assert "import pickle" not in source and "pickle.loads" not in source


def test_unknown_keys_are_ignored_within_a_version() -> None:
    request = wire.decode_request(msgpack.packb(good_write(extra={"future": 1})), N)
    assert request.op == "write"


def test_extension_types_do_not_execute_anything() -> None:
    frame = msgpack.packb(good_write(t=msgpack.ExtType(42, b"payload")))
    assert refused(frame).code == wire.MALFORMED


def test_state_round_trips_onto_the_client_clock() -> None:
    state = RobotState(
        np.linspace(-1, 1, N),
        np.full(N, 0.25),
        None,
        100.0,
        (Fault("joint_error", "joint2", "injected"), Fault("stale_read")),
    )
    encoded = wire.decode_reply(wire.encode_reply(3, state=wire.encode_state(state, now=100.02)))
    decoded = wire.decode_state(encoded.state, N, received_at=5.0)
    np.testing.assert_array_equal(decoded.position, state.position)
    np.testing.assert_array_equal(decoded.velocity, state.velocity)
    assert decoded.effort is None
    assert math.isclose(decoded.timestamp, 5.0 - 0.02)
    assert decoded.faults == state.faults
    with_effort = RobotState(state.position, state.velocity, np.ones(N), 1.0)
    again = wire.decode_state(
        msgspec.msgpack.decode(wire.pack(wire.encode_state(with_effort, 1.0)), type=wire.State), N, 1.0
    )
    np.testing.assert_array_equal(again.effort, np.ones(N))


def test_replies_from_another_version_are_refused_by_the_client() -> None:
    with pytest.raises(wire.WireError) as info:
        wire.decode_reply(msgpack.packb({"v": 99, "seq": 1, "ok": True}))
    assert info.value.code == wire.VERSION
    with pytest.raises(wire.WireError):
        wire.decode_reply(b"\xc1")
    assert wire.decode_reply(wire.encode_error(4, wire.EXPIRED, "late")).err == wire.EXPIRED


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"t": float("nan")}, "'t'"),
        ({"t": "now"}, "'t'"),
        ({"sid": b"short"}, "'sid'"),
        ({"q": [0.0] * N}, "'q'"),
        ({"ttl": 0}, "'ttl'"),
        ({"ttl": None}, "'ttl'"),
        ({"seq": -1}, "'seq'"),
        ({"v": "1"}, "'v'"),
    ],
)
def test_malformed_fields_are_named(overrides: dict, field: str) -> None:
    error = refused(msgpack.packb(good_write(**overrides)))
    assert error.code == wire.MALFORMED and field in error.message, error.message


def test_missing_fields_are_named() -> None:
    for key in ("sid", "q", "ttl", "t"):
        error = refused(msgpack.packb({k: v for k, v in good_write().items() if k != key}))
        assert error.code == wire.MALFORMED and f"'{key}'" in error.message and "missing" in error.message
        assert error.seq == 7


def test_invalid_targets_say_why() -> None:
    assert "5 float64 values" in refused(msgpack.packb(good_write(q=b"\x00" * 8))).message
    nan = wire.encode_array(np.array([0, 0, np.nan, 0, 0]))
    assert refused(msgpack.packb(good_write(q=nan))).message == "joint targets must be finite"
    huge = wire.encode_array(np.full(N, 1e308))  # finite, though their sum is not
    np.testing.assert_array_equal(wire.decode_request(msgpack.packb(good_write(q=huge)), N).q, np.full(N, 1e308))


def test_the_version_is_checked_before_the_fields() -> None:
    """A future version may change any field: its requests are refused as `version`, not malformed."""
    assert refused(msgpack.packb({"v": 2, "op": "warp", "seq": 3, "q": "anything"})).code == wire.VERSION


def test_encoding_is_byte_for_byte_plain_msgpack() -> None:
    """The wire format of protocol 1 is unchanged: msgpack-python (and any other msgpack) reads and writes it."""
    q = wire.encode_array(np.linspace(-1, 1, N))
    frame = wire.encode_request("write", 9, 12.5, SID, q=q, ttl=0.05)
    message = {"v": 1, "op": "write", "seq": 9, "t": 12.5, "sid": SID, "q": q, "ttl": 0.05}
    assert frame == msgpack.packb(message, use_bin_type=True)
    state = RobotState(np.zeros(N), np.ones(N), None, 1.0, (Fault("stale_read"),))
    reply = msgpack.unpackb(wire.encode_write_reply(9, np.zeros(N), state, 1.5, 1e-4))
    assert list(reply) == ["v", "seq", "ok", "sent", "state", "dt"]
    assert reply["state"] == {
        "p": wire.encode_array(np.zeros(N)),
        "dq": wire.encode_array(np.ones(N)),
        "e": None,
        "age": 0.5,
        "f": [["stale_read", None, ""]],
    }


@pytest.mark.parametrize(
    "reply, field",
    [
        ({"v": 1, "seq": 1, "ok": True, "sent": "not bytes"}, "'sent'"),
        ({"v": 1, "seq": "1", "ok": True}, "'seq'"),
        (
            {"v": 1, "seq": 1, "ok": True, "state": {"p": b"", "dq": b"", "e": None, "age": float("nan"), "f": []}},
            "age",
        ),
        ({"v": 1, "seq": 1, "ok": True, "state": {"p": b"", "dq": b""}}, "'state.e'"),
        ({"v": 1, "seq": 1, "ok": "yes"}, "'ok'"),
    ],
)
def test_bad_replies_are_refused_by_the_client_naming_the_field(reply: dict, field: str) -> None:
    with pytest.raises(wire.WireError) as info:
        wire.decode_reply(msgpack.packb(reply))
    assert info.value.code == wire.MALFORMED and field in info.value.message, info.value.message


def test_replies_arrays_must_have_the_joint_count() -> None:
    with pytest.raises(wire.WireError, match="'sent' must hold 5 float64 values, got 48 bytes"):
        wire.decode_array(b"\x00" * 48, N, "sent")


def test_the_clients_write_encoder_is_encode_request() -> None:
    q = wire.encode_array(np.linspace(-1, 1, N))
    assert wire.encode_write(9, 12.5, SID, q, 0.05) == wire.encode_request("write", 9, 12.5, SID, q=q, ttl=0.05)
