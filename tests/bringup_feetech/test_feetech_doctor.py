"""``pearl-robot doctor --hardware so101`` through a real pty against the virtual Feetech bus."""

from pearl_robot.feetech.bus import FeetechBus
from pearl_robot.feetech.protocol import StatusError

ARM = [1, 2, 3, 4, 5, 6]
SCAN = [1_000_000, 500_000, 250_000, 128_000, 115_200, 76_800, 57_600, 38_400]  # Feetech's, the arm's first


def errors(report):
    return [f for f in report["findings"] if f["severity"] == "error" and not f["fixed"]]


def warnings(report, text):
    return [f for f in report["findings"] if f["severity"] == "warn" and text in f["what"]]


def test_a_healthy_so101_has_no_errors(make_arm, doctor):
    bus = make_arm(return_delay_time=0)
    code, report = doctor(bus)
    assert code == 0 and not errors(report) and report["exit_code"] == 0, report["findings"]
    assert [row["baud"] for row in report["baud_scan"]] == SCAN
    assert report["baud_scan"][0] == {"baud": 1_000_000, "ids": ARM, "crc_errors": 0}
    assert all(not row["ids"] for row in report["baud_scan"][1:])
    for servo_id in ARM:
        servo = report["servos"][str(servo_id)]
        assert servo["found"] and servo["model"] == servo["expected_model"] == "STS3215"
        assert (servo["model_number"], servo["firmware"], servo["baud"]) == (777, 3, 1_000_000)
        assert (servo["return_delay_us"], servo["hardware_error"], servo["torque_enabled"]) == (0.0, 0, False)
        assert report["round_trip_ms"][str(servo_id)]["p50"] > 0
        assert report["round_trip_ms"][str(servo_id)]["failures"] == 0
    stress = report["stress"]
    assert stress["cycles"] == 50 and stress["ids"] == ARM and sum(stress["timeouts_per_id"].values()) == 0
    assert stress["crc_errors"] == 0 and stress["cycle_ms_p50"] > 0
    assert "Return Delay Time 0 on every servo" in [f["what"] for f in report["findings"]]
    assert report["fixed"] == [] and report["eeprom_writes"] == 0


def test_the_factory_return_delay_is_found_and_fixed_through_the_lock(make_arm, doctor):
    bus = make_arm()  # factory Return Delay Time 250: 500 us before every reply
    code, report = doctor(bus)
    slow = warnings(report, "Return Delay Time 500 us")
    assert code == 0 and sorted(f["servo_id"] for f in slow) == ARM
    assert all("--hardware so101 --fix" in f["recommendation"] for f in slow)
    assert all(s.get("return_delay_time") == 250 for s in bus.servos)  # no --fix: nothing written

    code, fixed = doctor(bus, "--fix")
    assert code == 0 and fixed["eeprom_writes"] == len(ARM)
    assert sorted(c["servo_id"] for c in fixed["fixed"]) == ARM
    assert all((c["item"], c["before"], c["after"]) == ("return_delay_us", 500.0, 0.0) for c in fixed["fixed"])
    assert all(f["fixed"] for f in warnings(fixed, "Return Delay Time"))
    assert all(s.get("return_delay_time") == 0 and s.get("lock") == 1 for s in bus.servos)  # relocked

    bus.power_cycle()  # kept in flash: the write went through the Lock
    assert all(s.get("return_delay_time") == 0 for s in bus.servos)
    code, again = doctor(bus, "--fix")
    assert code == 0 and again["fixed"] == [] and again["eeprom_writes"] == 0
    assert not warnings(again, "Return Delay Time")
    assert all(again["servos"][str(i)]["return_delay_us"] == 0.0 for i in ARM)


def test_a_servo_with_torque_on_keeps_its_return_delay_unless_told(make_arm, doctor):
    bus = make_arm()
    with FeetechBus.open(bus.device_path, timeout_margin_ms=20) as client:
        client.write_value(4, "torque_enable", 1)  # it may be holding the arm up
    code, report = doctor(bus, "--fix")
    assert bus.servo(4).torque_on and bus.servo(4).get("return_delay_time") == 250
    (held,) = [f for f in warnings(report, "Return Delay Time") if f["servo_id"] == 4]
    assert not held["fixed"] and "torque is on" in held["recommendation"]
    code, report = doctor(bus, "--fix", "--yes")
    assert not bus.servo(4).torque_on and bus.servo(4).get("return_delay_time") == 0
    assert [c["servo_id"] for c in report["fixed"]] == [4]


