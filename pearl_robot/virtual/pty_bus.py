"""What every virtual servo bus shares, whatever protocol its servos speak: a pseudo-terminal that a
client opens like a USB serial adapter, the thread that serves it, the plant behind the servos, the
faults, the operator's hand, and the timing of a real bus.

A protocol's bus (``VirtualServoBus`` for Dynamixel, ``VirtualFeetechBus`` for Feetech) subclasses
``PtyServoBus`` and supplies the codec: how bytes become packets (``_parse``), which of them are
instructions (``_accept``), what the servos answer (``_dispatch``) and how an answer is framed
(``_status_packet``). The rest is here:

- One thread serves the pty; the plant runs its own. The replies to one instruction go out in one
  write, in the order the instruction named the ids, after the sum of the answering servos' Return
  Delay Times (each servo waits for the one before it) plus any injected latency.
- ``UsbAdapter``: replies reach the host as through an FTDI/U2D2/CH340 adapter with a latency timer
  (``adapter_latency_s``; 16 ms is the FTDI factory setting): whole 62-byte chunks at once, the rest
  when the timer expires. The bus keeps receiving meanwhile, so a late reply can overlap the next exchange.
- Baud rates: each servo hears only instructions sent at its own baud rate, read from the speed the
  host set on the port (``host_baud``; a speed that cannot be read counts as matching).
- ``pace_wire_time``: the pty moves bytes at once, a bus does not. Paced, every instruction takes its
  bytes' wire time at the servos' baud rate (10 bits per byte, 8N1) before the servos act on it, a
  reply goes to the host once its bytes would have crossed the wire too (after the Return Delay
  Times), and the wire carries one thing at a time. Off by default: it changes only when things
  happen, not what.
- ``realtime``: the serving thread and the physics thread ask for SCHED_FIFO priority (where
  permitted). A servo's microcontroller is not time-shared with anything, nor is the world it moves in;
  on a loaded host the stand-in should not be either, or its own scheduling delays count against the
  client (a fast loop's benchmark). Off by default.
- Faults (``BusFaults``) can be changed while it runs: reply latency, lost replies (drop), damaged
  replies (the last byte, the CRC or checksum, flipped), scheduled hardware errors, a vanishing device.
- ``hand`` is the operator's hand on the arm (``hand.hold(joint_index, true_position_rad)``);
  ``observe(name)`` is what a person watching the arm sees (e.g. its LEDs).
"""

from __future__ import annotations

import array
import collections
import contextlib
import errno
import fcntl
import os
import random
import re
import select
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol, Self

import numpy as np

from pearl_robot.control.realtime import set_realtime_priority
from pearl_robot.errors import ConfigError
from pearl_robot.virtual.faults import BusFaults, ScheduledHardwareError
from pearl_robot.virtual.plant import Hand, IdealPlant, MujocoPlant, Plant

SERVING_PRIORITY, PHYSICS_PRIORITY = 50, 49  # ``realtime``: SCHED_FIFO priorities of the two threads
COMMON_STAT_NAMES = (  # what every bus counts (``PtyServoBus.stat_names``: a protocol's own come after)
    "instructions",  # instruction packets received intact
    "replies",  # status packets sent (a FAST SYNC READ's combined packet: one per servo in it)
    "replies_dropped",  # status packets withheld by the drop fault (the same count)
    "replies_corrupted",  # status packets sent with a damaged CRC or checksum
    "crc_errors_received",  # instruction packets with a bad CRC or checksum
    "malformed_received",  # bad headers, lying lengths, parameters that do not parse
    "wrong_baud",  # intact instructions that no servo heard: none listens at the host's speed
    "write_overflows",  # replies the client never read (pty buffer full)
)
POLL_S = 0.05  # longest wait of the serving thread when nothing is due
USB_CHUNK_BYTES = 62  # payload of a 64-byte full-speed USB packet (an FTDI chip uses 2 for modem status)
BITS_PER_BYTE = 10  # 8N1: a start bit, 8 data bits, a stop bit
_TCGETS2 = 0x802C542A  # Linux ioctl: struct termios2, whose c_ospeed holds any speed (also BOTHER ones)
_TERMIOS_SPEEDS = {getattr(termios, name): int(name[1:]) for name in dir(termios) if re.fullmatch(r"B[1-9]\d*", name)}


class BusServo(Protocol):
    """What the shared bus needs of a virtual servo (``VirtualServo``, ``VirtualFeetechServo``)."""

    joint_index: int

    @property
    def id(self) -> int: ...

    @property
    def baud_bps(self) -> int: ...

    @property
    def return_delay_s(self) -> float: ...

    def get(self, name: str) -> int: ...

    def raise_hardware_error(self, bits: int) -> None: ...

    def heard(self, now: float) -> None:
        """An instruction packet for this servo (its id or broadcast) arrived at ``now``."""
        ...


