"""Control tables as data: the addresses and sizes the e-manual documents, nothing overlapping."""

import pytest

from pearl_robot.dynamixel.control_table import (
    MODELS,
    MODELS_BY_NUMBER,
    XL430_W250,
    XM430_W350,
    HardwareError,
    control_table,
    hardware_error_names,
)

# (name, address, size, access) from the XM430-W350 e-manual page
XM430_ITEMS = [
    ("model_number", 0, 2, "R"),
    ("model_information", 2, 4, "R"),
    ("firmware_version", 6, 1, "R"),
    ("id", 7, 1, "RW"),
    ("baud_rate", 8, 1, "RW"),
    ("return_delay_time", 9, 1, "RW"),
    ("drive_mode", 10, 1, "RW"),
    ("operating_mode", 11, 1, "RW"),
    ("secondary_id", 12, 1, "RW"),
    ("protocol_type", 13, 1, "RW"),
    ("homing_offset", 20, 4, "RW"),
    ("moving_threshold", 24, 4, "RW"),
    ("temperature_limit", 31, 1, "RW"),
    ("max_voltage_limit", 32, 2, "RW"),
    ("min_voltage_limit", 34, 2, "RW"),
    ("pwm_limit", 36, 2, "RW"),
    ("current_limit", 38, 2, "RW"),
    ("velocity_limit", 44, 4, "RW"),
    ("max_position_limit", 48, 4, "RW"),
    ("min_position_limit", 52, 4, "RW"),
    ("shutdown", 63, 1, "RW"),
    ("torque_enable", 64, 1, "RW"),
    ("led", 65, 1, "RW"),
    ("status_return_level", 68, 1, "RW"),
    ("registered_instruction", 69, 1, "R"),
    ("hardware_error_status", 70, 1, "R"),
    ("velocity_i_gain", 76, 2, "RW"),
    ("velocity_p_gain", 78, 2, "RW"),
    ("position_d_gain", 80, 2, "RW"),
    ("position_i_gain", 82, 2, "RW"),
    ("position_p_gain", 84, 2, "RW"),
    ("feedforward_2nd_gain", 88, 2, "RW"),
    ("feedforward_1st_gain", 90, 2, "RW"),
    ("bus_watchdog", 98, 1, "RW"),
    ("goal_pwm", 100, 2, "RW"),
    ("goal_current", 102, 2, "RW"),
    ("goal_velocity", 104, 4, "RW"),
    ("profile_acceleration", 108, 4, "RW"),
    ("profile_velocity", 112, 4, "RW"),
    ("goal_position", 116, 4, "RW"),
    ("realtime_tick", 120, 2, "R"),
    ("moving", 122, 1, "R"),
    ("moving_status", 123, 1, "R"),
    ("present_pwm", 124, 2, "R"),
    ("present_current", 126, 2, "R"),
    ("present_velocity", 128, 4, "R"),
    ("present_position", 132, 4, "R"),
    ("velocity_trajectory", 136, 4, "R"),
    ("position_trajectory", 140, 4, "R"),
    ("present_input_voltage", 144, 2, "R"),
    ("present_temperature", 146, 1, "R"),
    ("indirect_address_1", 168, 2, "RW"),
    ("indirect_address_28", 222, 2, "RW"),
    ("indirect_data_1", 224, 1, "RW"),
    ("indirect_data_28", 251, 1, "RW"),
    ("indirect_address_29", 578, 2, "RW"),
    ("indirect_address_56", 632, 2, "RW"),
    ("indirect_data_29", 634, 1, "RW"),
    ("indirect_data_56", 661, 1, "RW"),
]


@pytest.mark.parametrize("name, address, size, access", XM430_ITEMS, ids=[i[0] for i in XM430_ITEMS])
def test_xm430_w350_items(name, address, size, access):
    item = XM430_W350[name]
    assert (item.address, item.size, item.access) == (address, size, access)
    assert item.eeprom == (address < 64)


def test_model_numbers_and_defaults():
    assert XM430_W350.model_number == 1020
    assert XL430_W250.model_number == 1060
    assert MODELS_BY_NUMBER[1020] is XM430_W350
    assert XM430_W350["return_delay_time"].default == 250
    assert XM430_W350["status_return_level"].default == 2
    assert XM430_W350["shutdown"].default == 52  # overload, electrical shock, overheating
    assert XM430_W350["indirect_address_1"].default == 224
    assert XM430_W350["indirect_address_29"].default == 634
    assert XM430_W350.size == 662


def test_xl430_w250_differences():
    assert "present_load" in XL430_W250 and "present_current" not in XL430_W250
    assert "goal_current" not in XL430_W250 and "current_limit" not in XL430_W250
    assert XL430_W250["startup_configuration"].address == 60
    assert XL430_W250["backup_ready"].address == 147
    assert XL430_W250["temperature_limit"].default == 72
    # the items every arm needs sit at the same addresses: one SYNC READ/WRITE covers a mixed chain
    for name in ("torque_enable", "goal_position", "present_velocity", "present_position", "hardware_error_status"):
        assert XL430_W250[name].address == XM430_W350[name].address


@pytest.mark.parametrize("table", list(MODELS.values()), ids=list(MODELS))
def test_items_never_overlap_and_lookups_agree(table):
    for item in table.fields:
        for a in range(item.address, item.end):
            assert table.field_at(a) is item
        assert item.size in (1, 2, 4)
        if item.writable:
            assert item.in_range(item.default), item.name
    assert table.field_at(14) is None  # a documented gap
    assert table.field_at(10_000) is None
    names = [f.name for f in table.fields_in(126, 10)]
    assert names[1:] == ["present_velocity", "present_position"]


def test_lookup_by_yaml_name():
    assert control_table("XM430-W350") is XM430_W350
    assert control_table("xm430-w350-t") is XM430_W350
    with pytest.raises(KeyError, match="known: "):
        control_table("AX-12A")


def test_encode_decode_signed_items():
    assert XM430_W350.decode("present_velocity", XM430_W350.encode("present_velocity", -3)) == -3
    assert XM430_W350.encode("goal_position", 2048) == b"\x00\x08\x00\x00"


def test_hardware_error_bits():
    assert int(HardwareError.OVERLOAD) == 0x20
    assert hardware_error_names(0x25) == ["input voltage", "overheating", "overload"]
