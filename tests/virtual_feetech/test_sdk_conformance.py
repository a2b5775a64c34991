"""The vendor SDK (``scservo_sdk``: PortHandler, PacketHandler(0), GroupSyncRead/GroupSyncWrite) against
the virtual SO-101 bus over its real pty: every instruction it sends gets the answer an STS3215 gives."""

import scservo_sdk as scs

from pearl_robot.feetech.control_table import STS3215
from pearl_robot.feetech.protocol import StatusError, to_signed

POS = STS3215["present_position"].address
GOAL = STS3215["goal_position"].address
TORQUE = STS3215["torque_enable"].address


def test_ping_every_servo_reads_the_sts3215_model_number(make_bus, make_sdk, spec):
    bus = make_bus()
    sdk = make_sdk(bus)
    for joint in spec.joints:
        model, result, error = sdk.ph.ping(sdk.port, joint.servo_id)  # PING, then READ of address 3
        assert (model, result, error) == (777, scs.COMM_SUCCESS, 0)
    _, result, _ = sdk.ph.ping(sdk.port, 7)
    assert result == scs.COMM_RX_TIMEOUT  # nobody there: no answer
    assert bus.stats["instructions"] == 2 * spec.num_joints + 1


def test_read_and_write_registers_with_the_sdk(make_bus, make_sdk):
    bus = make_bus(hidden_offsets_ticks=[0, 100, -100, 0, 0, 0])
    sdk = make_sdk(bus)
    assert sdk.ph.read2ByteTxRx(sdk.port, 2, POS) == (2148, scs.COMM_SUCCESS, 0)
    assert sdk.ph.read2ByteTxRx(sdk.port, 3, POS) == (1948, scs.COMM_SUCCESS, 0)
    assert sdk.ph.read1ByteTxRx(sdk.port, 1, STS3215["return_delay_time"].address)[0] == 250  # factory: 500 us
    assert sdk.ph.read1ByteTxRx(sdk.port, 4, STS3215["present_voltage"].address)[0] == 74  # 7.4 V supply

    assert sdk.write1(1, TORQUE, 1) == (scs.COMM_SUCCESS, 0)
    assert sdk.write2(1, GOAL, 3000) == (scs.COMM_SUCCESS, 0)
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, GOAL)[0] == 3000
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, POS)[0] == 3000  # ideal plant: at the goal at once
    assert bus.servo(1).get("goal_position") == 3000

    # a read-only item keeps its value; a value outside an item's range is not stored (no error bit says so)
    assert sdk.write2(1, POS, 5) == (scs.COMM_SUCCESS, 0)
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, POS)[0] == 3000
    assert sdk.write1(1, STS3215["operating_mode"].address, 9) == (scs.COMM_SUCCESS, 0)
    assert bus.servo(1).get("operating_mode") == 0


def test_sync_read_and_sync_write_move_every_servo(make_bus, make_sdk, spec):
    bus = make_bus()
    sdk = make_sdk(bus)
    ids = [j.servo_id for j in spec.joints]
    writer = scs.GroupSyncWrite(sdk.port, sdk.ph, TORQUE, 1)
    for i in ids:
        writer.addParam(i, [1])
    assert writer.txPacket() == scs.COMM_SUCCESS
    goals = {i: 1000 + 300 * i for i in ids}
    writer = scs.GroupSyncWrite(sdk.port, sdk.ph, GOAL, 2)
    for i, goal in goals.items():
        writer.addParam(i, [scs.SCS_LOBYTE(goal), scs.SCS_HIBYTE(goal)])
    assert writer.txPacket() == scs.COMM_SUCCESS

    reader = scs.GroupSyncRead(sdk.port, sdk.ph, POS, 8)  # position, speed, load, voltage, temperature
    for i in ids:
        assert reader.addParam(i)
    assert reader.txRxPacket() == scs.COMM_SUCCESS
    assert {i: reader.getData(i, POS, 2) for i in ids} == goals
    assert all(reader.getData(i, POS + 6, 1) == 74 for i in ids)
    assert bus.stats["replies"] == len(ids) and bus.stats["instructions"] == 3  # no status to a broadcast


def test_sync_read_is_answered_in_the_order_named_by_the_servos_there(make_bus, make_sdk):
    bus = make_bus(return_delay_time=0)
    sdk = make_sdk(bus)
    assert sdk.ph.syncReadTx(sdk.port, POS, 2, [5, 9, 2], 3) == scs.COMM_SUCCESS
    first, second = (sdk.ph.readRx(sdk.port, i, 2) for i in (5, 2))
    assert first == ([0x00, 0x08], scs.COMM_SUCCESS, 0) and second == ([0x00, 0x08], scs.COMM_SUCCESS, 0)
    assert bus.stats["replies"] == 2  # id 9 is not on the bus


