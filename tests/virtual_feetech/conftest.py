"""Fixtures that start a real virtual Feetech bus on a pty and the vendor SDK (``scservo_sdk``) on it,
and always stop and close both."""

import pytest
import scservo_sdk as scs

from pearl_robot.robot.spec import load_spec
from pearl_robot.virtual import VirtualFeetechBus


@pytest.fixture
def spec():
    return load_spec("so101")  # six STS3215 on a Feetech bus, ids 1-6, 1 Mbps


@pytest.fixture
def make_bus(spec, start_virtual_bus):
    """``make_bus(**from_spec options)``: a started bus on the SO-101 (through the factory, which picks
    the Feetech bus from the YAML; IdealPlant unless ``physics=True``, joints at zero unless told
    otherwise), stopped at teardown."""

    def make(**options):
        options.setdefault("physics", False)
        options.setdefault("initial_position_rad", [0.0] * spec.num_joints)
        bus = start_virtual_bus(spec, **options)
        assert isinstance(bus, VirtualFeetechBus)
        return bus

    return make


class Sdk:
    """The vendor SDK on one port: ``port`` (PortHandler), ``ph`` (PacketHandler(0): STS, little endian)."""

    def __init__(self, device: str, baudrate: int = 1_000_000) -> None:
        self.port = scs.PortHandler(device)
        self.port.baudrate = baudrate
        assert self.port.openPort(), f"the SDK could not open {device}"
        self.ph = scs.PacketHandler(0)

    def read(self, servo_id: int, address: int, length: int) -> tuple[list[int], int, int]:
        return self.ph.readTxRx(self.port, servo_id, address, length)

    def write1(self, servo_id: int, address: int, value: int) -> tuple[int, int]:
        return self.ph.write1ByteTxRx(self.port, servo_id, address, value)

    def write2(self, servo_id: int, address: int, value: int) -> tuple[int, int]:
        return self.ph.write2ByteTxRx(self.port, servo_id, address, value)

    def close(self) -> None:
        self.port.closePort()


@pytest.fixture
def make_sdk():
    """``make_sdk(bus, baudrate=1_000_000)``: the SDK's port open on the bus's pty, closed at teardown."""
    opened = []

    def make(bus, baudrate: int = 1_000_000) -> Sdk:
        sdk = Sdk(bus.device_path, baudrate)
        opened.append(sdk)
        return sdk

    yield make
    for sdk in opened:
        sdk.close()
