"""Thousands of malformed frames at a live server with the arm enabled: every one is refused, counted
and answered; the server stays up, the arm does not move, and its client carries on."""

from __future__ import annotations

import contextlib
import random
import time

import msgpack
import numpy as np
import zmq
from server_helpers import mock_of, remote_of, targets_near, wait_for

from pearl_robot.robot.base import Lifecycle
from pearl_robot.server import wire

N_FRAMES = 3000
OPS = sorted(wire.OPS)


def junk_value(rng: random.Random):
    choices = [
        None,
        True,
        rng.randint(-(2**63), 2**64 - 1),
        rng.uniform(-1e300, 1e300),
        float("nan"),
        float("inf"),
        "".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(0, 20))),
        rng.randbytes(rng.randint(0, 64)),
        [rng.random() for _ in range(rng.randint(0, 8))],
        {"nested": rng.random()},
        msgpack.ExtType(rng.randint(0, 127), rng.randbytes(rng.randint(0, 8))),
    ]
    return rng.choice(choices)


def template(rng: random.Random, sid: bytes, num_joints: int) -> dict:
    op = rng.choice(OPS)
    message = {"v": wire.PROTOCOL_VERSION, "op": op, "seq": rng.randint(0, 2**40), "t": time.monotonic(), "sid": sid}
    if op in ("write", "teleport"):
        message["q"] = wire.encode_array(np.zeros(num_joints))
    if op == "write":
        message["ttl"] = 0.05
    return message


def malformed_frames(rng: random.Random, legit_sid: bytes, num_joints: int) -> list[list[bytes]]:
    """Frames a DEALER sends (one list per message); none is a valid command for the live session."""
    frames: list[list[bytes]] = []
    while len(frames) < N_FRAMES:
        stranger = rng.randbytes(wire.SESSION_ID_BYTES)
        kind = rng.randrange(11)
        if kind == 0:  # random bytes
            frames.append([rng.randbytes(rng.randint(0, 300))])
        elif kind == 1:  # valid msgpack, not a map
            frames.append([msgpack.packb(junk_value(rng))])
        elif kind == 2:  # a well-formed request of an unknown session
            frames.append([msgpack.packb(template(rng, stranger, num_joints))])
        elif kind == 3:  # a field replaced by junk or removed (an unknown session: nothing may run)
            message = template(rng, stranger, num_joints)
            key = rng.choice(sorted(message))
            if rng.random() < 0.5:
                message[key] = junk_value(rng)
            else:
                del message[key]
            if message.get("op") == "hello":
                message["client"] = "x" * 100  # a valid hello would only be refused as busy; break it
            frames.append([msgpack.packb(message)])
        elif kind == 4:  # wrong protocol version
            message = template(rng, legit_sid, num_joints)
            message["v"] = rng.choice([0, 2, 99, -1])
            frames.append([msgpack.packb(message)])
        elif kind == 5:  # truncated or bit-flipped valid requests of an unknown session
            frame = bytearray(msgpack.packb(template(rng, stranger, num_joints)))
            if rng.random() < 0.5:
                frame = frame[: rng.randrange(len(frame))]
            else:
                for _ in range(rng.randint(1, 4)):
                    frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
            frames.append([bytes(frame)])
        elif kind == 6:  # the live session's id with unusable targets
            message = template(rng, legit_sid, num_joints)
            message["op"] = rng.choice(["write", "teleport"])
            message["ttl"] = 0.05
            bad = np.zeros(num_joints)
            bad[rng.randrange(num_joints)] = rng.choice([np.nan, np.inf, -np.inf])
            message["q"] = rng.choice(
                [wire.encode_array(bad), rng.randbytes(8 * rng.choice([0, 1, num_joints - 1, num_joints + 1]))]
            )
            frames.append([msgpack.packb(message)])
        elif kind == 7:  # the live session's id: a stale write and a far-future send time
            message = template(rng, legit_sid, num_joints)
            message.update(op="write", q=wire.encode_array(targets_near_zero(num_joints, rng)), ttl=0.05)
            message["t"] = time.monotonic() + rng.choice([-5.0, -0.5, 5.0, 1e6])
            frames.append([msgpack.packb(message)])
        elif kind == 8:  # oversized (but under the transport's own limit)
            frames.append([msgpack.packb({"v": 1, "op": "write", "pad": rng.randbytes(wire.MAX_MESSAGE_BYTES + 10)})])
        elif kind == 9:  # several frames, or a REQ-style envelope around junk
            parts = [rng.randbytes(rng.randint(0, 20)) for _ in range(rng.randint(2, 4))]
            frames.append(parts if rng.random() < 0.5 else [b"", rng.randbytes(rng.randint(0, 40))])
        else:  # a hello while the robot is taken
            frames.append([wire.encode_request("hello", rng.randint(0, 100), time.monotonic(), client="intruder")])
    return frames


