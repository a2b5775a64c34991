"""The control tables of the Dynamixel models people own, spot-checked against their e-manual pages.

Sources (ROBOTIS e-manual, emanual.robotis.com/docs/en/dxl/x/<model>/; the page sources are
ROBOTIS-GIT/emanual docs/en/dxl/x/<model>.md, the spec figures _data/dxl_x_info.yml):
- xl330-m288: Model Number 1,200; Baud Rate 0~6; Current Limit (38) 1,750 in 1 [mA]; Velocity Limit (44)
  445 of 0~2,047; Max/Min Voltage Limit (32/34) 70/35 in 31~70; PWM Slope (62) 140; Shutdown (63) 53;
  Velocity I/P 1,600/180, Position P 400; Indirect Address 1 (168) ... 20 (206) defaulting to 208...227,
  range 64~227; Indirect Data 1 (208) ... 20 (227); 0.52 N.m, 1.47 A, 103 rev/min at 5.0 V.
- xl330-m077: Model Number 1,190; Velocity Limit 1,620; Velocity I/P 400/40, Position I 400, P 400;
  0.215 N.m, 1.47 A, 383 rev/min at 5.0 V.
- xc330-m288: Model Number 1,240; Current Limit 2,352 in 1.0 [mA]; Velocity Limit 350; Shutdown 52;
  Velocity I/P 1,600/50, Position D/P 500/1,100; 0.93 N.m, 1.80 A, 81 rev/min at 5.0 V.
- xm540-w270: Model Number 1,120; Baud Rate 0~7; Current Limit 2,047 in 2.69 [mA]; Velocity Limit 128;
  External Port Mode 1-3 (56-58, default 3), External Port Data 1-3 (152, 154, 156; 2 bytes); Indirect
  Address 1 (168) -> 224, Address 29 (578) -> 634, range 64~661; 10.6 N.m, 4.4 A, 30 rev/min at 12.0 V.
- xh430-w350: Model Number 1,000 (dynamixel_sdk's examples and dynamixel_workbench list XH430_W350 1000,
  XH430_W210 1010); Current Limit 648 in 2.69 [mA]; Velocity Limit 130; Position P 900; 3.4 N.m, 1.3 A,
  30 rev/min at 12.0 V.
- control_table_baudrate_2.md: the XL330/XC330 accept 9,600 bps to 4M (values 0-6); the others add 4.5M (7).
- FAST SYNC READ: X430/X540 from firmware 45, X330 from firmware 46.
"""

import pytest

from pearl_robot.dynamixel.control_table import (
    BAUD_RATES,
    MODELS,
    MODELS_BY_NUMBER,
    XC330_M288,
    XH430_W350,
    XL330_M077,
    XL330_M288,
    XL430_W250,
    XM430_W350,
    XM540_W270,
    common_address,
    control_table,
    model_name,
)

NEW_MODELS = (XL330_M288, XL330_M077, XC330_M288, XM540_W270, XH430_W350)

# (table, item, address, size, access) straight from each page's control table
ITEMS = [
    (XL330_M288, "baud_rate", 8, 1, "RW"),
    (XL330_M288, "current_limit", 38, 2, "RW"),
    (XL330_M288, "velocity_limit", 44, 4, "RW"),
    (XL330_M288, "startup_configuration", 60, 1, "RW"),
    (XL330_M288, "pwm_slope", 62, 1, "RW"),
    (XL330_M288, "shutdown", 63, 1, "RW"),
    (XL330_M288, "bus_watchdog", 98, 1, "RW"),
    (XL330_M288, "goal_current", 102, 2, "RW"),
    (XL330_M288, "goal_position", 116, 4, "RW"),
    (XL330_M288, "realtime_tick", 120, 2, "R"),
    (XL330_M288, "present_current", 126, 2, "R"),
    (XL330_M288, "present_position", 132, 4, "R"),
    (XL330_M288, "backup_ready", 147, 1, "R"),
    (XL330_M288, "indirect_address_1", 168, 2, "RW"),
    (XL330_M288, "indirect_address_20", 206, 2, "RW"),
    (XL330_M288, "indirect_data_1", 208, 1, "RW"),
    (XL330_M288, "indirect_data_20", 227, 1, "RW"),
    (XL330_M077, "indirect_data_1", 208, 1, "RW"),
    (XL330_M077, "present_current", 126, 2, "R"),
    (XC330_M288, "current_limit", 38, 2, "RW"),
    (XC330_M288, "indirect_data_20", 227, 1, "RW"),
    (XM540_W270, "external_port_mode_1", 56, 1, "RW"),
    (XM540_W270, "external_port_mode_3", 58, 1, "RW"),
    (XM540_W270, "startup_configuration", 60, 1, "RW"),
    (XM540_W270, "external_port_data_1", 152, 2, "RW"),
    (XM540_W270, "external_port_data_3", 156, 2, "RW"),
    (XM540_W270, "indirect_address_28", 222, 2, "RW"),
    (XM540_W270, "indirect_data_1", 224, 1, "RW"),
    (XM540_W270, "indirect_address_29", 578, 2, "RW"),
    (XM540_W270, "indirect_data_56", 661, 1, "RW"),
    (XH430_W350, "current_limit", 38, 2, "RW"),
    (XH430_W350, "startup_configuration", 60, 1, "RW"),
    (XH430_W350, "backup_ready", 147, 1, "R"),
    (XH430_W350, "indirect_data_1", 224, 1, "RW"),
    (XH430_W350, "indirect_data_29", 634, 1, "RW"),
]


