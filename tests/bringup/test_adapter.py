"""The adapter's latency timer against a fake sysfs tree (its layout copied from a real ftdi_sio
adapter), and a real pty."""

import os

from pearl_robot.dynamixel.adapter import inspect_adapter, set_low_latency

KERNEL_MAX = "/sys/devices/system/cpu/kernel_max"  # a read-only sysfs attribute: even root cannot write it


def fake_tty(sysfs, tty, *, bus, driver, latency=None):
    """/sys/devices/.../<tty> with class/tty and bus symlinks, as the kernel lays them out."""
    port = sysfs / "devices" / "pci0000:00" / "usb1" / "1-1" / "1-1:1.0" / tty
    (port / "tty" / tty).mkdir(parents=True)
    (sysfs / "bus" / bus / "drivers" / driver).mkdir(parents=True, exist_ok=True)
    (sysfs / "bus" / bus / "devices").mkdir(parents=True, exist_ok=True)
    (port / "driver").symlink_to(sysfs / "bus" / bus / "drivers" / driver)
    (port / "subsystem").symlink_to(sysfs / "bus" / bus)
    (port / "tty" / tty / "device").symlink_to(port)
    (sysfs / "class" / "tty").mkdir(parents=True, exist_ok=True)
    (sysfs / "class" / "tty" / tty).symlink_to(port / "tty" / tty)
    (sysfs / "bus" / bus / "devices" / tty).symlink_to(port)
    if latency is not None:
        (port / "latency_timer").write_text(f"{latency}\n")
    return port


class FakePort:
    """A pyserial port's low-latency switch; ``effect`` runs as the kernel would."""

    def __init__(self, effect=None):
        self.calls = []
        self.effect = effect

    def set_low_latency_mode(self, on):
        self.calls.append(on)
        if self.effect:
            self.effect()


def test_ftdi_latency_timer_is_read_advised_and_set(tmp_path):
    sysfs = tmp_path / "sys"
    port = fake_tty(sysfs, "ttyUSB0", bus="usb-serial", driver="ftdi_sio", latency=16)
    info = inspect_adapter("/dev/ttyUSB0", sysfs_root=sysfs)
    assert (info.tty, info.usb_serial, info.driver, info.latency_timer_ms) == ("ttyUSB0", True, "ftdi_sio", 16)
    assert info.latency_timer_path == str(sysfs / "bus/usb-serial/devices/ttyUSB0/latency_timer")
    assert info.advice().startswith(f"echo 1 | sudo tee {info.latency_timer_path}")
    assert "udev" in info.advice() and "latency timer 16 ms" in info.summary()

    done, message = set_low_latency("/dev/ttyUSB0", sysfs_root=sysfs)
    assert done and "16 -> 1 ms" in message
    assert (port / "latency_timer").read_text() == "1"
    assert inspect_adapter("/dev/ttyUSB0", sysfs_root=sysfs).advice() is None
    assert set_low_latency("/dev/ttyUSB0", sysfs_root=sysfs) == (True, "ttyUSB0: latency timer already 1 ms")


def test_a_by_id_symlink_resolves_to_its_tty(tmp_path):
    sysfs = tmp_path / "sys"
    fake_tty(sysfs, "ttyUSB3", bus="usb-serial", driver="ftdi_sio", latency=1)
    by_id = tmp_path / "dev" / "serial" / "by-id" / "usb-FTDI_USB__-__Serial_Converter_FT1234-if00-port0"
    by_id.parent.mkdir(parents=True)
    by_id.symlink_to(tmp_path / "dev" / "ttyUSB3")
    info = inspect_adapter(str(by_id), sysfs_root=sysfs)
    assert (info.device, info.tty, info.latency_timer_ms) == (str(by_id), "ttyUSB3", 1)
    assert "(ttyUSB3)" in info.summary() and info.advice() is None


def test_cdc_acm_and_platform_ports_have_no_latency_timer(tmp_path):
    sysfs = tmp_path / "sys"
    fake_tty(sysfs, "ttyACM0", bus="usb", driver="cdc_acm")
    fake_tty(sysfs, "ttyS0", bus="serial-base", driver="port")
    acm = inspect_adapter("/dev/ttyACM0", sysfs_root=sysfs)
    assert (acm.usb_serial, acm.driver, acm.latency_timer_ms, acm.advice()) == (True, "cdc_acm", None, None)
    assert set_low_latency("/dev/ttyACM0", sysfs_root=sysfs)[0] is False
    uart = inspect_adapter("/dev/ttyS0", sysfs_root=sysfs)
    assert (uart.usb_serial, uart.latency_timer_ms) == (False, None)
    assert "serial port" in uart.summary()


def test_no_sysfs_means_no_latency_timer(tmp_path):
    info = inspect_adapter("/dev/ttyUSB0", sysfs_root=tmp_path / "missing")
    assert (info.tty, info.usb_serial, info.latency_timer_ms) == (None, False, None)
    assert set_low_latency("/dev/ttyUSB0", sysfs_root=tmp_path / "missing")[0] is False


def test_a_pty_is_not_a_usb_adapter():
    master, slave = os.openpty()
    try:
        path = os.ttyname(slave)
        info = inspect_adapter(path)
        assert (info.usb_serial, info.driver, info.latency_timer_ms) == (False, "pty", None)
        assert info.tty.startswith("pts/") and "pseudo-terminal" in info.summary()
        assert info.advice() is None
        done, message = set_low_latency(path, port=FakePort())
        assert not done and "nothing to set" in message
    finally:
        os.close(master)
        os.close(slave)


def test_without_permission_the_port_flag_is_tried_then_the_command_given(tmp_path):
    sysfs = tmp_path / "sys"
    port_dir = fake_tty(sysfs, "ttyUSB0", bus="usb-serial", driver="ftdi_sio")
    (port_dir / "latency_timer").symlink_to(KERNEL_MAX)  # reads a number > 1, refuses writes
    done, message = set_low_latency("/dev/ttyUSB0", sysfs_root=sysfs)
    assert not done and "sudo tee" in message and "Permission denied" in message

    port = FakePort()  # the flag is set, but the timer still reads high: say what to run
    done, message = set_low_latency("/dev/ttyUSB0", port=port, sysfs_root=sysfs)
    assert port.calls == [True] and not done and "still reads" in message and "sudo tee" in message

    def kernel_lowers_the_timer():  # what ftdi_sio does on ASYNC_LOW_LATENCY
        (port_dir / "latency_timer").unlink()
        (port_dir / "latency_timer").write_text("1\n")

    done, message = set_low_latency("/dev/ttyUSB0", port=FakePort(kernel_lowers_the_timer), sysfs_root=sysfs)
    assert done and "ASYNC_LOW_LATENCY" in message