class Reply(NamedTuple):
    servo: Any  # the answering servo (a BusServo)
    id: int  # the id the status packet carries
    error: int
    params: bytes


class UsbAdapter:
    """The host side of a USB-serial adapter (FTDI, U2D2): bytes from the servos wait in its buffer
    until 62 of them fill a USB packet (those go at once) or until ``latency_s`` after the last byte
    came in (the latency timer; 0: no buffering). Only the serving thread uses it."""

    def __init__(self, latency_s: float = 0.0) -> None:
        if not 0.0 <= latency_s < float("inf"):
            raise ValueError(f"adapter latency must be a finite number of seconds >= 0, got {latency_s}")
        self.latency_s = latency_s
        self.release_at: float | None = None  # when the buffered tail goes to the host
        self._buffer = bytearray()

    def receive(self, data: bytes, now: float) -> bytes:
        """Take bytes from the servos; return what goes to the host now."""
        self._buffer += data
        keep = len(self._buffer) % USB_CHUNK_BYTES if self.latency_s > 0 else 0
        out = bytes(self._buffer[: len(self._buffer) - keep])
        del self._buffer[: len(out)]
        self.release_at = now + self.latency_s if self._buffer else None
        return out

    def due(self, now: float) -> bytes:
        """The buffered tail once its latency timer has expired, else nothing."""
        if self.release_at is None or now < self.release_at:
            return b""
        out = bytes(self._buffer)
        self._buffer.clear()
        self.release_at = None
        return out


def host_baud(fd: int, buffer: array.array | None = None) -> int | None:
    """The speed the host set on the pty (a master reports its slave's settings); None if unknown.
    ``buffer``: an ``array("I", [0] * 11)`` to reuse (struct termios2: 44 bytes, c_ospeed last)."""
    with contextlib.suppress(OSError):
        settings = array.array("I", [0] * 11) if buffer is None else buffer
        fcntl.ioctl(fd, _TCGETS2, settings)
        if settings[10]:
            return int(settings[10])
    with contextlib.suppress(termios.error):
        return _TERMIOS_SPEEDS.get(termios.tcgetattr(fd)[5])
    return None


def baud_code(bps: int, codes: dict[int, int], family: str) -> int:
    """The baud rate register value for ``bps`` in ``codes`` (bps -> value); ValueError naming the
    speeds ``family`` servos have otherwise."""
    try:
        return codes[bps]
    except KeyError:
        known = ", ".join(str(b) for b in codes)
        raise ValueError(f"{bps} bps is not a {family} baud rate (known: {known})") from None


