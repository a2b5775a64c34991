"""`bench serial` on the SO-101: FeetechRobot's cycle through `pearl-robot virtual-bus` against a raw
exchange of the same bytes, in one run."""

import argparse
from types import SimpleNamespace

from pearl_robot.bench import serial, serial_feetech
from pearl_robot.feetech.control_table import STS3215
from pearl_robot.feetech.protocol import Instruction, decode_packet, parse_sync_read_params, parse_sync_write_params


def test_bench_serial_measures_the_feetech_transaction_against_its_raw_baseline(spec):
    parser = argparse.ArgumentParser()
    serial.add_arguments(parser)
    args = parser.parse_args(["--hardware", "so101", "--cycles", "60", "--block", "20", "--gap-ms", "0"])
    result = serial.run(args)
    assert result["protocol"] == "feetech" and result["state_read"] == "sync_read"
    assert result["transaction_timeouts"] == 0 and result["transaction_retries"] == 0
    assert result["transaction_p50_us"] > 0 and result["raw_p50_us"] > 0
    assert result["ratio"] == result["transaction_p50_us"] / result["raw_p50_us"]
    assert result["targets"] == {"ratio<=2": result["ratio"] <= 2.0}
    assert result["rx_bytes"] == 6 * (6 + 15)  # six status packets of the 15-byte feedback block (56-70)
    assert result["wire_time_us"] == (result["tx_bytes"] + result["rx_bytes"]) * 10.0


def test_the_raw_baseline_sends_the_robots_own_packets(spec):
    ids = [j.servo_id for j in spec.joints]
    robot = SimpleNamespace(ids=ids, tables=[STS3215] * len(ids), _block=(56, 15))  # what cycle_bytes reads
    tx_read, tx_write, rx = serial_feetech.cycle_bytes(robot, [2048, 2000, 100, 4095, 0, 3000])
    read, write = decode_packet(tx_read), decode_packet(tx_write)
    assert (read.servo_id, read.code) == (0xFE, Instruction.SYNC_READ)
    assert parse_sync_read_params(read.params) == (56, 15, [1, 2, 3, 4, 5, 6])
    assert write.code == Instruction.SYNC_WRITE
    address, length, records = parse_sync_write_params(write.params)
    assert (address, length) == (42, 2)
    assert [int.from_bytes(data, "little") for _, data in records] == [2048, 2000, 100, 4095, 0, 3000]
    assert rx == 6 * 21
