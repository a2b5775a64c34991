"""A virtual Dynamixel bus on a pseudo-terminal: a chain of X-series servos that answers real
Protocol 2.0 packets, with the arm's physics behind it.

Any Protocol 2.0 client opens ``device_path`` (or the ``link`` symlink) like a USB serial adapter.
One thread serves the pty; the plant (``MujocoPlant``) runs its own real-time thread. Status packets
of one instruction go out in one write, in the order the instruction named the ids, after the sum
of the answering servos' Return Delay Times (as each servo waits for the one before it) plus any
injected latency. A status packet carries the id the instruction was addressed to (after a WRITE of
a new ID the servo answers at the new id from the next instruction on). A FAST SYNC READ is answered
with one combined status packet (``dynamixel.fast_sync``) when every servo it names is there, answers
reads and has a firmware with it (Firmware Version, 6); otherwise nobody answers it (the chain of
parts cannot complete).

``pace_wire_time``: the pty moves bytes at once, a bus does not. Paced, every instruction takes its
bytes' wire time at the servos' baud rate (10 bits per byte) before the servos act on it, a reply
goes to the host once its bytes would have crossed the wire too (after the Return Delay Times), and
the wire carries one thing at a time (an instruction sent while a reply is on the wire waits for it).
Off by default: it changes only when things happen, not what, and tests and protocol benchmarks
want the host's speed; a scenario about control rates turns it on (``--pace-wire-time``).

Real hardware behind the port:

- ``UsbAdapter``: replies reach the host as through an FTDI/U2D2 adapter with a latency timer
  (``adapter_latency_s``; 16 ms is the factory setting): whole 62-byte chunks at once, the rest when
  the timer expires. The bus keeps receiving meanwhile, so a late reply can overlap the next exchange.
- Baud rates: each servo hears only instructions sent at its own Baud Rate (8), read from the speed
  the host set on the port (a speed that cannot be read counts as matching). A new Baud Rate takes
  effect after its status packet, as on a real servo.
- Bus Watchdog (98): the serving thread never waits past the next watchdog deadline, so a servo
  stops within a few milliseconds of it (typically under one; see ``VirtualServo.check_watchdog``).

A combined FAST SYNC READ packet counts one reply per servo in it (``stats``); the drop fault draws per
servo and loses the whole packet when it hits any part (counting every part dropped), the corrupt fault
damages the CRC of the parts it hits (the servos after one compute theirs over the damaged bytes).

Faults (``BusFaults``) can be changed while it runs. ``hand`` is the operator's hand on the arm
(``hand.hold(joint_index, true_position_rad)``, ``hand.release()``): the calibration procedure moves
joints with torque off, as a person does on the real arm; ``observe("led")`` is what that person sees
(``pearl_robot.virtual.operator`` follows the calibration procedure's LED cues with it).
"""

from __future__ import annotations

import array
import collections
import contextlib
import errno
import fcntl
import os
import random
import select
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pearl_robot.dynamixel import fast_sync
from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.control_table import (
    BAUD_RATES,
    ControlTable,
    control_table,
)
from pearl_robot.dynamixel.protocol import BROADCAST_ID, Instruction, PacketParser, Rejected, ResultCode
from pearl_robot.errors import ConfigError
from pearl_robot.virtual.faults import BusFaults, ScheduledHardwareError
from pearl_robot.virtual.plant import Hand, IdealPlant, MujocoPlant, Plant
from pearl_robot.virtual.servo import VirtualServo

BUS_STAT_NAMES = (
    "instructions",  # instruction packets received intact
    "replies",  # status packets sent (a FAST SYNC READ's combined packet: one per servo in it)
    "replies_dropped",  # status packets withheld by the drop fault (the same count)
    "replies_corrupted",  # status packets sent with a damaged CRC
    "crc_errors_received",  # instruction packets with a bad CRC
    "malformed_received",  # bad headers, lying lengths, parameters that do not parse
    "wrong_baud",  # intact instructions that no servo heard: none listens at the host's speed
    "watchdog_stops",  # servos stopped by their Bus Watchdog
    "write_overflows",  # replies the client never read (pty buffer full)
)

