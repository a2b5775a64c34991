"""A virtual Dynamixel bus on a pseudo-terminal: a chain of X-series servos that answers real
Protocol 2.0 packets, with the arm's physics behind it.

Any Protocol 2.0 client opens ``device_path`` (or the ``link`` symlink) like a USB serial adapter.
One thread serves the pty; the plant (``MujocoPlant``) runs its own real-time thread. Status packets
of one instruction go out in one write, in the order the instruction named the ids, after the sum
of the answering servos' Return Delay Times (as each servo waits for the one before it) plus any
injected latency. Faults (``BusFaults``) can be changed while it runs. ``hand`` is the operator's
hand on the arm (``hand.hold(joint_index, true_position_rad)``, ``hand.release()``): the calibration
procedure moves joints with torque off, as a person does on the real arm.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import random
import select
import threading
import time
import tty
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from pearl_robot.dynamixel import protocol as proto
from pearl_robot.dynamixel.control_table import SECONDS_PER_RETURN_DELAY_UNIT, control_table
from pearl_robot.dynamixel.protocol import BROADCAST_ID, Instruction, PacketParser, Rejected, ResultCode
from pearl_robot.virtual.faults import BusFaults, ScheduledHardwareError
from pearl_robot.virtual.plant import Hand, IdealPlant, MujocoPlant, Plant
from pearl_robot.virtual.servo import VirtualServo

BUS_STAT_NAMES = (
    "instructions",  # instruction packets received intact
    "replies",  # status packets sent
    "replies_dropped",  # status packets withheld by the drop fault
    "replies_corrupted",  # status packets sent with a damaged CRC
    "crc_errors_received",  # instruction packets with a bad CRC
    "malformed_received",  # bad headers, lying lengths, parameters that do not parse
    "write_overflows",  # replies the client never read (pty buffer full)
)


BROADCAST_ONLY = frozenset(
    {Instruction.SYNC_READ, Instruction.SYNC_WRITE, Instruction.BULK_READ, Instruction.BULK_WRITE}
)


class VirtualServoBus:
    def __init__(
        self,
        servos: Sequence[VirtualServo],
        plant: Plant,
        *,
        faults: BusFaults | None = None,
        link: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.servos = list(servos)
        self.plant = plant
        self.hand = Hand(plant, max((s.joint_index for s in self.servos), default=-1) + 1)
        self.faults = (faults or BusFaults()).validate()
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
        faults: BusFaults | None = None,
        link: str | os.PathLike[str] | None = None,
    ) -> VirtualServoBus:
        """The servos of ``spec`` (ids and models from the YAML). ``physics=False`` uses an
        ``IdealPlant``. ``hidden_*`` are per joint; ``sensor_noise_ticks`` is the std of Gaussian encoder
        noise; ``return_delay_time`` (2 us units) overrides the
        factory default of 250 in every servo, as if it had been configured before."""
        n = spec.num_joints
        start = spec.home_rad if initial_position_rad is None else np.asarray(initial_position_rad, float)
        plant: Plant = MujocoPlant(spec, dynamics, start) if physics else IdealPlant(start)
        offsets = list(hidden_offsets_ticks) if hidden_offsets_ticks is not None else [0] * n
        directions = list(hidden_directions) if hidden_directions is not None else [1] * n
        if len(offsets) != n or len(directions) != n:
            raise ValueError(f"hidden offsets/directions need one value per joint ({n})")
        servos = []
        for i, joint in enumerate(spec.joints):
            servo = VirtualServo(
                control_table(joint.model),
                joint.servo_id,
                plant,
                i,
                hidden_offset_ticks=offsets[i],
                hidden_direction=directions[i],
                sensor_noise_ticks=sensor_noise_ticks,
                noise_seed=i,
            )
            if return_delay_time is not None:
                servo.set("return_delay_time", return_delay_time)
            servos.append(servo)
        return cls(servos, plant, faults=faults, link=link)

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
                ready, _, _ = select.select([master, self._wake_r], [], [], 0.05)
                if self._wake_r in ready:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                if master not in ready:
                    continue
                try:
                    data = os.read(master, 65536)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:  # no client side open: wait for one
                        time.sleep(0.01)
                        continue
                    raise
                self._parser.feed(data)
                while (item := self._parser.next()) is not None and not self._stop.is_set():
                    self._handle(item)
        finally:
            if self._vanish_requested.is_set() or self._vanish_due():
                self._close_device()

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
    def _by_id(self) -> dict[int, VirtualServo]:
        return {s.id: s for s in self.servos}

    def _handle(self, item: proto.Packet | Rejected) -> None:
        with self._lock:
            if isinstance(item, Rejected):
                if item.reason == "crc":
                    self.stats["crc_errors_received"] += 1
                    servo = self._by_id().get(item.id) if item.id is not None else None
                    if servo is not None:  # the addressed servo says the packet arrived damaged
                        self._send([(servo, servo.status_error(ResultCode.CRC_ERROR), b"")])
                else:
                    self.stats["malformed_received"] += 1
                return
            if item.is_status:
                return  # another device's answer (or our own echo): not for us
            self.stats["instructions"] += 1
            try:
                replies, after = self._dispatch(item)
            except proto.ProtocolError:
                self.stats["malformed_received"] += 1
                return
            self._send(replies)
            for action in after:
                action()

    def _dispatch(self, packet: proto.Packet) -> tuple[list[tuple[VirtualServo, int, bytes]], list[Callable[[], None]]]:
        servos = self._by_id()
        instruction = packet.instruction
        replies: list[tuple[VirtualServo, int, bytes]] = []
        after: list[Callable[[], None]] = []
        if packet.id != BROADCAST_ID:
            servo = servos.get(packet.id)
            if servo is None:
                return replies, after
            if instruction in BROADCAST_ONLY:
                replies.append((servo, servo.status_error(ResultCode.INSTRUCTION_ERROR), b""))
                return replies, after
            if instruction == Instruction.REBOOT:
                replies.append((servo, servo.status_error(), b""))
                after.append(servo.reboot)
                return replies, after
            answer = servo.handle(packet, broadcast=False)
            if answer is not None:
                replies.append((servo, *answer))
            return replies, after

        if instruction == Instruction.PING:
            for servo in sorted(servos.values(), key=lambda s: s.id):
                answer = servo.handle(packet, broadcast=True)
                if answer is not None:
                    replies.append((servo, *answer))
        elif instruction == Instruction.SYNC_READ:
            address, length, ids = proto.parse_sync_read_params(packet.params)
            replies += self._reads(servos, ((i, address, length) for i in ids))
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
        return replies, after

    @staticmethod
    def _reads(
        servos: dict[int, VirtualServo], requests: Iterable[tuple[int, int, int]]
    ) -> list[tuple[VirtualServo, int, bytes]]:
        out = []
        for servo_id, address, length in requests:
            servo = servos.get(servo_id)
            if servo is None or servo.get("status_return_level") < 1:
                continue
            result, data = servo.read_range(address, length)
            out.append((servo, servo.status_error(result), data))
        return out

    def _send(self, replies: list[tuple[VirtualServo, int, bytes]]) -> None:
        if not replies:
            return
        out = bytearray()
        delay = self.faults.reply_latency_s
        for servo, error, params in replies:
            delay += servo.get("return_delay_time") * SECONDS_PER_RETURN_DELAY_UNIT
            if self.faults.drop_rate and self._rng.random() < self.faults.drop_rate:
                self.stats["replies_dropped"] += 1
                continue
            packet = proto.encode_status(servo.id, error, params)
            if self.faults.corrupt_rate and self._rng.random() < self.faults.corrupt_rate:
                packet = packet[:-1] + bytes((packet[-1] ^ self._rng.randint(1, 255),))
                self.stats["replies_corrupted"] += 1
            out += packet
            self.stats["replies"] += 1
        if delay > 0:
            self._stop.wait(delay)
        if out:
            self._write_all(bytes(out))

    def _write_all(self, data: bytes) -> None:
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