def test_reg_write_waits_for_action(make_bus, make_sdk):
    bus = make_bus()
    sdk = make_sdk(bus)
    for i in (1, 2):
        assert sdk.write1(i, TORQUE, 1) == (scs.COMM_SUCCESS, 0)
        assert sdk.ph.regWriteTxRx(sdk.port, i, GOAL, 2, [0x10, 0x09]) == (scs.COMM_SUCCESS, 0)  # 2320
    assert sdk.ph.read2ByteTxRx(sdk.port, 1, POS)[0] == 2048
    assert sdk.ph.read1ByteTxRx(sdk.port, 1, STS3215["registered_instruction"].address)[0] == 1
    assert sdk.ph.action(sdk.port, scs.BROADCAST_ID) == scs.COMM_SUCCESS  # no status to a broadcast
    assert [sdk.ph.read2ByteTxRx(sdk.port, i, POS)[0] for i in (1, 2, 3)] == [2320, 2320, 2048]
    assert sdk.ph.read1ByteTxRx(sdk.port, 1, STS3215["registered_instruction"].address)[0] == 0


def test_broadcast_write_changes_every_servo_and_gets_no_status(make_bus, make_sdk, spec):
    bus = make_bus()
    sdk = make_sdk(bus)
    address = STS3215["acceleration"].address
    assert sdk.ph.write1ByteTxOnly(sdk.port, scs.BROADCAST_ID, address, 50) == scs.COMM_SUCCESS
    assert sdk.read(3, address, 1) == ([50], scs.COMM_SUCCESS, 0)  # the read is answered, not an old status
    assert all(s.get("acceleration") == 50 for s in bus.servos)
    assert bus.stats["replies"] == 1


def test_response_status_level_0_answers_reads_and_pings_only(make_bus, make_sdk):
    bus = make_bus()
    sdk = make_sdk(bus)
    assert sdk.write1(4, STS3215["status_return_level"].address, 0) == (scs.COMM_SUCCESS, 0)
    assert sdk.write1(4, TORQUE, 1)[0] == scs.COMM_RX_TIMEOUT  # done, but not answered
    assert bus.servo(4).torque_on
    assert sdk.ph.ping(sdk.port, 4)[:2] == (777, scs.COMM_SUCCESS)


def test_a_new_id_answers_from_the_next_instruction(make_bus, make_sdk):
    bus = make_bus()
    sdk = make_sdk(bus)
    assert sdk.write1(6, STS3215["id"].address, 12) == (scs.COMM_SUCCESS, 0)  # answered by id 6
    assert sdk.ph.ping(sdk.port, 12)[:2] == (777, scs.COMM_SUCCESS)
    assert sdk.ph.ping(sdk.port, 6)[1] == scs.COMM_RX_TIMEOUT
    assert bus.servo(12).joint_index == 5


def test_a_client_at_another_baud_rate_gets_no_answer(make_bus, make_sdk):
    bus = make_bus(servo_baud_rates=[1_000_000] * 5 + [500_000])
    sdk = make_sdk(bus)
    assert sdk.ph.ping(sdk.port, 1)[1] == scs.COMM_SUCCESS
    assert sdk.ph.ping(sdk.port, 6)[1] == scs.COMM_RX_TIMEOUT
    assert sdk.port.setBaudRate(500_000)
    assert sdk.ph.ping(sdk.port, 6)[1] == scs.COMM_SUCCESS
    assert sdk.ph.ping(sdk.port, 1)[1] == scs.COMM_RX_TIMEOUT
    assert bus.stats["wrong_baud"] == 0  # each was heard by someone; only a speed nobody has counts
    assert sdk.port.setBaudRate(115_200)
    assert sdk.ph.ping(sdk.port, 1)[1] == scs.COMM_RX_TIMEOUT
    assert bus.stats["wrong_baud"] == 1


def test_status_bits_and_signs_decode_as_the_sdk_does(make_bus, make_sdk):
    """Negative values are sign-magnitude: the SDK's SCS_TOHOST reads them back."""
    bus = make_bus()
    sdk = make_sdk(bus)
    servo = bus.servo(2)
    servo.temperature = 90  # above Max Temperature Limit (70): OVERHEAT, and the default unloading condition
    assert sdk.write1(2, TORQUE, 1) == (scs.COMM_SUCCESS, StatusError.OVERHEAT)
    assert not servo.torque_on  # protection: torque off
    assert "Overheat" in sdk.ph.getRxPacketError(StatusError.OVERHEAT)
    servo.temperature = 30
    offset = STS3215["homing_offset"]
    assert sdk.write2(2, offset.address, scs.SCS_TOSCS(-300, offset.sign_bit)) == (scs.COMM_SUCCESS, 0)
    raw = sdk.ph.read2ByteTxRx(sdk.port, 2, offset.address)[0]
    assert raw == 300 | 1 << 11 and scs.SCS_TOHOST(raw, 11) == to_signed(raw, 11) == -300
    assert sdk.ph.read2ByteTxRx(sdk.port, 2, POS)[0] == 2348  # present = encoder - homing offset