BROADCAST_ONLY = frozenset(
    {
        Instruction.SYNC_READ,
        Instruction.SYNC_WRITE,
        Instruction.FAST_SYNC_READ,
        Instruction.BULK_READ,
        Instruction.BULK_WRITE,
    }
)
POLL_S = 0.05  # longest wait of the serving thread when nothing is due
USB_CHUNK_BYTES = 62  # payload of a 64-byte full-speed USB packet (an FTDI chip uses 2 for modem status)
_TCGETS2 = 0x802C542A  # Linux ioctl: struct termios2, whose c_ospeed holds any speed (also BOTHER ones)
_TERMIOS_SPEEDS = {getattr(termios, f"B{bps}"): bps for bps in BAUD_RATES.values() if hasattr(termios, f"B{bps}")}
_BAUD_REGISTERS = {bps: value for value, bps in BAUD_RATES.items()}


class Reply(NamedTuple):
    servo: VirtualServo
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


def baud_register(bps: int) -> int:
    """The Baud Rate (8) value for ``bps``; ValueError for a speed X-series servos do not have."""
    try:
        return _BAUD_REGISTERS[bps]
    except KeyError:
        known = ", ".join(str(b) for b in BAUD_RATES.values())
        raise ValueError(f"{bps} bps is not a Dynamixel X-series baud rate (known: {known})") from None


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


def _model_table(spec, index: int, model: str) -> ControlTable:
    try:
        return control_table(model)
    except KeyError as exc:
        raise ConfigError(spec.source, f"joints[{index}].model", str(exc.args[0])) from None


def _baud_registers(spec, servo_baud_rates: Sequence[int] | None) -> list[int]:
    n = spec.num_joints
    if servo_baud_rates is None:
        try:
            return [baud_register(spec.bus.baudrate)] * n
        except ValueError as exc:
            raise ConfigError(spec.source, "bus.baudrate", str(exc)) from None
    if len(servo_baud_rates) != n:
        raise ValueError(f"servo_baud_rates needs one value per joint ({n})")
    return [baud_register(bps) for bps in servo_baud_rates]


