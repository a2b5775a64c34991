"""dynamixel-sdk (ROBOTIS' own client, a test dependency) against the virtual bus serving each new model
on a real pty: PING answers the model's number and firmware, and reads and writes follow its table."""

import pytest
from dxl_models_helpers import spec_tables

from pearl_robot.dynamixel.control_table import (
    XC330_M288,
    XH430_W350,
    XL330_M077,
    XL330_M288,
    XL430_W250,
    XM540_W270,
)

pytestmark = pytest.mark.timeout(60)
NEW_MODELS = [XL330_M288, XL330_M077, XC330_M288, XM540_W270, XH430_W350]
DATA_RANGE_ERROR = 0x04


@pytest.fixture
def sdk_port():
    """``sdk_port(device)``: a dynamixel-sdk PortHandler at 1 Mbps and its Protocol 2.0 PacketHandler."""
    import dynamixel_sdk as sdk

    opened = []

    def open_port(device: str):
        port = sdk.PortHandler(device)
        assert port.openPort() and port.setBaudRate(1_000_000)
        opened.append(port)
        return port, sdk.PacketHandler(2.0)

    yield open_port
    for port in opened:
        port.closePort()


@pytest.mark.parametrize("table", NEW_MODELS, ids=[t.model for t in NEW_MODELS])
def test_the_sdk_pings_each_model_and_reads_its_table(table, chain_bus, sdk_port):
    import dynamixel_sdk as sdk

    bus = chain_bus([table], [7])
    port, handler = sdk_port(bus.device_path)
    model_number, result, error = handler.ping(port, 7)
    assert (model_number, result, error) == (table.model_number, sdk.COMM_SUCCESS, 0)
    assert handler.read2ByteTxRx(port, 7, 0) == (table.model_number, sdk.COMM_SUCCESS, 0)  # Model Number (0)
    assert handler.read1ByteTxRx(port, 7, 6)[0] == table.firmware_version  # Firmware Version (6)
    # Present Input Voltage (144): the model's supply, inside its own voltage limits (5 V for an X330)
    volts, result, _ = handler.read2ByteTxRx(port, 7, 144)
    assert result == sdk.COMM_SUCCESS and volts == round(10 * table.nominal_voltage_v)
    assert table["min_voltage_limit"].default <= volts <= table["max_voltage_limit"].default
    # Current Limit (38) and Indirect Address 1 (168), the model's own defaults
    assert handler.read2ByteTxRx(port, 7, 38)[0] == table["current_limit"].default
    assert handler.read2ByteTxRx(port, 7, 168)[0] == table["indirect_data_1"].address
    # a Goal Current past the model's Current Limit is refused
    limit = table["current_limit"].maximum
    assert handler.write2ByteTxRx(port, 7, 102, limit) == (sdk.COMM_SUCCESS, 0)
    assert handler.write2ByteTxRx(port, 7, 102, limit + 1) == (sdk.COMM_SUCCESS, DATA_RANGE_ERROR)


def test_an_x330_refuses_the_4_5_mbps_an_x430_accepts(chain_bus, sdk_port):
    import dynamixel_sdk as sdk

    bus = chain_bus([XL330_M288, XL430_W250], [3, 1])
    port, handler = sdk_port(bus.device_path)
    assert handler.write1ByteTxRx(port, 3, 8, 7) == (sdk.COMM_SUCCESS, DATA_RANGE_ERROR)  # Baud Rate (8) 7: 4.5M
    assert handler.write1ByteTxRx(port, 3, 8, 6) == (sdk.COMM_SUCCESS, 0)  # 4M: then it listens at 4 Mbps
    assert bus.servo(3).baud_bps == 4_000_000
    assert handler.write1ByteTxRx(port, 1, 8, 7) == (sdk.COMM_SUCCESS, 0)
    assert bus.servo(1).baud_bps == 4_500_000


def test_the_sdk_broadcast_ping_finds_a_mixed_koch_chain(koch, chain_bus, sdk_port):
    import dynamixel_sdk as sdk

    bus = chain_bus(spec_tables(koch), [j.servo_id for j in koch.joints])
    port, handler = sdk_port(bus.device_path)
    found, result = handler.broadcastPing(port)
    assert result == sdk.COMM_SUCCESS
    assert {i: model for i, (model, _) in found.items()} == {1: 1060, 2: 1060, 3: 1200, 4: 1200, 5: 1200, 6: 1200}
    # one SYNC READ of Present Position (132) answers for every model of the chain
    group = sdk.GroupSyncRead(port, handler, 132, 4)
    for servo_id in found:
        assert group.addParam(servo_id)
    assert group.txRxPacket() == sdk.COMM_SUCCESS
    assert all(group.getData(i, 132, 4) == 2048 for i in found)  # every joint at 0 rad