class PtyServoBus:
    """A chain of virtual servos behind a pty; subclasses supply the protocol (see the module docstring)."""

    broadcast_id = 0xFE
    thread_name = "virtual-bus"
    stat_names: tuple[str, ...] = COMMON_STAT_NAMES
    malformed_errors: tuple[type[Exception], ...] = (ValueError,)  # what ``_dispatch`` raises for bad parameters

    def __init__(
        self,
        servos: Sequence[BusServo],
        plant: Plant,
        *,
        faults: BusFaults | None = None,
        adapter_latency_s: float = 0.0,
        pace_wire_time: bool = False,
        realtime: bool = False,
        link: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.servos = list(servos)
        self.pace_wire_time = pace_wire_time
        self.realtime = realtime
        self.realtime_granted = False  # set by the serving thread when it got SCHED_FIFO
        self._wire_free_at = 0.0  # paced: when the wire is free again (the last instruction or reply on it)
        self._termios = array.array("I", [0] * 11)
        self.plant = plant
        self.hand = Hand(plant, max((s.joint_index for s in self.servos), default=-1) + 1)
        self.faults = (faults or BusFaults()).validate()
        self.adapter = UsbAdapter(adapter_latency_s)
        self.link = Path(link) if link is not None else None
        self.clock = clock
        self.stats: collections.Counter[str] = collections.Counter({k: 0 for k in self.stat_names})
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.RLock()
        self._parser = self.parser_class()
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._vanish_requested = threading.Event()
        self.vanished = threading.Event()
        self.device_path: str | None = None
        self._started_at = 0.0
        self._scheduled: list[ScheduledHardwareError] = []

    # ---- construction from a hardware YAML ------------------------------------------------------
    @classmethod
    def from_spec(
        cls,
        spec,
        *,
        physics: bool = True,
        dynamics=None,
        initial_position_rad: Sequence[float] | None = None,
        hidden_offsets_ticks: Sequence[int] | None = None,
        hidden_directions: Sequence[int] | None = None,
        sensor_noise_ticks: float = 0.0,
        return_delay_time: int | None = None,
        servo_baud_rates: Sequence[int] | None = None,
        adapter_latency_ms: float = 0.0,
        faults: BusFaults | None = None,
        link: str | os.PathLike[str] | None = None,
        pace_wire_time: bool = False,
        realtime: bool = False,
        **model_options: object,
    ) -> Self:
        """The servos of ``spec`` (ids and models from the YAML). ``physics=False`` uses an
        ``IdealPlant``; the joints start at ``initial_position_rad`` (default: home). ``hidden_*`` are per
        joint (default 0 ticks, direction 1); ``sensor_noise_ticks`` is the std of Gaussian encoder noise;
        ``return_delay_time`` (2 us units) overrides the factory value in every servo, as if configured
        before. Every servo listens at the spec's bus baud rate, or at ``servo_baud_rates`` (bps, per
        joint). ``adapter_latency_ms``: see ``UsbAdapter``; ``pace_wire_time``, ``realtime``: see the module
        docstring.
        ``model_options``: what only this protocol's servos have (``_configure``). An unknown model or
        baud rate in the spec is a ``ConfigError``."""
        n = spec.num_joints
        tables = [cls._model_table(spec, i, joint.model) for i, joint in enumerate(spec.joints)]
        bauds = cls._baud_registers(spec, servo_baud_rates)
        offsets = list(hidden_offsets_ticks) if hidden_offsets_ticks is not None else [0] * n
        directions = list(hidden_directions) if hidden_directions is not None else [1] * n
        if len(offsets) != n or len(directions) != n:
            raise ValueError(f"hidden offsets/directions need one value per joint ({n})")
        start = spec.home_rad if initial_position_rad is None else np.asarray(initial_position_rad, float)
        plant: Plant = MujocoPlant(spec, dynamics, start) if physics else IdealPlant(start)
        servos = []
        for i, joint in enumerate(spec.joints):
            servo = cls.servo_class(
                tables[i],
                joint.servo_id,
                plant,
                i,
                hidden_offset_ticks=offsets[i],
                hidden_direction=directions[i],
                sensor_noise_ticks=sensor_noise_ticks,
                noise_seed=i,
            )
            servo.set("baud_rate", bauds[i])
            if return_delay_time is not None:
                servo.set("return_delay_time", return_delay_time)
            cls._configure(servo, **model_options)
            servos.append(servo)
        return cls(
            servos,
            plant,
            faults=faults,
            adapter_latency_s=adapter_latency_ms / 1000.0,
            pace_wire_time=pace_wire_time,
            realtime=realtime,
            link=link,
        )

    @classmethod
    def _model_table(cls, spec, index: int, model: str) -> Any:
        try:
            return cls.control_table(model)
        except KeyError as exc:
            raise ConfigError(spec.source, f"joints[{index}].model", str(exc.args[0])) from None

    @classmethod
    def _baud_registers(cls, spec, servo_baud_rates: Sequence[int] | None) -> list[int]:
        n = spec.num_joints
        if servo_baud_rates is None:
            try:
                return [cls.baud_register(spec.bus.baudrate)] * n
            except ValueError as exc:
                raise ConfigError(spec.source, "bus.baudrate", str(exc)) from None
        if len(servo_baud_rates) != n:
            raise ValueError(f"servo_baud_rates needs one value per joint ({n})")
        return [cls.baud_register(bps) for bps in servo_baud_rates]

    # ---- the protocol (subclasses) --------------------------------------------------------------------
    servo_class: Callable[..., Any]  # the servo type: (table, id, plant, joint index, *, hidden_..., noise...)
    parser_class: Callable[[], Any]  # the receiving side of the codec, fed by ``_parse``
    model_options: tuple[str, ...] = ()  # the ``from_spec`` options ``_configure`` takes

    @staticmethod
    def control_table(model: str) -> Any:
        """The control table of a model name as the YAML spells it; KeyError listing the known ones."""
        raise NotImplementedError

    @staticmethod
    def baud_register(bps: int) -> int:
        """The baud rate register value for ``bps``; ValueError for a speed the servos do not have."""
        raise NotImplementedError

    @classmethod
    def _configure(cls, servo: Any) -> None:
        """Set what ``from_spec``'s ``model_options`` ask of a new servo."""

    def _parse(self, data: bytes) -> Iterator[Any]:
        """The packets and rejected frames that ``data`` completes, in order."""
        raise NotImplementedError

    def _accept(self, item: Any, servos: dict[int, Any]) -> Any | None:
        """The instruction packet in ``item``, or None after counting (and answering) anything else."""
        raise NotImplementedError

    def _target_id(self, packet: Any) -> int:
        raise NotImplementedError

    def _wire_size(self, packet: Any) -> int:
        """How many bytes the instruction took on the wire."""
        raise NotImplementedError

    def _dispatch(self, packet: Any, servos: dict[int, Any]) -> tuple[list[Reply], list[Callable[[], None]], Any]:
        """The replies, what to do after sending them, and how to frame them (``_encode_replies``)."""
        raise NotImplementedError

    def _status_packet(self, reply: Reply) -> bytes:
        raise NotImplementedError

    def _scheduled_bits(self, event: ScheduledHardwareError) -> int:
        """The error bits a scheduled hardware error sets on this protocol's servos."""
        return event.bits

    def _servo_deadlines(self) -> list[float | None]:
        """When the servos' own timers (a bus watchdog, an overload protection) are due next."""
        return []

    def _check_servos(self, now: float) -> None:
        """Run the servos' timers that are due (called on every turn of the serving loop)."""

    # ---- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> Self:
        if self._thread is not None:
            return self
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing, no CR/LF translation: a byte pipe
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.device_path = os.ttyname(slave)
        self._wake_r, self._wake_w = os.pipe()
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                if self.link.is_symlink():
                    self.link.unlink()
            self.link.symlink_to(self.device_path)
        self._started_at = self.clock()
        self._scheduled = sorted(self.faults.hardware_errors, key=lambda e: e.after_s)
        self._apply_scheduled_faults()
        self.plant.start(PHYSICS_PRIORITY if self.realtime else None)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the pty, remove the link, stop the physics. Idempotent."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._close_device()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1
        self.plant.stop()

    def vanish(self, timeout_s: float = 2.0) -> None:
        """The device disappears as if unplugged: the pty closes under any client that has it open."""
        self._vanish_requested.set()
        self._wake()
        self.vanished.wait(timeout_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def address(self) -> str:
        """What ``open_robot`` takes: ``serial:`` + the device (the link when there is one)."""
        return f"serial:{self.link if self.link is not None else self.device_path}"

    # ---- live controls ------------------------------------------------------------------------------
    def servo(self, servo_id: int) -> Any:
        with self._lock:
            for s in self.servos:
                if s.id == servo_id:
                    return s
        raise KeyError(f"no servo with id {servo_id} on this bus")

    def observe(self, name: str) -> np.ndarray:
        """Control-table item ``name`` of every servo, by joint index, read between two instructions (a
        SYNC WRITE is seen whole): what someone watching the arm sees, e.g. its LEDs."""
        with self._lock:
            values = np.zeros(self.hand.num_joints, dtype=int)
            for s in self.servos:
                values[s.joint_index] = s.get(name)
            return values

    def inject_hardware_error(self, servo_id: int, bits: int) -> None:
        with self._lock:
            self.servo(servo_id).raise_hardware_error(bits)

    def set_faults(self, **changes: object) -> None:
        """Change faults while serving, e.g. ``set_faults(drop_rate=0.1)``."""
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self.faults, key):
                    raise AttributeError(f"BusFaults has no field '{key}'")
                setattr(self.faults, key, value)
            self.faults.validate()

    # ---- the serving thread -------------------------------------------------------------------------
    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _serve(self) -> None:
        master = self._master
        if self.realtime:
            self.realtime_granted = set_realtime_priority(SERVING_PRIORITY)
        try:
            while not self._stop.is_set():
                if self._vanish_requested.is_set() or self._vanish_due():
                    self._close_device()
                    return
                self._apply_scheduled_faults()
                ready, _, _ = select.select([master, self._wake_r], [], [], self._wait_s())
                if self._wake_r in ready:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                if master in ready:  # first: bytes waiting in the pty came before a deadline that just passed
                    self._receive(master)
                self._run_timers()
        finally:
            if self._vanish_requested.is_set() or self._vanish_due():
                self._close_device()

    def _wait_s(self) -> float:
        """How long the serving thread may wait: until the next servo timer or adapter deadline."""
        deadlines = self._servo_deadlines()
        deadlines.append(self.adapter.release_at)
        due = min((d for d in deadlines if d is not None), default=None)
        return POLL_S if due is None else min(POLL_S, max(0.0, due - self.clock()))

    def _run_timers(self) -> None:
        with self._lock:
            now = self.clock()
            self._check_servos(now)
            self._deliver(self.adapter.due(now))

    def _receive(self, master: int) -> None:
        try:
            data = os.read(master, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # no client side open: wait for one
                time.sleep(min(0.01, self._wait_s()))
                return
            raise
        speed = host_baud(master, self._termios)
        for item in self._parse(data):
            if self._stop.is_set():
                break
            self._handle(item, speed)

    def _vanish_due(self) -> bool:
        after = self.faults.vanish_after_s
        return after is not None and self.clock() - self._started_at >= after

    def _close_device(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        if self.link is not None and self.device_path is not None:
            with contextlib.suppress(OSError):
                if self.link.is_symlink() and os.readlink(self.link) == self.device_path:
                    self.link.unlink()
        if self._vanish_requested.is_set() or self._vanish_due():
            self.vanished.set()

    def _apply_scheduled_faults(self) -> None:
        elapsed = self.clock() - self._started_at
        while self._scheduled and self._scheduled[0].after_s <= elapsed:
            event = self._scheduled.pop(0)
            with contextlib.suppress(KeyError):
                self.inject_hardware_error(event.servo_id, self._scheduled_bits(event))

    # ---- dispatch -------------------------------------------------------------------------------------
    def _listening(self, speed: int | None) -> dict[int, Any]:
        """The servos that hear bytes sent at ``speed`` (None: unknown, all of them), by id."""
        return {s.id: s for s in self.servos if speed is None or s.baud_bps == speed}

    def _instruction_on_wire(self, size: int, servos: dict[int, Any], now: float) -> float:
        """When an instruction of ``size`` bytes has crossed the wire (paced: after whatever was on it;
        else ``now``)."""
        if not self.pace_wire_time or not servos:
            return now
        bps = next(iter(servos.values())).baud_bps
        start = max(now, self._wire_free_at)
        self._wire_free_at = done = start + size * float(BITS_PER_BYTE) / bps
        return done

    def _handle(self, item: Any, speed: int | None) -> None:
        with self._lock:
            servos = self._listening(speed)
            packet = self._accept(item, servos)
            if packet is None:
                return
            self.stats["instructions"] += 1
            if not servos and self.servos:
                self.stats["wrong_baud"] += 1
            now = self.clock()
            target = self._target_id(packet)
            if target == self.broadcast_id:
                for servo in servos.values():
                    servo.heard(now)
            elif target in servos:
                servos[target].heard(now)
            arrived = self._instruction_on_wire(self._wire_size(packet), servos, now)
            try:
                replies, after, framing = self._dispatch(packet, servos)
            except self.malformed_errors:
                self.stats["malformed_received"] += 1
                return
            self._send(replies, arrived, framing)
            for action in after:
                action()

    def _encode_replies(self, replies: list[Reply], framing: Any) -> bytes:
        """One status packet per reply, each lost or damaged as the faults draw."""
        faults, rng, stats = self.faults, self._rng, self.stats
        out = bytearray()
        for reply in replies:
            if faults.drop_rate and rng.random() < faults.drop_rate:
                stats["replies_dropped"] += 1
                continue
            packet = self._status_packet(reply)
            if faults.corrupt_rate and rng.random() < faults.corrupt_rate:
                packet = packet[:-1] + bytes((packet[-1] ^ rng.randint(1, 255),))
                stats["replies_corrupted"] += 1
            out += packet
            stats["replies"] += 1
        return bytes(out)

    def _send(self, replies: list[Reply], arrived: float | None = None, framing: Any = None) -> None:
        """Send the replies to an instruction that was on the wire until ``arrived`` (default: now)."""
        if not replies:
            return
        delay = self.faults.reply_latency_s
        for reply in replies:
            delay += reply.servo.return_delay_s
        out = self._encode_replies(replies, framing)
        if self.pace_wire_time:
            start = max(self._wire_free_at, (arrived or self.clock()) + delay)
            self._wire_free_at = due = start + len(out) * float(BITS_PER_BYTE) / replies[0].servo.baud_bps
            delay = due - self.clock()
        elif arrived is not None:
            delay -= self.clock() - arrived
        if delay > 0:
            self._stop.wait(delay)
        if out:
            self._deliver(self.adapter.receive(out, self.clock()))

    def _deliver(self, data: bytes) -> None:
        """Write to the host's side of the pty what the adapter hands over."""
        view = memoryview(data)
        while view and self._master is not None:
            try:
                n = os.write(self._master, view)
                view = view[n:]
            except BlockingIOError:
                _, writable, _ = select.select([], [self._master], [], 0.1)
                if not writable:
                    self.stats["write_overflows"] += 1
                    return
            except OSError:
                self.stats["write_overflows"] += 1
                return