class VirtualServoBus:
    def __init__(
        self,
        servos: Sequence[VirtualServo],
        plant: Plant,
        *,
        faults: BusFaults | None = None,
        adapter_latency_s: float = 0.0,
        pace_wire_time: bool = False,
        link: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.servos = list(servos)
        self.pace_wire_time = pace_wire_time
        self._wire_free_at = 0.0  # paced: when the wire is free again (the last instruction or reply on it)
        self._termios = array.array("I", [0] * 11)
        self.plant = plant
        self.hand = Hand(plant, max((s.joint_index for s in self.servos), default=-1) + 1)
        self.faults = (faults or BusFaults()).validate()
        self.adapter = UsbAdapter(adapter_latency_s)
        self.link = Path(link) if link is not None else None
        self.clock = clock
        self.stats: collections.Counter[str] = collections.Counter({k: 0 for k in BUS_STAT_NAMES})
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.RLock()
        self._parser = PacketParser()
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
        firmware_version: int | None = None,
        pace_wire_time: bool = False,
    ) -> VirtualServoBus:
        """The servos of ``spec`` (ids and models from the YAML). ``physics=False`` uses an
        ``IdealPlant``. ``hidden_*`` are per joint; ``sensor_noise_ticks`` is the std of Gaussian encoder
        noise; ``return_delay_time`` (2 us units) overrides the factory default of 250 in every servo,
        as if it had been configured before. Every servo listens at the spec's bus baud rate, or at
        ``servo_baud_rates`` (bps, per joint). ``adapter_latency_ms``: see ``UsbAdapter``.
        ``firmware_version``: what every servo reports (default: its model's), e.g. one older than
        FAST SYNC READ. ``pace_wire_time``: see the module docstring.
        An unknown model or baud rate in the spec is a ``ConfigError``."""
        n = spec.num_joints
        tables = [_model_table(spec, i, joint.model) for i, joint in enumerate(spec.joints)]
        bauds = _baud_registers(spec, servo_baud_rates)
        offsets = list(hidden_offsets_ticks) if hidden_offsets_ticks is not None else [0] * n
        directions = list(hidden_directions) if hidden_directions is not None else [1] * n
        if len(offsets) != n or len(directions) != n:
            raise ValueError(f"hidden offsets/directions need one value per joint ({n})")
        start = spec.home_rad if initial_position_rad is None else np.asarray(initial_position_rad, float)
        plant: Plant = MujocoPlant(spec, dynamics, start) if physics else IdealPlant(start)
        servos = []
        for i, joint in enumerate(spec.joints):
            servo = VirtualServo(
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
            if firmware_version is not None:
                servo.set("firmware_version", firmware_version)
            servos.append(servo)
        return cls(
            servos,
            plant,
            faults=faults,
            adapter_latency_s=adapter_latency_ms / 1000.0,
            pace_wire_time=pace_wire_time,
            link=link,
        )

    # ---- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> VirtualServoBus:
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
        self.plant.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="virtual-bus", daemon=True)
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

    def __enter__(self) -> VirtualServoBus:
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
    def servo(self, servo_id: int) -> VirtualServo:
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
        """How long the serving thread may wait: until the next watchdog or adapter deadline."""
        deadlines = [s.watchdog_deadline() for s in self.servos]
        deadlines.append(self.adapter.release_at)
        due = min((d for d in deadlines if d is not None), default=None)
        return POLL_S if due is None else min(POLL_S, max(0.0, due - self.clock()))

    def _run_timers(self) -> None:
        with self._lock:
            now = self.clock()
            self.stats["watchdog_stops"] += sum(s.check_watchdog(now) for s in self.servos)
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
        self._parser.feed(data)
        while (item := self._parser.next()) is not None and not self._stop.is_set():
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
                self.inject_hardware_error(event.servo_id, event.bits)

    # ---- dispatch -------------------------------------------------------------------------------------
    def _listening(self, speed: int | None) -> dict[int, VirtualServo]:
        """The servos that hear bytes sent at ``speed`` (None: unknown, all of them), by id."""
        return {s.id: s for s in self.servos if speed is None or s.baud_bps == speed}

    def _instruction_on_wire(self, item: proto.Packet, servos: dict[int, VirtualServo], now: float) -> float:
        """When the instruction has crossed the wire (paced: after whatever was on it; else ``now``)."""
        if not self.pace_wire_time or not servos:
            return now
        bps = next(iter(servos.values())).baud_bps
        start = max(now, self._wire_free_at)
        self._wire_free_at = done = start + proto.instruction_packet_size(len(item.params)) * 10.0 / bps
        return done

    def _handle(self, item: proto.Packet | Rejected, speed: int | None) -> None:
        with self._lock:
            servos = self._listening(speed)
            if isinstance(item, Rejected):
                if item.reason == "crc":
                    self.stats["crc_errors_received"] += 1
                    servo = servos.get(item.id) if item.id is not None else None
                    if servo is not None:  # the addressed servo says the packet arrived damaged
                        self._send([Reply(servo, servo.id, servo.status_error(ResultCode.CRC_ERROR), b"")])
                else:
                    self.stats["malformed_received"] += 1
                return
            if item.is_status:
                return  # another device's answer (or our own echo): not for us
            self.stats["instructions"] += 1
            if not servos and self.servos:
                self.stats["wrong_baud"] += 1
            now = self.clock()
            if item.id == BROADCAST_ID:
                for servo in servos.values():
                    servo.heard(now)
            elif item.id in servos:
                servos[item.id].heard(now)
            arrived = self._instruction_on_wire(item, servos, now)
            try:
                replies, after, fast_length = self._dispatch(item, servos)
            except proto.ProtocolError:
                self.stats["malformed_received"] += 1
                return
            self._send(replies, arrived, fast_length)
            for action in after:
                action()

    def _dispatch(
        self, packet: proto.Packet, servos: dict[int, VirtualServo]
    ) -> tuple[list[Reply], list[Callable[[], None]], int | None]:
        """The replies, what to do after sending them, and the data length per servo when the replies
        go as one FAST SYNC READ packet (else None)."""
        instruction = packet.instruction
        replies: list[Reply] = []
        after: list[Callable[[], None]] = []
        if packet.id != BROADCAST_ID:
            servo = servos.get(packet.id)
            if servo is None:
                return replies, after, None
            if instruction in BROADCAST_ONLY:
                replies.append(Reply(servo, packet.id, servo.status_error(ResultCode.INSTRUCTION_ERROR), b""))
                return replies, after, None
            if instruction == Instruction.REBOOT:
                replies.append(Reply(servo, packet.id, servo.status_error(), b""))
                after.append(servo.reboot)
                return replies, after, None
            answer = servo.handle(packet, broadcast=False)
            if answer is not None:
                replies.append(Reply(servo, packet.id, *answer))
            return replies, after, None

        if instruction == Instruction.PING:
            for servo in sorted(servos.values(), key=lambda s: s.id):
                answer = servo.handle(packet, broadcast=True)
                if answer is not None:
                    replies.append(Reply(servo, servo.id, *answer))
        elif instruction == Instruction.SYNC_READ:
            address, length, ids = proto.parse_sync_read_params(packet.params)
            replies += self._reads(servos, ((i, address, length) for i in ids))
        elif instruction == Instruction.FAST_SYNC_READ:
            address, length, ids = proto.parse_sync_read_params(packet.params)
            return self._fast_reads(servos, ids, address, length), after, length
        elif instruction == Instruction.BULK_READ:
            replies += self._reads(servos, proto.parse_bulk_read_params(packet.params))
        elif instruction == Instruction.SYNC_WRITE:
            address, _length, records = proto.parse_sync_write_params(packet.params)
            for servo_id, data in records:
                if servo_id in servos:
                    servos[servo_id].write_range(address, data)
        elif instruction == Instruction.BULK_WRITE:
            for servo_id, address, data in proto.parse_bulk_write_params(packet.params):
                if servo_id in servos:
                    servos[servo_id].write_range(address, data)
        elif instruction == Instruction.REBOOT:
            after += [s.reboot for s in servos.values()]
        else:
            for servo in servos.values():
                servo.handle(packet, broadcast=True)
        return replies, after, None

    @staticmethod
    def _reads(servos: dict[int, VirtualServo], requests: Iterable[tuple[int, int, int]]) -> list[Reply]:
        out = []
        for servo_id, address, length in requests:
            servo = servos.get(servo_id)
            if servo is None or servo.get("status_return_level") < 1:
                continue
            result, data = servo.read_range(address, length)
            out.append(Reply(servo, servo_id, servo.status_error(result), data))
        return out

    def _fast_reads(
        self, servos: dict[int, VirtualServo], ids: Iterable[int], address: int, length: int
    ) -> list[Reply]:
        """Every named servo's part of a FAST SYNC READ, or none if one of them cannot answer."""
        out = []
        for servo_id in ids:
            servo = servos.get(servo_id)
            if servo is None or servo.status_return_level < 1 or not servo.has_fast_sync_read:
                return []
            result, data = servo.read_range(address, length)
            out.append(
                Reply(servo, servo_id, servo.status_error(result), data if result == ResultCode.OK else bytes(length))
            )
        return out

    def _send(self, replies: list[Reply], arrived: float | None = None, fast_length: int | None = None) -> None:
        """Send the replies to an instruction that was on the wire until ``arrived`` (default: now):
        one status packet each, or one combined FAST SYNC READ packet."""
        if not replies:
            return
        faults, rng, stats = self.faults, self._rng, self.stats
        delay = faults.reply_latency_s
        out = bytearray()
        if fast_length is None:
            for reply in replies:
                delay += reply.servo.return_delay_s
                if faults.drop_rate and rng.random() < faults.drop_rate:
                    stats["replies_dropped"] += 1
                    continue
                packet = proto.encode_status(reply.id, reply.error, reply.params)
                if faults.corrupt_rate and rng.random() < faults.corrupt_rate:
                    packet = packet[:-1] + bytes((packet[-1] ^ rng.randint(1, 255),))
                    stats["replies_corrupted"] += 1
                out += packet
                stats["replies"] += 1
        else:
            dropped, corrupt = False, []
            for k, reply in enumerate(replies):
                delay += reply.servo.return_delay_s
                if faults.drop_rate and rng.random() < faults.drop_rate:
                    dropped = True
                elif faults.corrupt_rate and rng.random() < faults.corrupt_rate:
                    corrupt.append(k)
            if dropped:  # a part that never came breaks the whole packet
                stats["replies_dropped"] += len(replies)
            else:
                out += fast_sync.encode_status(((r.id, r.error, r.params) for r in replies), corrupt)
                stats["replies_corrupted"] += len(corrupt)
                stats["replies"] += len(replies)
        if self.pace_wire_time:
            start = max(self._wire_free_at, (arrived or self.clock()) + delay)
            self._wire_free_at = due = start + len(out) * 10.0 / replies[0].servo.baud_bps
            delay = due - self.clock()
        elif arrived is not None:
            delay -= self.clock() - arrived
        if delay > 0:
            self._stop.wait(delay)
        if out:
            self._deliver(self.adapter.receive(bytes(out), self.clock()))

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
