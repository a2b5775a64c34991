"""The USB serial adapter behind a device path, and its latency timer (Linux sysfs).

FTDI chips (U2D2, USB2Dynamixel) hold received bytes until 64 arrive or their latency timer runs
out: 16 ms from the factory, so every status packet arrives up to 16 ms late. ``ftdi_sio`` shows the
timer as ``/sys/bus/usb-serial/devices/<tty>/latency_timer`` (also ``/sys/class/tty/<tty>/device/
latency_timer``); writing 1 there (root, or a udev rule) or setting ASYNC_LOW_LATENCY on the open
port (pyserial's ``set_low_latency_mode(True)``; ftdi_sio then runs the timer at 1 ms) fixes it.
A pty, a ``cdc_acm`` board or a non-Linux system has no such timer: ``latency_timer_ms`` is None.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

UDEV_RULE = (
    'ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", ATTR{latency_timer}="1"'
    " in /etc/udev/rules.d/99-dynamixel-latency.rules"
)
PTY_MAJORS = range(136, 144)  # Unix98 pty slaves (/dev/pts/N)


@dataclass(frozen=True)
class AdapterInfo:
    device: str  # as given (may be a symlink such as /dev/serial/by-id/...)
    tty: str | None  # kernel tty name ("ttyUSB0", "pts/3"); None if not a tty device
    usb_serial: bool  # a USB serial adapter (usb-serial bus, or a USB CDC-ACM board)
    driver: str | None  # ftdi_sio, cp210x, ch341, cdc_acm, pty ... when known
    latency_timer_ms: int | None  # None: no readable latency timer (pty, cdc_acm, non-Linux)
    latency_timer_path: str | None

    def advice(self) -> str | None:
        """What to run when the latency timer is above 1 ms (None otherwise)."""
        if self.latency_timer_ms is None or self.latency_timer_ms <= 1 or self.latency_timer_path is None:
            return None
        return f"echo 1 | sudo tee {self.latency_timer_path} (or a udev rule: {UDEV_RULE})"

    def summary(self) -> str:
        what = self.device if self.tty is None or self.device.endswith(self.tty) else f"{self.device} ({self.tty})"
        if self.driver == "pty":
            return f"{what}: pseudo-terminal, not a USB adapter, no latency timer"
        if self.tty is None:
            return f"{what}: not a tty device, no latency timer"
        kind = (
            f"USB serial adapter ({self.driver or 'unknown driver'})"
            if self.usb_serial
            else (f"serial port ({self.driver or 'unknown driver'})")
        )
        if self.latency_timer_ms is None:
            return f"{what}: {kind}, no latency timer"
        return f"{what}: {kind}, latency timer {self.latency_timer_ms} ms"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary(), "advice": self.advice()}


def _tty_name(device: str) -> tuple[str, bool]:
    """(kernel tty name, is a pty slave) from the device's real path."""
    real = os.path.realpath(device)
    is_pty = False
    with contextlib.suppress(OSError):
        st = os.stat(real)
        is_pty = stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in PTY_MAJORS
    if is_pty or real.startswith("/dev/pts/"):
        return "pts/" + os.path.basename(real), True
    return os.path.basename(real), False


def _link_name(path: Path) -> str | None:
    """The basename a sysfs symlink (driver, subsystem) points at."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def inspect_adapter(device: str, *, sysfs_root: str | Path = "/sys") -> AdapterInfo:
    """What sysfs says about ``device``; never raises for a missing device or sysfs."""
    tty, is_pty = _tty_name(device)
    if is_pty:
        return AdapterInfo(device, tty, False, "pty", None, None)
    sysfs = Path(sysfs_root)
    class_dir = sysfs / "class" / "tty" / tty
    if not class_dir.exists():
        return AdapterInfo(device, None, False, None, None, None)
    port_dir = class_dir / "device"
    driver = _link_name(port_dir / "driver")
    subsystem = _link_name(port_dir / "subsystem")
    usb_serial = subsystem in ("usb-serial", "usb")
    latency, latency_path = None, None
    for candidate in (sysfs / "bus" / "usb-serial" / "devices" / tty / "latency_timer", port_dir / "latency_timer"):
        with contextlib.suppress(OSError, ValueError):
            latency = int(candidate.read_text().strip())
            latency_path = str(candidate)
            break
    return AdapterInfo(device, tty, usb_serial, driver, latency, latency_path)


def set_low_latency(device: str, *, port: Any = None, sysfs_root: str | Path = "/sys") -> tuple[bool, str]:
    """Latency timer to 1 ms: write the sysfs file where permitted, else ASYNC_LOW_LATENCY on ``port``
    (an open pyserial port). (done, one line saying what happened or what to run)."""
    info = inspect_adapter(device, sysfs_root=sysfs_root)
    if info.latency_timer_ms is None or info.latency_timer_path is None:
        return False, f"{info.summary()}: nothing to set"
    if info.latency_timer_ms <= 1:
        return True, f"{info.tty}: latency timer already {info.latency_timer_ms} ms"
    before = info.latency_timer_ms
    try:
        Path(info.latency_timer_path).write_text("1")
        how = f"wrote 1 to {info.latency_timer_path}"
    except OSError as exc:
        if port is None or not hasattr(port, "set_low_latency_mode"):
            return False, f"{info.tty}: cannot write {info.latency_timer_path} ({exc.strerror}); run {info.advice()}"
        try:
            port.set_low_latency_mode(True)
        except (ValueError, OSError, NotImplementedError) as ioctl_exc:
            return False, f"{info.tty}: {exc.strerror} and {ioctl_exc}; run {info.advice()}"
        how = "set ASYNC_LOW_LATENCY on the open port; the udev rule makes it permanent"
    after = inspect_adapter(device, sysfs_root=sysfs_root).latency_timer_ms
    if after is not None and after > 1:
        return False, f"{info.tty}: {how} but the latency timer still reads {after} ms; run {info.advice()}"
    return True, f"{info.tty}: latency timer {before} -> 1 ms ({how})"
