"""Messages from peers that do not hold the session, waiting their turn behind the owner's.

One bounded queue per peer (ZeroMQ routing id), served round-robin: a peer that sends faster than the
server answers fills only its own queue, and every other peer, the one about to say hello included,
keeps its turn. A peer's queue holds at most its fair share of TOTAL (and at most PER_PEER); a peer that
overflows it is muted for MUTE_S: its messages are then dropped as they are read, unanswered and
undecoded, so that a flood costs the server little more than reading it. The memory a flood can take
is TOTAL messages of at most the wire's message limit.
"""

from __future__ import annotations

import collections
from typing import Any

PER_PEER = 128  # a peer's messages waiting at once (a request-reply client has one; a fuzzer a few dozen)
TOTAL = 1024
MIN_SHARE = 8  # the fair share never drops below this many messages
MUTE_S = 1.0
MAX_MUTED = 1024  # peers remembered as muted (the oldest are forgotten first)


class Inbox:
    def __init__(self, per_peer: int = PER_PEER, total: int = TOTAL, mute_s: float = MUTE_S) -> None:
        self.per_peer = per_peer
        self.total = total
        self.mute_s = mute_s
        self._queues: collections.OrderedDict[bytes, collections.deque[Any]] = collections.OrderedDict()
        self._muted: collections.OrderedDict[bytes, float] = collections.OrderedDict()  # peer -> until
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, peer: bytes) -> bool:
        return peer in self._queues

    def muted(self, peer: bytes, now: float) -> bool:
        until = self._muted.get(peer)
        if until is None:
            return False
        if now < until:
            return True
        del self._muted[peer]
        return False

    def put(self, peer: bytes, item: Any, now: float) -> bool:
        """Queue ``item`` behind the peer's earlier ones; False when it is dropped instead: the inbox is full,
        or the peer's queue holds its share already (the peer is then muted)."""
        queue = self._queues.get(peer)
        if queue is not None and len(queue) >= min(self.per_peer, max(MIN_SHARE, self.total // len(self._queues))):
            self._muted[peer] = now + self.mute_s
            self._muted.move_to_end(peer)
            if len(self._muted) > MAX_MUTED:
                self._muted.popitem(last=False)
            return False
        if self._size >= self.total:
            return False
        if queue is None:
            queue = self._queues[peer] = collections.deque()
        queue.append(item)
        self._size += 1
        return True

    def pop(self) -> Any:
        """The next peer's oldest message (round-robin over peers); the inbox must not be empty."""
        peer, queue = next(iter(self._queues.items()))
        item = queue.popleft()
        self._size -= 1
        if queue:
            self._queues.move_to_end(peer)
        else:
            del self._queues[peer]
        return item
