"""Any local process can flood the port; the owner is still served first, other peers keep their turn, and
the server's memory stays bounded. Floods go to 127.0.0.1 only, bounded in time and count."""

from __future__ import annotations

import time

import pytest
from server_helpers import remote_of, request, targets_near, wait_for

from pearl_robot.bench.server_faults import flood
from pearl_robot.server import wire
from pearl_robot.server.inbox import MIN_SHARE, Inbox


def test_the_inbox_takes_turns_between_peers() -> None:
    inbox = Inbox(per_peer=4, total=100)
    for i in range(3):
        assert inbox.put(b"a", ("a", i), 0.0)
    assert inbox.put(b"b", ("b", 0), 0.0)
    assert [inbox.pop() for _ in range(4)] == [("a", 0), ("b", 0), ("a", 1), ("a", 2)]
    assert len(inbox) == 0 and b"a" not in inbox


def test_a_peer_over_its_share_is_muted_for_a_while() -> None:
    inbox = Inbox(per_peer=4, total=100, mute_s=1.0)
    for i in range(4):
        assert inbox.put(b"flood", i, 0.0)
    assert not inbox.put(b"flood", 4, 0.1)
    assert inbox.muted(b"flood", 0.5) and not inbox.muted(b"other", 0.5)
    assert inbox.put(b"other", 0, 0.5)  # everyone else keeps their turn
    assert not inbox.muted(b"flood", 1.2)


def test_the_share_shrinks_as_peers_arrive_and_the_total_holds() -> None:
    inbox = Inbox(per_peer=1000, total=64)
    peers = [bytes([i]) for i in range(8)]
    accepted = 0
    for _ in range(100):
        for peer in peers:
            accepted += inbox.put(peer, 0, 0.0)
    assert accepted == len(inbox) <= 64
    assert all(inbox.muted(peer, 0.0) for peer in peers)  # each one overflowed its share of 64 / 8
    assert 64 // len(peers) >= MIN_SHARE


def test_a_flooding_peer_is_muted_and_the_others_answered(start_server, connect, raw_socket, spec) -> None:
    server = start_server()
    robot = remote_of(connect(server.endpoints[0]))
    robot.enable()
    flooder = raw_socket(server.endpoints[0])
    for i in range(3000):  # never reads its replies
        flooder.send(b"\x00garbage" * (1 + i % 8))
    wait_for(lambda: server.events["dropped_flood"] > 0)
    # the owner, and a peer asking politely, are answered meanwhile
    robot.write(targets_near(spec, 0.02))
    other = raw_socket(server.endpoints[0])
    assert request(other, "hello", 1, client="second").err == wire.BUSY
    assert robot.events["command_expired"] == 0
    # a muted peer is dropped unanswered, then heard again once its mute ends
    wait_for(lambda: not server._inbox, timeout_s=5.0)
    time.sleep(1.1)
    while flooder.poll(100):  # the replies it never read
        flooder.recv()
    assert request(flooder, "ping", 5, b"x" * 16).err == wire.NO_SESSION
    assert server.running


@pytest.mark.timeout(30)
def test_the_owner_rides_out_a_flood_from_another_process() -> None:
    """`serve` in a process, a flooding process beside it, the owner writing at 20 Hz: (the issue's figures
    are measured by benchmarks/fault_injection_server.py; this checks the behaviour, with room for CI)."""
    result = flood(duration_s=2.0, trials=1)
    assert result["flood_messages_sent"] > 10_000
    assert result["owner_expired_flooded"] <= 1
    assert result["owner_round_trip_flooded"]["max_ms"] < 100
    assert result["server_peak_growth_mb"] < 32
    assert sum(v for k, v in result["server_events"].items() if k.startswith("refused")) > 1000
