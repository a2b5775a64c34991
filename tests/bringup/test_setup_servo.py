"""``pearl-robot setup-servo`` on a bench bus of loose virtual servos, through a real pty."""

import pytest
from waiting import FAST_SCAN

from pearl_robot.dynamixel.bus import CommError, DynamixelBus
from pearl_robot.dynamixel.control_table import XL430_W250

FACTORY = 1  # Baud Rate code 1: 57600, how a new servo comes as id 1


def pings(bus, servo_id, baud):
    with DynamixelBus.open(bus.device_path, baud, timeout_margin_ms=20, retries=1) as client:
        try:
            return client.ping(servo_id)[0]
        except CommError:
            return None


def test_a_new_servo_gets_its_id_and_baud_rate(make_servos, cli):
    bus = make_servos((1, FACTORY))
    code, out, err = cli("setup-servo", "--robot", bus.address, "--id", 11, "--baud", 1_000_000, "--yes", *FAST_SCAN)
    assert code == 0, err
    assert "found XM430-W350" in out and "id 1 at 57600" in out and "id 11 at 1000000" in out
    servo = bus.servos[0]
    assert (servo.id, servo.get("baud_rate")) == (11, 3)
    assert pings(bus, 11, 1_000_000) == 1020
    assert pings(bus, 11, 57_600) is None and pings(bus, 1, 57_600) is None

    code, out, err = cli("setup-servo", "--robot", bus.address, "--id", 11, "--yes", *FAST_SCAN)  # baud: the YAML's
    assert code == 0 and out.splitlines()[-1].startswith("already: id 11 at 1000000")


def test_only_the_baud_rate_or_only_the_id_changes(make_servos, cli):
    bus = make_servos((12, FACTORY))
    code, out, _ = cli("setup-servo", "--robot", bus.address, "--id", 12, "--baud", 4_500_000, "--yes", *FAST_SCAN)
    assert code == 0 and "baud_rate 57600 -> 4500000" in out and "id 12: id" not in out
    assert pings(bus, 12, 4_500_000) == 1020
    code, out, _ = cli("setup-servo", "--robot", bus.address, "--id", 13, "--baud", 4_500_000, "--yes", *FAST_SCAN)
    assert code == 0 and "id 12 -> 13" in out and "baud_rate" not in out
    assert bus.servos[0].id == 13


def test_several_servos_are_a_clear_error(make_bus, cli):
    bus = make_bus(servo_baud_rates=[1_000_000] * 4 + [57_600])
    code, out, err = cli("setup-servo", "--robot", bus.address, "--id", 11, "--yes", *FAST_SCAN)
    assert code == 1 and err.count("\n") == 1 and "several servos answer" in err
    assert "id 11 at 1000000 (XM430-W350)" in err and "id 15 at 57600" in err
    assert "connect only the one" in err
    assert [s.id for s in bus.servos] == [11, 12, 13, 14, 15]


def test_no_servo_is_a_clear_error(make_servos, cli):
    bus = make_servos()
    code, out, err = cli("setup-servo", "--robot", bus.address, "--id", 11, "--yes", *FAST_SCAN)
    assert code == 1 and err.count("\n") == 1 and "no servo answers" in err


@pytest.mark.parametrize(
    ("servo_id", "baud", "message"),
    [(253, 1_000_000, "0..252"), (-1, 1_000_000, "0..252"), (11, 1_234_567, "not in the Baud Rate table")],
)
def test_bad_targets_are_refused_before_touching_the_bus(cli, servo_id, baud, message):
    code, out, err = cli("setup-servo", "--robot", "serial:/dev/nonexistent", "--id", servo_id, "--baud", baud)
    assert code == 1 and err.count("\n") == 1 and message in err


def test_nothing_is_written_unconfirmed_or_against_the_yaml(make_servos, cli):
    bus = make_servos((1, FACTORY))
    code, out, err = cli("setup-servo", "--robot", bus.address, "--id", 11, *FAST_SCAN)  # CI: nobody to ask
    assert code == 1 and "not confirmed" in err.splitlines()[-1] and bus.servos[0].id == 1

    bus = make_servos((1, FACTORY, XL430_W250))
    code, out, err = cli("setup-servo", "--robot", bus.address, "--id", 11, "--yes", *FAST_SCAN)
    assert code == 1 and err.count("\n") == 1 and "is a XM430-W350; this is a XL430-W250" in err
    assert bus.servos[0].id == 1
