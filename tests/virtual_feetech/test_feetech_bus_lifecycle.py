"""Starting and stopping the virtual Feetech bus (in process and as `pearl-robot virtual-bus`), the
factory that picks it from the hardware YAML, and the timing a client sees."""

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
import scservo_sdk as scs

from pearl_robot.bench.serial_devices import virtual_bus_device
from pearl_robot.errors import ConfigError
from pearl_robot.feetech.control_table import STS3215
from pearl_robot.robot.spec import load_spec
from pearl_robot.virtual import VirtualFeetechBus, VirtualServoBus, virtual_bus_from_spec

POS = STS3215["present_position"].address


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_the_bus_stops_cleanly_leaving_no_thread_fd_or_link(spec, make_sdk, tmp_path):
    threads, fds = set(threading.enumerate()), open_fds()
    link = tmp_path / "so101"
    bus = VirtualFeetechBus.from_spec(spec, link=link).start()  # with physics: its thread too
    sdk = make_sdk(bus)
    assert sdk.ph.ping(sdk.port, 1)[1] == scs.COMM_SUCCESS and link.is_symlink()
    sdk.close()
    bus.stop()
    bus.stop()  # idempotent
    assert not bus.running and not link.exists()
    assert set(threading.enumerate()) == threads
    assert open_fds() == fds


def test_the_factory_picks_the_bus_by_the_yaml_protocol(spec):
    assert type(virtual_bus_from_spec(spec, physics=False)) is VirtualFeetechBus
    assert type(virtual_bus_from_spec(load_spec(), physics=False)) is VirtualServoBus  # protocol 2.0
    older = virtual_bus_from_spec(load_spec(), physics=False, firmware_version=44)
    assert older.servos[0].get("firmware_version") == 44
    assert type(virtual_bus_from_spec(spec, physics=False, firmware_version=None)) is VirtualFeetechBus
    with pytest.raises(ConfigError, match="firmware_version is an option of the dynamixel bus only"):
        virtual_bus_from_spec(spec, physics=False, firmware_version=44)
    slow = dataclasses.replace(spec.bus, baudrate=9600)
    with pytest.raises(ConfigError, match=r"bus\.baudrate.*9600 bps is not a Feetech baud rate"):
        VirtualFeetechBus.from_spec(dataclasses.replace(spec, bus=slow), physics=False)


def test_replies_wait_for_the_return_delay_and_the_adapter_latency_timer(make_bus, make_sdk):
    bus = make_bus(adapter_latency_ms=5)
    sdk = make_sdk(bus)
    reader = scs.GroupSyncRead(sdk.port, sdk.ph, POS, 2)
    for i in range(1, 7):
        reader.addParam(i)
    started = time.perf_counter()
    assert reader.txRxPacket() == scs.COMM_SUCCESS
    elapsed = time.perf_counter() - started
    assert elapsed >= 6 * 250 * 2e-6 + 0.005  # six factory return delays (500 us each) + the latency timer
    bus.set_faults(reply_latency_s=0.0)
    assert bus.adapter.latency_s == 0.005


def test_paced_exchanges_take_the_wire_time_of_their_bytes(make_bus, make_sdk):
    bus = make_bus(return_delay_time=0, servo_baud_rates=[38_400] * 6, pace_wire_time=True)
    sdk = make_sdk(bus, baudrate=38_400)
    started = time.perf_counter()
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, POS) == (2048, scs.COMM_SUCCESS, 0)
    elapsed = time.perf_counter() - started
    assert elapsed >= (8 + 8) * 10 / 38_400  # an 8-byte READ and an 8-byte status, 10 bits a byte


def test_encoder_noise_makes_repeated_reads_differ(make_bus, make_sdk):
    bus = make_bus(sensor_noise_ticks=2.0)
    sdk = make_sdk(bus)
    values = {sdk.ph.read2ByteTxRx(sdk.port, 1, POS)[0] for _ in range(20)}
    assert len(values) > 2 and all(abs(v - 2048) < 15 for v in values)
    assert bus.servo(2).sensor_noise_ticks == 2.0


def test_the_cli_serves_the_so101_to_the_sdk_until_signalled(make_sdk):
    with virtual_bus_device("so101", "--hidden-offsets", "0,0,0,0,0,40") as device:
        sdk = make_sdk(SimpleNamespace(device_path=device.path))
        assert sdk.ph.ping(sdk.port, 6) == (777, scs.COMM_SUCCESS, 0)
        assert sdk.ph.read2ByteTxRx(sdk.port, 6, POS)[0] > 2048  # the gripper's hidden offset, past its home
        sdk.close()
        device.proc.send_signal(signal.SIGINT)
        assert device.proc.wait(timeout=20) == 0  # it stopped serving and closed its pty on SIGINT


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--firmware-version", "44"], "firmware_version is an option of the dynamixel bus only"),
        (["--operator"], "follows the servos' LEDs and feetech servos have none: give the hand the cue file"),
        (["--servo-baud-rates", "9600"], "9600 bps is not a Feetech baud rate"),
    ],
)
def test_the_cli_refuses_what_a_feetech_arm_does_not_have(option, message):
    argv = [sys.executable, "-m", "pearl_robot.cli.main", "virtual-bus", "--hardware", "so101", *option]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stdout == ""
    assert message in done.stderr and "Traceback" not in done.stderr
