"""``bench serial`` on a Feetech arm (``--hardware so101``): the control cycle of the real ``FeetechRobot``
(``read()`` = one SYNC READ of every joint's feedback block, ``write()`` = one SYNC WRITE of goal
positions) against ``pearl-robot virtual-bus`` running as its own process, as hardware would be, and
as its baseline a raw exchange of the same bytes with an echo process on another pty (no protocol work
on either side), blocks of both alternating in the same run (``serial.alternate``). ``ratio``: the
transaction's p50 over the raw exchange's. The episode, late-reply and rate scenarios of the Dynamixel
run are not part of it (``not_run``).
"""

from __future__ import annotations

import argparse

from pearl_robot.bench.common import machine, percentiles_us
from pearl_robot.bench.serial import alternate, raw_exchange, robot_cycle
from pearl_robot.bench.serial_devices import echo_device, virtual_bus_device
from pearl_robot.feetech import protocol as proto
from pearl_robot.feetech.protocol import BROADCAST_ID, Instruction
from pearl_robot.servo_bus import wire_time_s

NOT_RUN = ("sync_read", "episode", "late_replies", "rate_500hz")


def cycle_bytes(robot, ticks) -> tuple[bytes, bytes, int]:
    """The cycle's SYNC READ and SYNC WRITE (of goal ``ticks``) as ``FeetechRobot`` sends them, and the
    size of the replies to the read."""
    address, length = robot._block
    params = proto.sync_read_params(address, length, robot.ids)
    tx_read = proto.instruction_packet(BROADCAST_ID, Instruction.SYNC_READ, params)
    goal = robot.tables[0]["goal_position"]
    values = {i: table.encode("goal_position", int(t)) for i, table, t in zip(robot.ids, robot.tables, ticks)}
    params = proto.sync_write_params(goal.address, goal.size, values)
    tx_write = proto.instruction_packet(BROADCAST_ID, Instruction.SYNC_WRITE, params)
    return tx_read, tx_write, len(robot.ids) * proto.packet_size(length)


def measure_transaction(spec, hardware: str | None, cycles: int, block: int, gap_s: float) -> dict[str, object]:
    from pearl_robot.robot.feetech_robot import FeetechRobot

    with virtual_bus_device(hardware, "--return-delay-time", "0") as vbus:
        robot = FeetechRobot(spec, vbus.path, timeout_margin_ms=50.0)
        with robot:
            robot.enable()
            hold = robot.read().position
            tx_read, tx_write, rx = cycle_bytes(robot, robot._goal_ticks(hold))
            with (
                echo_device(tx_read, [bytes(rx)]) as echo,
                raw_exchange(echo.path, spec.bus.baudrate, tx_read, tx_write, rx) as exchange,
            ):
                transaction, raw = alternate(robot_cycle(robot, hold), exchange, cycles, block, gap_s)
            stats = robot.stats_dict()
    t = percentiles_us(transaction, "transaction_")
    r = percentiles_us(raw, "raw_")
    wire_bytes = len(tx_read) + len(tx_write) + rx
    return {
        "state_read": "sync_read",
        "gap_between_cycles_ms": gap_s * 1e3,
        "joints": spec.num_joints,
        "tx_bytes": len(tx_read) + len(tx_write),
        "rx_bytes": rx,
        "wire_time_us": wire_time_s(wire_bytes, spec.bus.baudrate) * 1e6,
        **t,
        **r,
        "ratio": t["transaction_p50_us"] / r["raw_p50_us"],
        "ratio_p99": t["transaction_p99_us"] / r["raw_p99_us"],
        "transaction_vs_raw_p50": t["transaction_p50_us"] / r["raw_p50_us"],
        "transaction_retries": stats.get("bus_retries", 0),
        "transaction_timeouts": stats.get("bus_timeouts", 0),
        "transaction_stale_reads": stats.get("stale_reads", 0),
    }


def run(args: argparse.Namespace, spec) -> dict[str, object]:
    result: dict[str, object] = {"benchmark": "serial", "machine": machine(), "protocol": spec.bus.protocol}
    result.update(measure_transaction(spec, args.hardware, args.cycles, args.block, args.gap_ms / 1e3))
    result["not_run"] = list(NOT_RUN)
    result["targets"] = {"ratio<=2": result["ratio"] <= 2.0}
    return result
