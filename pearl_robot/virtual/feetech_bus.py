"""A virtual Feetech bus on a pseudo-terminal: a chain of STS3215 servos (SO-101) that answers the
FT-SCS packets of ``scservo_sdk`` and ``pearl_robot.feetech.FeetechBus``, with the arm's physics behind it.

The pty, the serving thread, the plant, the USB adapter's latency timer, wire-time pacing, faults and
the operator's hand are ``PtyServoBus``'s (``pearl_robot.virtual.pty_bus``, shared with the Dynamixel
bus); the codec is ``pearl_robot.feetech.protocol``; the servos are ``VirtualFeetechServo``. What this
module adds is the protocol's rules:

- PING, READ, WRITE, REG WRITE, ACTION to one id: a status packet from that servo (the id addressed,
  even after a WRITE of a new ID), unless Response Status Level (8) is 0, which answers PING and READ only.
- Broadcast (0xFE): never a status packet, except SYNC READ, which every named servo that is there
  answers in the order named; PING to the broadcast id is answered by every servo in id order (the way
  a lone servo's id is found). SYNC READ and SYNC WRITE addressed to one id are ignored.
- RECOVERY (0x06): factory values, the id kept, then a restart as after a power cycle; RESET (0x0A):
  resets the multi-turn count, which a single-turn STS3215 does not keep, so it only answers (Feetech's
  FTServo INST.h). Any other code (a status packet from another device, say) is no instruction.
- A frame with a bad checksum, a lying length or garbage between frames is ignored, as the firmware
  does (counted in ``stats``); a frame that follows it is still found.
- Each servo hears only instructions sent at its own Baud Rate (6); a new one takes effect after the
  status packet of its WRITE.
- Scheduled hardware errors (``BusFaults``: overload, overheating, voltage, encoder, shock) set the
  Feetech bits OVERLOAD, OVERHEAT, VOLTAGE, ANGLE (the angle sensor) and OVERCURRENT.
- Each servo's overload protection (see ``VirtualFeetechServo``) runs on the serving thread's clock;
  ``stats["protection_stops"]`` counts the servos it turned off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pearl_robot.dynamixel.control_table import HardwareError
from pearl_robot.feetech import protocol as proto
from pearl_robot.feetech.control_table import BAUD_RATE_CODES, control_table
from pearl_robot.feetech.protocol import BROADCAST_ID, Instruction, Packet, PacketParser, Rejected, StatusError
from pearl_robot.virtual.faults import ScheduledHardwareError
from pearl_robot.virtual.feetech_servo import VirtualFeetechServo
from pearl_robot.virtual.pty_bus import COMMON_STAT_NAMES, PtyServoBus, Reply, baud_code

FEETECH_STAT_NAMES = (*COMMON_STAT_NAMES, "protection_stops")  # the last: torque turned off by a servo's protection
INSTRUCTIONS = frozenset(int(i) for i in Instruction)
# the fault kinds (``faults.HARDWARE_ERROR_KINDS``, Dynamixel bits) as the Feetech servo reports them
FEETECH_ERROR_BITS = {
    HardwareError.OVERLOAD: StatusError.OVERLOAD,
    HardwareError.OVERHEATING: StatusError.OVERHEAT,
    HardwareError.INPUT_VOLTAGE: StatusError.VOLTAGE,
    HardwareError.MOTOR_ENCODER: StatusError.ANGLE,
    HardwareError.ELECTRICAL_SHOCK: StatusError.OVERCURRENT,
}


def baud_register(bps: int) -> int:
    """The Baud Rate (6) code for ``bps``; ValueError for a speed Feetech servos do not have."""
    return baud_code(bps, BAUD_RATE_CODES, "Feetech")


class VirtualFeetechBus(PtyServoBus):
    """``from_spec(spec, ...)`` (``PtyServoBus.from_spec``) builds it from a hardware YAML: every servo
    keeps the factory Return Delay Time of 250 (500 us) unless told otherwise, as configured before
    (kept in its EEPROM over a power cycle)."""

    broadcast_id = BROADCAST_ID
    thread_name = "virtual-feetech-bus"
    stat_names = FEETECH_STAT_NAMES
    malformed_errors = (proto.ProtocolError,)
    parser_class = PacketParser
    servo_class = VirtualFeetechServo
    control_table = staticmethod(control_table)
    baud_register = staticmethod(baud_register)

    @classmethod
    def _configure(cls, servo: VirtualFeetechServo) -> None:
        servo.save_eeprom()

    # ---- live controls ----------------------------------------------------------------------------
    def power_cycle(self, servo_id: int | None = None) -> None:
        """Switch one servo (or all) off and on: what it kept in its EEPROM comes back."""
        with self._lock:
            for servo in self.servos if servo_id is None else [self.servo(servo_id)]:
                servo.power_cycle()

    # ---- the servos' timers ----------------------------------------------------------------------------
    def _servo_deadlines(self) -> list[float | None]:
        return [s.protection_deadline() for s in self.servos]

    def _check_servos(self, now: float) -> None:
        self.stats["protection_stops"] += sum(s.check_protection(now) for s in self.servos)

    def _scheduled_bits(self, event: ScheduledHardwareError) -> int:
        return int(sum(bit for kind, bit in FEETECH_ERROR_BITS.items() if event.bits & kind))

    # ---- FT-SCS --------------------------------------------------------------------------------------
    def _parse(self, data: bytes) -> Iterator[Packet | Rejected]:
        yield from self._parser.feed(data)

    def _accept(self, item: Packet | Rejected, servos: dict[int, VirtualFeetechServo]) -> Packet | None:
        if isinstance(item, Rejected):
            self.stats["crc_errors_received" if item.reason == "checksum" else "malformed_received"] += 1
            return None
        if item.code not in INSTRUCTIONS:
            self.stats["malformed_received"] += 1
            return None
        return item

    def _target_id(self, packet: Packet) -> int:
        return packet.servo_id

    def _wire_size(self, packet: Packet) -> int:
        return proto.packet_size(len(packet.params))

    def _status_packet(self, reply: Reply) -> bytes:
        return proto.status_packet(reply.id, reply.error, reply.params)

    def _dispatch(
        self, packet: Packet, servos: dict[int, VirtualFeetechServo]
    ) -> tuple[list[Reply], list[Callable[[], None]], None]:
        code, params = packet.code, packet.params
        if packet.servo_id != BROADCAST_ID:
            servo = servos.get(packet.servo_id)
            if servo is None or code in (Instruction.SYNC_READ, Instruction.SYNC_WRITE):
                return [], [], None
            level = servo.status_return_level  # a new level applies from the next instruction on
            answer, after = self._instruct(servo, code, params)
            if answer is None or (level == 0 and code not in (Instruction.PING, Instruction.READ)):
                return [], after, None
            return [Reply(servo, packet.servo_id, *answer)], after, None
        replies: list[Reply] = []
        after: list[Callable[[], None]] = []
        if code == Instruction.SYNC_READ:
            address, length, ids = proto.parse_sync_read_params(params)
            named = [(i, servos[i]) for i in ids if i in servos]
            replies = [Reply(servo, i, *servo.read_range(address, length)) for i, servo in named]
        elif code == Instruction.SYNC_WRITE:
            address, _length, records = proto.parse_sync_write_params(params)
            for servo_id, data in records:
                if servo_id in servos:
                    servos[servo_id].write_range(address, data)
        elif code == Instruction.PING:
            replies = [Reply(s, s.id, s.error_bits(), b"") for s in sorted(servos.values(), key=lambda s: s.id)]
        else:
            for servo in servos.values():
                after += self._instruct(servo, code, params)[1]
        return replies, after, None

    @staticmethod
    def _instruct(
        servo: VirtualFeetechServo, code: int, params: bytes
    ) -> tuple[tuple[int, bytes] | None, list[Callable[[], None]]]:
        """One servo's (error byte, parameters) to answer, or None; and what to do after the reply."""
        if code == Instruction.PING:
            return (servo.error_bits(), b""), []
        if code == Instruction.READ:
            return servo.read_range(*proto.parse_read_params(params)), []
        if code == Instruction.WRITE:
            return (servo.write_range(*proto.parse_write_params(params)), b""), []
        if code == Instruction.REG_WRITE:
            return (servo.register(*proto.parse_write_params(params)), b""), []
        if code == Instruction.ACTION:
            result = servo.action()
            return (servo.error_bits() if result is None else result, b""), []
        if code == Instruction.RECOVERY:
            servo.factory_reset()
            servo.power_cycle()
            return (servo.error_bits(), b""), []
        if code == Instruction.RESET:  # the multi-turn count: none in single-turn position mode
            return (servo.error_bits(), b""), []
        return None, []