def test_a_missing_servo_is_an_error_with_feetech_advice(make_arm, doctor, edited_yaml):
    def add_a_seventh(data):
        data["joints"].append({**data["joints"][0], "name": "extra", "id": 7})
        data["home_rad"].append(0.0)

    hardware = edited_yaml(add_a_seventh)
    bus = make_arm(return_delay_time=0)
    code, report = doctor(bus, hardware=hardware)
    assert code == 1 and not report["servos"]["7"]["found"]
    (missing,) = errors(report)
    assert missing["servo_id"] == 7 and "does not answer at any baud rate" in missing["what"]
    advice = missing["recommendation"]
    assert "a new servo answers as id 1 at 1000000" in advice and "57600" not in advice
    assert f"setup-servo --robot serial:{bus.device_path} --hardware {hardware} --id 7 --baud 1000000" in advice
    assert report["stress"]["ids"] == ARM  # the servos that are there are still measured


def test_a_servo_at_another_baud_rate_is_found_there(make_arm, doctor):
    bauds = [1_000_000, 1_000_000, 115_200, 1_000_000, 1_000_000, 1_000_000]
    bus = make_arm(return_delay_time=0, servo_baud_rates=bauds)
    code, report = doctor(bus)
    assert code == 1
    scan = {row["baud"]: row["ids"] for row in report["baud_scan"]}
    assert scan[1_000_000] == [1, 2, 4, 5, 6] and scan[115_200] == [3]
    assert report["servos"]["3"]["baud"] == 115_200 and report["servos"]["3"]["model"] == "STS3215"
    (wrong,) = errors(report)
    assert wrong["servo_id"] == 3 and "115200" in wrong["what"]
    assert "setup-servo" in wrong["recommendation"] and "--id 3 --baud 1000000" in wrong["recommendation"]


def test_a_wrong_model_is_an_error(make_arm, doctor):
    bus = make_arm(return_delay_time=0)
    # The virtual bus cannot run an SCS0009 (VirtualFeetechServo needs a Homing Offset the SCS table lacks):
    # servo 3 gets an SCS0009's identity, its model number big endian as SCS servos keep it; servo 5 a
    # model number no table knows.
    bus.servo(3).memory[3:5] = (1284).to_bytes(2, "big")
    bus.servo(5).memory[3:5] = (2825).to_bytes(2, "little")
    code, report = doctor(bus)  # checked against so101.yaml: six STS3215
    assert code == 1
    assert (report["servos"]["3"]["model"], report["servos"]["3"]["model_number"]) == ("SCS0009", 1284)
    assert report["servos"]["3"]["return_delay_us"] == 0.0  # inspected with the SCS table
    assert report["servos"]["5"]["model"] == "unknown model 2825"
    wrong = {f["servo_id"]: f["what"] for f in errors(report)}
    assert sorted(wrong) == [3, 5]
    assert "is a SCS0009, the YAML says STS3215" in wrong[3]
    assert "is a unknown model 2825, the YAML says STS3215" in wrong[5]
    assert not any(f["what"].startswith("all 6 servos") for f in report["findings"])


def test_an_error_status_says_power_cycle_not_reboot(make_arm, doctor):
    bus = make_arm(return_delay_time=0)
    bus.inject_hardware_error(2, StatusError.OVERLOAD)
    code, report = doctor(bus, "--yes")
    assert code == 1 and bus.servo(2).latched  # nothing could clear it: Feetech servos have no REBOOT
    (fault,) = errors(report)
    assert fault["servo_id"] == 2 and "overload" in fault["what"]
    assert "power off and on" in fault["recommendation"] and "REBOOT" in fault["recommendation"]
    assert report["servos"]["2"]["hardware_error_names"] == ["overload"] and report["fixed"] == []
    bus.power_cycle(2)
    code, report = doctor(bus)
    assert code == 0 and report["servos"]["2"]["hardware_error"] == 0


def test_the_text_report_names_the_feetech_servos(make_arm, cli):
    bus = make_arm()
    robot = f"{bus.address}?timeout_margin_ms=20"
    code, out, err = cli("doctor", "--robot", robot, "--hardware", "so101", "--scan-wait-ms", 20, "--cycles", 20)
    assert code == 0, err
    assert "(so101, 1000000 baud)" in out and "1000000: 1, 2, 3, 4, 5, 6" in out
    assert "STS3215 fw 3 at 1000000" in out and "does not answer" not in out
    assert "WARN  id 1: Return Delay Time 500 us" in out and "no errors" in out
