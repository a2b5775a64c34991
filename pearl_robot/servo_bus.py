"""The protocol-neutral half of a servo bus client, shared by the Dynamixel (``pearl_robot.dynamixel.bus``)
and Feetech (``pearl_robot.feetech.bus``) clients: the serial transport, wire time, the errors, and the
exchange machinery neither protocol changes (deadlines, replies still owed by a timed-out exchange,
retries that ask only the missing ids, the latency measurement).

Neither protocol numbers its replies, so both clients follow one rule: a reply answers an instruction
only if it came after that instruction went out and before its deadline. An exchange that ends with
replies owed makes the next instruction wait for them (``_settle``, bounded) and discard them as late;
a late reply widens the deadlines (up to ``MAX_TRANSPORT_LATENCY_S``). A subclass brings its codec:
``_exchange`` (one attempt), ``_discard_packets`` (what arrived late), ``ping`` and ``_ping_wire_bytes``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pearl_robot.errors import PearlRobotError, RobotFault


class BusError(PearlRobotError):
    """Base class of the bus errors (``DynamixelError`` in ``pearl_robot.dynamixel.bus``)."""


class CommError(RobotFault, BusError):
    """No valid status packet within the retry budget. ``partial``: the replies that did arrive;
    ``late_replies``: status packets that came after a deadline during the call; ``lateness_s``: how
    late the latest of them was (after its instruction was sent), when measured."""

    def __init__(
        self,
        message: str,
        missing_ids: Sequence[int] = (),
        *,
        partial: Mapping[int, Any] | None = None,
        late_replies: int = 0,
        lateness_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.missing_ids = tuple(missing_ids)
        self.partial = dict(partial or {})
        self.late_replies = late_replies
        self.lateness_s = lateness_s


class PortError(RobotFault, BusError):
    """The serial device failed or went away."""


# ---- transports ---------------------------------------------------------------------------------
class Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    def read_some(self, timeout_s: float) -> bytes:
        """Whatever bytes arrive within ``timeout_s`` (b"" if none); PortError if the port failed."""
        ...

    def discard_input(self) -> None: ...

    def close(self) -> None: ...


class SerialTransport:
    """pyserial opens and configures the device (raw mode, baud rate, exclusive lock); reads wait in
    ``select`` on its descriptor so that a deadline never needs a termios reconfiguration."""

    def __init__(self, device: str, baudrate: int, *, exclusive: bool = True) -> None:
        import serial

        self.device = device
        self._serial_error = serial.SerialException
        try:
            self.port = serial.Serial(device, baudrate, timeout=0, write_timeout=1.0, exclusive=exclusive)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortError(f"cannot open serial device {device}: {exc}") from None
        self._fd = self.port.fileno()

    def write(self, data: bytes, timeout_s: float = 1.0) -> None:
        """All of ``data`` (pyserial opened the descriptor non-blocking), within ``timeout_s``."""
        view = memoryview(data)
        deadline = None
        try:
            while view:
                try:
                    view = view[os.write(self._fd, view) :]
                except BlockingIOError:
                    now = time.monotonic()
                    deadline = deadline or now + timeout_s
                    _, ready, _ = select.select([], [self._fd], [], max(0.0, deadline - now))
                    if not ready:
                        raise PortError(f"serial device {self.device}: write timed out") from None
        except (OSError, ValueError) as exc:
            raise PortError(f"serial device {self.device} failed on write: {exc}") from None

    def read_some(self, timeout_s: float) -> bytes:
        try:
            ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout_s))
            if not ready:
                return b""
            data = os.read(self._fd, 4096)
        except (OSError, ValueError) as exc:
            raise PortError(f"serial device {self.device} failed on read: {exc}") from None
        if not data:  # readable but empty: the device is gone
            raise PortError(f"serial device {self.device} disconnected")
        return data

    def discard_input(self) -> None:
        try:
            self.port.reset_input_buffer()
        except (self._serial_error, OSError) as exc:
            raise PortError(f"serial device {self.device} failed: {exc}") from None

    def close(self) -> None:
        with contextlib.suppress(self._serial_error, OSError):
            self.port.close()


# ---- timing ----------------------------------------------------------------------------------------
def wire_time_s(n_bytes: int, baudrate: int) -> float:
    """Time ``n_bytes`` take on the wire: 8N1 framing is 10 bits per byte."""
    return n_bytes * 10.0 / baudrate


def transaction_timeout_s(
    tx_bytes: int,
    rx_bytes: int,
    replies: int,
    *,
    baudrate: int,
    latency_timer_s: float,
    return_delay_s: float,
    margin_s: float,
) -> float:
    """The DynamixelSDK's rule (twice the adapter's latency timer) with the Return Delay Times added."""
    return wire_time_s(tx_bytes + rx_bytes, baudrate) + replies * return_delay_s + 2.0 * latency_timer_s + margin_s


@dataclass(frozen=True)
class LatencyMeasurement:
    """Round trips of pings at connect: what the transport adds beyond wire time and return delay."""

    samples: int
    round_trip_s: tuple[float, ...]
    lateness_s: tuple[float, ...]  # round trip - wire time - return delay, per sample

    @property
    def lateness_max_s(self) -> float:
        return max(self.lateness_s, default=0.0)


# How long after a timed-out instruction its answer is still waited for before another goes out
# (at least; twice the instruction's own timeout where that is longer): a stock adapter's 16 ms
# latency timer, twice over, with room to spare.
LATE_WINDOW_S = 0.040
# The widest transport latency the deadlines grow to on their own after late replies.
MAX_TRANSPORT_LATENCY_S = 0.100

# one attempt of an exchange: (packet, the ids it asks, settle first?) -> (replies by id, status packets that answered)
Exchange = Callable[[bytes, Sequence[int], bool], tuple[dict[int, Any], int]]


class ServoBusBase:
    """Thread-safe; one exchange at a time. ``stats`` counts everything that went wrong (the names in
    the subclass's ``STAT_NAMES``)."""

    STAT_NAMES: tuple[str, ...] = ()
    QUIET_STATS: tuple[str, ...] = ("transactions", "replies", "retries")  # not problems, in a CommError

    def __init__(
        self,
        transport: Transport,
        parser: Any,
        *,
        baudrate: int,
        latency_timer_ms: float,
        return_delay_us: float,
        timeout_margin_ms: float,
        retries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.transport = transport
        self.baudrate = baudrate
        self.latency_timer_s = latency_timer_ms * 1e-3
        # what the transport adds to a round trip; measure_latency() replaces the assumption
        self.transport_latency_s = 2.0 * self.latency_timer_s
        self.latency: LatencyMeasurement | None = None
        self.return_delay_s = return_delay_us * 1e-6  # what the servos are believed to use
        self.margin_s = timeout_margin_ms * 1e-3
        self.retries = retries
        self.clock = clock
        self.stats: collections.Counter[str] = collections.Counter({k: 0 for k in self.STAT_NAMES})
        self.last_sent_at: float | None = None
        self.transaction_sent_at: float | None = None  # when the first attempt of the last call was written
        self.last_reply_at: float | None = None
        self.last_lateness_s: float | None = None  # how late the latest late reply was, after its send
        self._parser = parser
        self._lock = threading.RLock()
        # Replies still owed by the last exchange: (how many, when its last instruction went out, the
        # time until which they are waited for before another instruction goes out).
        self._owed = 0
        self._owed_sent_at: float | None = None
        self._owed_until = 0.0

    @classmethod
    def open(cls, device: str, baudrate: int = 1_000_000, **options: Any) -> Any:
        return cls(SerialTransport(device, baudrate), baudrate=baudrate, **options)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def garbage_bytes(self) -> int:
        return self._parser.garbage_bytes

    def timeout_s(self, tx_bytes: int, rx_bytes: int, replies: int) -> float:
        return (
            wire_time_s(tx_bytes + rx_bytes, self.baudrate)
            + replies * self.return_delay_s
            + self.transport_latency_s
            + self.margin_s
        )

    # ---- what arrived before we asked ----------------------------------------------------------
    def _settle(self) -> None:
        """Make sure nothing that answers an earlier instruction is left to be read: wait for replies
        still owed (bounded), then discard whatever is queued, counting status packets as late."""
        if self._owed:
            while self._owed > 0 and (remaining := self._owed_until - self.clock()) > 0:
                self._discard_packets(self.transport.read_some(remaining), self._owed_sent_at)
            self._owed = 0
        for _ in range(64):  # bounded: a device that streams garbage cannot hold us here
            data = self.transport.read_some(0.0)
            if not data:
                break
            self._discard_packets(data, self._owed_sent_at)
        self._forget_partial()

    def _discard_packets(self, data: bytes, sent_at: float | None) -> None:
        """Parse ``data`` that answers nothing asked now: count each status packet with ``_late``."""
        raise NotImplementedError

    def _forget_partial(self) -> None:
        """Drop a frame left unfinished in the parser (nothing will complete it now)."""
        self._parser.clear()

    def _late(self, now: float, sent_at: float | None) -> None:
        """A status packet came after its deadline: count it and widen the deadlines to cover it."""
        self.stats["late_replies"] += 1
        self._owed -= 1
        if sent_at is not None:
            self.last_lateness_s = late = now - sent_at
            self._widen(late)

    def _widen(self, lateness_s: float) -> None:
        """A reply came later than the deadlines allow: widen them to cover it (up to a bound), so a
        transport slower than measured costs one stale read, not one every cycle."""
        wanted = min(MAX_TRANSPORT_LATENCY_S, 1.5 * lateness_s)
        if wanted > self.transport_latency_s:
            self.transport_latency_s = wanted
            self.stats["deadlines_widened"] += 1

    # ---- one exchange ----------------------------------------------------------------------------
    def _send(self, packet: bytes, settle: bool) -> float:
        """Write an instruction (after ``_settle`` when it is a new one, not a retry); when it went out."""
        if settle:
            self._settle()
        writing = self.clock()
        self.transport.write(packet)
        self.last_sent_at = sent_at = self.clock()
        if settle:
            # the earliest the servos can have heard it: a write can be preempted (the device process
            # it wakes may run first), and a reply sampled during that time is an answer to it
            self.transaction_sent_at = writing
        self.stats["transactions"] += 1
        return sent_at

    def _owe(self, packets: int, sent_at: float, timeout: float) -> None:
        """Status packets that may still come: owed until twice the exchange's timeout (at least
        LATE_WINDOW_S) after the send."""
        self._owed += packets
        self._owed_sent_at = sent_at
        self._owed_until = sent_at + max(2.0 * timeout, LATE_WINDOW_S)

    def _send_only(self, packet: bytes) -> None:
        """An instruction no device answers (broadcast writes, SYNC/BULK WRITE)."""
        with self._lock:
            self.transport.write(packet)
            self.stats["transactions"] += 1

    def _retrying(
        self,
        build: Callable[[Sequence[int]], bytes],
        ids: Sequence[int],
        exchange: Exchange,
        what: str,
        retries: int | None,
    ) -> dict[int, Any]:
        """Exchange with retries: each retry asks only the ids still missing (``retries``: this call's
        budget instead of the bus's); past the budget a CommError with what did arrive."""
        budget = self.retries if retries is None else retries
        with self._lock:
            pending = list(ids)
            result: dict[int, Any] = {}
            before = dict(self.stats)
            for attempt in range(budget + 1):
                if attempt:
                    self.stats["retries"] += 1
                # a retry asks the same question again: an answer to the earlier attempt is welcome
                got, answered = exchange(build(pending), pending, attempt == 0)
                if attempt and answered:
                    self._owed = max(0, self._owed - answered)  # one of the owed attempts answered
                if not attempt and len(got) == len(pending):
                    return got
                result.update(got)
                pending = [i for i in pending if i not in got]
                if not pending:
                    return result
            seen = {k: self.stats[k] - before[k] for k in self.STAT_NAMES if k not in self.QUIET_STATS}
            problems = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in seen.items() if v) or "no bytes"
            self.stats["failures"] += 1
            raise CommError(
                f"{what}: no valid status packet from id {', '.join(map(str, pending))} after "
                f"{budget + 1} attempt{'s' if budget else ''} ({problems})",
                pending,
                partial=result,
                late_replies=seen["late_replies"],
                lateness_s=self.last_lateness_s if seen["late_replies"] else None,
            )

    # ---- the transport's latency ---------------------------------------------------------------
    _ping_wire_bytes = 0  # a PING and its status packet, on the wire (the subclass's protocol)

    def ping(self, servo_id: int) -> Any:
        raise NotImplementedError

    def measure_latency(self, ids: Sequence[int], pings: int = 3, *, wait_s: float = 0.1) -> LatencyMeasurement:
        """Ping each id ``pings`` times with a generous deadline (``wait_s``) and set the transport
        latency the deadlines use from what was measured: 1.5 x the largest lateness seen (at least
        0.5 ms). Ids that do not answer are left out; CommError if none does."""
        wire = wire_time_s(self._ping_wire_bytes, self.baudrate)
        saved = self.transport_latency_s, self.retries
        late_before = self.stats["late_replies"]
        trips: list[float] = []
        lateness: list[float] = []
        try:
            self.transport_latency_s, self.retries = wait_s, 0
            for servo_id in ids:
                for _ in range(pings):
                    try:
                        self.ping(servo_id)
                    except CommError:
                        break
                    trip = self.last_reply_at - self.last_sent_at
                    trips.append(trip)
                    lateness.append(max(0.0, trip - wire - self.return_delay_s))
        finally:
            self.transport_latency_s, self.retries = saved
        if not trips:
            with self._lock:
                self._settle()  # a reply later still is a late reply, not silence
            late = self.stats["late_replies"] - late_before
            raise CommError(
                f"no servo of id {', '.join(map(str, ids))} answered a ping within {wait_s * 1e3:.0f} ms",
                ids,
                late_replies=late,
                lateness_s=self.last_lateness_s if late else None,
            )
        self.latency = LatencyMeasurement(len(trips), tuple(trips), tuple(lateness))
        self.transport_latency_s = max(0.5e-3, 1.5 * self.latency.lateness_max_s)
        return self.latency

    def stats_dict(self) -> dict[str, int]:
        out = dict(self.stats)
        out["garbage_bytes"] = self.garbage_bytes
        return out