def targets_near_zero(num_joints: int, rng: random.Random) -> np.ndarray:
    return np.array([rng.uniform(-0.3, 0.3) for _ in range(num_joints)])


def test_fuzzed_frames_never_move_the_arm(start_server, connect, raw_socket, spec, transport) -> None:
    server = start_server(transport)
    mock = mock_of(server)
    robot = remote_of(connect(server.endpoints[0]))
    robot.enable()
    robot.write(targets_near(spec, 0.05))
    wait_for(lambda: server.events["watchdog_hold"] >= 1)  # the arm is at rest, held
    position, goal = mock.position.copy(), mock.goal.copy()
    writes_before = server.events["writes"]
    refusals_before = sum(v for k, v in server.events.items() if k.startswith("refused_"))

    rng = random.Random(20240611)
    frames = malformed_frames(rng, robot._sid, spec.num_joints)
    sock = raw_socket(server.endpoints[0])
    codes: set[str] = set()
    for start in range(0, len(frames), 100):
        chunk = frames[start : start + 100]
        for parts in chunk:
            sock.send_multipart(parts)
        for _ in chunk:
            reply = wire.decode_reply(sock.recv_multipart()[-1])  # REQ-style envelopes come back too
            assert reply.ok is False and reply.err in wire.ERROR_CODES
            codes.add(reply.err)

    # a REQ socket too: its envelope is answered in kind
    req = raw_socket(server.endpoints[0], zmq.REQ)
    for _ in range(200):
        req.send(rng.randbytes(rng.randint(0, 64)))
        assert wire.decode_reply(req.recv()).ok is False

    assert server.running
    expected = {
        wire.MALFORMED,
        wire.VERSION,
        wire.BAD_OP,
        wire.INVALID,
        wire.NO_SESSION,
        wire.OVERSIZED,
        wire.BUSY,
        wire.EXPIRED,
    }
    assert expected <= codes, expected - codes
    refusals = sum(v for k, v in server.events.items() if k.startswith("refused_")) - refusals_before
    assert refusals == len(frames) + 200
    assert server.events["internal_error"] == 0
    # the arm never moved, and no command ran
    assert server.events["writes"] == writes_before
    np.testing.assert_array_equal(mock.position, position)
    np.testing.assert_array_equal(mock.goal, goal)
    assert server.robot.lifecycle is Lifecycle.ACTIVE

    # the legitimate client carries on as if nothing happened
    sent = robot.write(targets_near(spec, 0.06))
    np.testing.assert_allclose(sent, targets_near(spec, 0.06))
    assert robot.events["command_expired"] == 0
    np.testing.assert_allclose(mock.goal, targets_near(spec, 0.06))


def test_frames_over_the_transport_limit_drop_only_that_peer(start_server, connect, raw_socket, spec) -> None:
    server = start_server()
    robot = connect(server.endpoints[0])
    robot.enable()
    sock = raw_socket(server.endpoints[0])
    sock.setsockopt(zmq.RCVTIMEO, 300)
    sock.send(b"\x00" * (1 << 20))  # 1 MiB: the transport disconnects this peer without reading it all
    with contextlib.suppress(zmq.Again):
        sock.recv()
    assert server.running
    robot.write(targets_near(spec, 0.02))
    assert server.robot.lifecycle is Lifecycle.ACTIVE