@pytest.mark.parametrize("table, name, address, size, access", ITEMS, ids=[f"{t.model}-{n}" for t, n, *_ in ITEMS])
def test_items_sit_where_the_emanual_puts_them(table, name, address, size, access):
    item = table[name]
    assert (item.address, item.size, item.access) == (address, size, access)
    assert item.eeprom == (address < 64)


def test_model_numbers_and_lookup_by_yaml_name():
    assert [t.model_number for t in NEW_MODELS] == [1200, 1190, 1240, 1120, 1000]
    for table in NEW_MODELS:
        assert MODELS_BY_NUMBER[table.model_number] is table
        assert MODELS[table.model] is table
    assert control_table("XL330-M288-T") is XL330_M288
    assert control_table("xh430-w350-r") is XH430_W350
    assert control_table("XM540-W270-T") is XM540_W270
    assert model_name(1200) == "XL330-M288" and model_name(1060) == "XL430-W250"
    assert model_name(4242) is None


def test_defaults_and_ranges_differ_per_model_as_documented():
    xl = XL330_M288
    assert (xl["current_limit"].default, xl["current_limit"].maximum) == (1750, 1750)
    assert (xl["velocity_limit"].default, xl["velocity_limit"].maximum) == (445, 2047)
    assert (xl["max_voltage_limit"].default, xl["min_voltage_limit"].default) == (70, 35)
    assert (xl["max_voltage_limit"].minimum, xl["max_voltage_limit"].maximum) == (31, 70)
    assert xl["temperature_limit"].default == 70 and xl["shutdown"].default == 53
    assert xl["pwm_slope"].default == 140 and xl["protocol_type"].maximum == 22
    assert [xl[g].default for g in ("velocity_i_gain", "velocity_p_gain", "position_p_gain")] == [1600, 180, 400]
    assert xl["indirect_address_1"].default == 208 and xl["indirect_address_20"].default == 227
    assert (xl["indirect_address_1"].minimum, xl["indirect_address_1"].maximum) == (64, 227)
    assert xl.size == 228

    assert XL330_M077["velocity_limit"].default == 1620
    assert XL330_M077["position_i_gain"].default == 400 and XL330_M077["velocity_p_gain"].default == 40
    assert XC330_M288["current_limit"].default == 2352 and XC330_M288["velocity_limit"].default == 350
    assert XC330_M288["shutdown"].default == 52 and XC330_M288["position_d_gain"].default == 500
    assert XC330_M288["position_p_gain"].default == 1100

    assert XM540_W270["current_limit"].default == 2047 and XM540_W270["velocity_limit"].default == 128
    assert XM540_W270["external_port_mode_2"].default == 3 and XM540_W270["drive_mode"].maximum == 15
    assert XM540_W270["indirect_address_29"].default == 634 and XM540_W270["indirect_address_1"].maximum == 661
    assert XH430_W350["current_limit"].default == 648 and XH430_W350["velocity_limit"].default == 130
    assert XH430_W350["position_p_gain"].default == 900 and XH430_W350.size == 662


def test_units_of_current_differ_between_x330_and_x430():
    for table in (XL330_M288, XL330_M077, XC330_M288):
        assert table["present_current"].scale == table["goal_current"].scale == 0.001  # 1 mA
    for table in (XM540_W270, XH430_W350, XM430_W350):
        assert table["present_current"].scale == pytest.approx(0.00269)  # 2.69 mA
    assert "present_current" not in XL430_W250 and XL430_W250["present_load"].scale == 0.001  # 0.1 %


def test_baud_rates_each_model_accepts():
    x330 = {0: 9_600, 1: 57_600, 2: 115_200, 3: 1_000_000, 4: 2_000_000, 5: 3_000_000, 6: 4_000_000}
    for table in (XL330_M288, XL330_M077, XC330_M288):
        assert table.baud_rates == x330
    for table in (XM540_W270, XH430_W350, XL430_W250):
        assert table.baud_rates == BAUD_RATES and table.baud_rates[7] == 4_500_000


def test_spec_sheet_figures_and_fast_sync_read_firmware():
    figures = {
        t.model: (t.stall_torque_nm, t.stall_current_a, t.no_load_speed_rpm, t.nominal_voltage_v) for t in NEW_MODELS
    }
    assert figures == {
        "XL330-M288": (0.52, 1.47, 103.0, 5.0),
        "XL330-M077": (0.215, 1.47, 383.0, 5.0),
        "XC330-M288": (0.93, 1.80, 81.0, 5.0),
        "XM540-W270": (10.6, 4.4, 30.0, 12.0),
        "XH430-W350": (3.4, 1.3, 30.0, 12.0),
    }
    for table in (XL330_M288, XL330_M077, XC330_M288):
        assert table.has_fast_sync_read(46) and not table.has_fast_sync_read(45)
    for table in (XM540_W270, XH430_W350):
        assert table.has_fast_sync_read(45) and not table.has_fast_sync_read(44)


def test_a_mixed_chain_shares_the_arm_items_but_not_the_indirect_block():
    """A Koch arm (XL430 + XL330): one SYNC WRITE of Goal Position and Torque Enable covers every servo, one
    SYNC READ of Present Position too; the indirect blocks are at 224 and 208, so no SYNC READ covers them."""
    chain = (XL430_W250, XL330_M288, XM540_W270, XH430_W350, XC330_M288)
    for names in (["torque_enable"], ["goal_position"], ["bus_watchdog"], ["present_velocity", "present_position"]):
        assert common_address(chain, names) is not None
    assert common_address(chain, ["indirect_data_1"]) is None
    assert common_address((XL430_W250, XM540_W270, XH430_W350), ["indirect_data_1"]) == (224, 1)
