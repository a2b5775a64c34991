"""``pearl-robot setup-servo --hardware so101`` on a bench bus of loose virtual STS3215 servos, through a
real pty: id and baud rate written through the Lock, kept over a power cycle."""

from waiting import FAST_SCAN

from pearl_robot.feetech.bus import CommError, FeetechBus

FACTORY = 0  # Baud Rate code 0: 1 Mbps; a new STS3215 answers as id 1 there


def answers(bus, servo_id, baud):
    """The model number servo ``servo_id`` reads at ``baud``, or None if it does not answer there."""
    with FeetechBus.open(bus.device_path, baud, timeout_margin_ms=20, retries=1) as client:
        try:
            return client.model_number(servo_id)
        except CommError:
            return None


def test_a_new_sts3215_gets_its_id_and_baud_rate_and_keeps_them(make_servos, cli):
    bus = make_servos((1, FACTORY))
    argv = ("setup-servo", "--robot", bus.address, "--hardware", "so101", "--id", 4, "--baud", 500_000, "--yes")
    code, out, err = cli(*argv, *FAST_SCAN)
    assert code == 0, err
    assert "found STS3215 (firmware 3) as id 1 at 1000000" in out
    assert "id 1 -> 4" in out and "baud_rate 1000000 -> 500000" in out and "set: id 4 at 500000" in out
    servo = bus.servos[0]
    assert (servo.id, servo.get("baud_rate"), servo.get("lock")) == (4, 1, 1)  # relocked
    assert answers(bus, 4, 500_000) == 777
    assert answers(bus, 4, 1_000_000) is None and answers(bus, 1, 1_000_000) is None

    bus.power_cycle()  # written with the Lock open: kept in flash
    assert (servo.id, servo.get("baud_rate")) == (4, 1)
    assert answers(bus, 4, 500_000) == 777

    code, out, err = cli(*argv, *FAST_SCAN)
    assert code == 0 and out.splitlines()[-1].startswith("already: id 4 at 500000") and "->" not in out
    again = ("setup-servo", "--robot", bus.address, "--hardware", "so101", "--id", 4, "--yes", *FAST_SCAN)
    code, out, err = cli(*again)  # --baud left out: the YAML's 1 Mbps
    assert code == 0 and "baud_rate 500000 -> 1000000" in out and "id 4: id" not in out
    assert answers(bus, 4, 1_000_000) == 777


def test_the_yaml_baud_rate_is_the_default(make_servos, cli):
    bus = make_servos((9, 4))  # id 9 at 115200
    code, out, err = cli("setup-servo", "--robot", bus.address, "--hardware", "so101", "--id", 2, "--yes", *FAST_SCAN)
    assert code == 0, err
    assert "as id 9 at 115200" in out and "set: id 2 at 1000000" in out
    bus.power_cycle()
    assert answers(bus, 2, 1_000_000) == 777


def test_several_or_no_servos_are_clear_errors(make_servos, cli):
    bus = make_servos((1, FACTORY), (1, 6))  # two new servos, one moved to 57600
    code, out, err = cli("setup-servo", "--robot", bus.address, "--hardware", "so101", "--id", 3, "--yes", *FAST_SCAN)
    assert code == 1 and err.count("\n") == 1 and "several servos answer" in err
    assert "id 1 at 1000000 (STS3215)" in err and "id 1 at 57600 (STS3215)" in err
    assert [s.id for s in bus.servos] == [1, 1]

    bus = make_servos()
    code, out, err = cli("setup-servo", "--robot", bus.address, "--hardware", "so101", "--id", 3, "--yes", *FAST_SCAN)
    assert code == 1 and err.count("\n") == 1 and "no servo answers" in err and "38400" in err


def test_feetech_targets_are_checked_against_feetech_tables(cli):
    argv = ("setup-servo", "--robot", "serial:/dev/nonexistent", "--hardware", "so101")
    code, out, err = cli(*argv, "--id", 254, "--baud", 1_000_000)
    assert code == 1 and err.count("\n") == 1 and "0..253" in err
    code, out, err = cli(*argv, "--id", 3, "--baud", 4_500_000)  # a Dynamixel rate
    assert code == 1 and err.count("\n") == 1 and "not in the Baud Rate table" in err and "38400" in err


def test_nothing_is_written_unconfirmed(make_servos, cli):
    bus = make_servos((1, FACTORY))
    code, out, err = cli("setup-servo", "--robot", bus.address, "--hardware", "so101", "--id", 5, *FAST_SCAN)  # CI
    assert code == 1 and "not confirmed" in err.splitlines()[-1]
    assert (bus.servos[0].id, bus.servos[0].get("lock")) == (1, 1)
