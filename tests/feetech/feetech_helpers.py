"""A stand-in for ``scservo_sdk.PortHandler``: it records what the vendor SDK writes and hands it the
bytes a test queued, so the SDK's own packet building and parsing can be compared with ours byte for byte."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import scservo_sdk as scs


class RecordingPort:
    def __init__(self, replies: bytes = b"") -> None:
        self.is_using = False
        self.written = bytearray()
        self.rx = bytearray(replies)

    def queue(self, data: bytes) -> None:
        self.rx += data

    # the PortHandler methods the packet handler and the group classes call
    def clearPort(self) -> None:  # noqa: N802 (the SDK's names)
        pass

    def writePort(self, packet: list[int] | bytes) -> int:  # noqa: N802
        self.written += bytes(packet)
        return len(packet)

    def readPort(self, length: int) -> bytes:  # noqa: N802
        data = bytes(self.rx[:length])
        del self.rx[:length]
        return data

    def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802
        pass

    def setPacketTimeoutMillis(self, msec: float) -> None:  # noqa: N802
        pass

    def isPacketTimeout(self) -> bool:  # noqa: N802
        return not self.rx  # nothing more will come: the SDK gives up instead of spinning

    def take(self) -> bytes:
        out = bytes(self.written)
        self.written.clear()
        return out


@contextlib.contextmanager
def packet_handler(protocol_end: int) -> Iterator[object]:
    """``scs.PacketHandler(end)`` sets a module-wide byte order: restore little endian afterwards."""
    try:
        yield scs.PacketHandler(protocol_end)
    finally:
        scs.SCS_SETEND(0)


class PtyServos:
    """A test-only chain of Feetech servos on a real pseudo-terminal: a thread answers PING, READ,
    WRITE, REG_WRITE/ACTION, SYNC READ and SYNC WRITE from a 256-byte memory per id (the table's
    defaults). Knobs for the client's fault paths: ``silent`` ids never answer, ``corrupt`` replies get a
    bad checksum, ``garbage`` goes out before the next reply, ``late_s`` delays every reply,
    ``error_bits`` per id go in every status packet. ``stop()`` closes the pty and joins the thread."""

    def __init__(self, ids, table=None) -> None:
        import os
        import threading
        import tty

        from pearl_robot.feetech.control_table import STS3215

        self.table = table or STS3215
        self.memory = {i: self._image(i) for i in ids}
        self.registered: dict[int, tuple[int, bytes]] = {}
        self.silent: set[int] = set()
        self.corrupt = 0
        self.garbage = b""
        self.late_s = 0.0
        self.error_bits: dict[int, int] = {}
        self.received: list = []
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="pty-servos", daemon=True)
        self._thread.start()

    def _image(self, servo_id: int) -> bytearray:
        mem = bytearray(256)
        for f in self.table.fields:
            mem[f.address : f.end] = self.table.encode_raw(f.size, f.to_raw(f.default))
        mem[5] = servo_id
        return mem

    def value(self, servo_id: int, name: str) -> int:
        f = self.table[name]
        return self.table.decode(name, bytes(self.memory[servo_id][f.address : f.end]))

    def set_value(self, servo_id: int, name: str, value: int) -> None:
        f = self.table[name]
        self.memory[servo_id][f.address : f.end] = self.table.encode(name, value)

    def stop(self) -> None:
        import os

        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave):
            os.close(fd)

    def __enter__(self) -> PtyServos:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        import os
        import select

        from pearl_robot.feetech.protocol import Packet, PacketParser

        parser = PacketParser()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.02)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            for item in parser.feed(data):
                if isinstance(item, Packet):
                    self.received.append(item)
                    self._answer(item)

    def _reply(self, servo_id: int, params: bytes = b"") -> None:
        import os
        import time

        from pearl_robot.feetech import protocol as proto

        if servo_id in self.silent or servo_id not in self.memory:
            return
        frame = bytearray(proto.status_packet(servo_id, self.error_bits.get(servo_id, 0), params))
        if self.corrupt:
            self.corrupt -= 1
            frame[-1] ^= 0xFF
        if self.late_s:
            time.sleep(self.late_s)
        os.write(self._master, self.garbage + bytes(frame))
        self.garbage = b""

    def _answer(self, packet) -> None:
        from pearl_robot.feetech import protocol as proto
        from pearl_robot.feetech.protocol import BROADCAST_ID, Instruction

        code, sid, params = packet.code, packet.servo_id, packet.params
        targets = list(self.memory) if sid == BROADCAST_ID else [sid] if sid in self.memory else []
        if code == Instruction.PING and sid != BROADCAST_ID:
            self._reply(sid)
        elif code == Instruction.READ and sid != BROADCAST_ID:
            address, length = proto.parse_read_params(params)
            self._reply(sid, bytes(self.memory.get(sid, bytearray(256))[address : address + length]))
        elif code in (Instruction.WRITE, Instruction.REG_WRITE):
            address, data = proto.parse_write_params(params)
            for i in targets:
                if code == Instruction.WRITE:
                    self.memory[i][address : address + len(data)] = data
                else:
                    self.registered[i] = (address, data)
            if sid != BROADCAST_ID:
                self._reply(sid)
        elif code == Instruction.ACTION:
            for i in targets:
                if i in self.registered:
                    address, data = self.registered.pop(i)
                    self.memory[i][address : address + len(data)] = data
            if sid != BROADCAST_ID:
                self._reply(sid)
        elif code == Instruction.SYNC_READ:
            address, length, ids = proto.parse_sync_read_params(params)
            for i in ids:
                if i in self.memory:
                    self._reply(i, bytes(self.memory[i][address : address + length]))
        elif code == Instruction.SYNC_WRITE:
            address, length, records = proto.parse_sync_write_params(params)
            for i, data in records:
                if i in self.memory:
                    self.memory[i][address : address + length] = data
