"""Bad robot options are one clear line, on every path: open_robot, Python keywords, the CLI."""

import time
from pathlib import Path

import pytest

from pearl_robot import open_robot
from pearl_robot.cli.main import main
from pearl_robot.errors import ConfigError, UnknownRobotError
from pearl_robot.robot import registry
from pearl_robot.robot.mock import MockRobot

SERIAL = "serial:/dev/ttyUSB0"
HARDWARE = Path(__file__).resolve().parents[2] / "hardware" / "openmanipulator_x.yaml"

BAD = [
    ("retries=abc", "option retries='abc': expected an integer"),
    ("retries=2.5", "option retries=2.5: expected an integer"),
    ("retries=-1", "option retries=-1: expected an integer >= 0 (a count)"),
    ("retries=", "option retries=None: expected an integer"),
    ("timeout_margin_ms=abc", "option timeout_margin_ms='abc': expected a finite number"),
    ("timeout_margin_ms=-5", "option timeout_margin_ms=-5: expected a duration >= 0 (ms)"),
    ("return_delay_us=-1", "option return_delay_us=-1: expected a duration >= 0 (us)"),
    ("on_close=explode", "option on_close='explode': expected one of 'torque_off', 'hold'"),
    ("fault_action=explode", "option fault_action='explode': expected one of 'hold', 'torque_off'"),
    ("read_effort=maybe", "option read_effort='maybe': expected true or false"),
    ("baudrate=fast", "option baudrate='fast': expected an integer or null"),
    ("baudrate=-1", "option baudrate=-1: expected a Dynamixel baud rate: 9600, 57600,"),
    ("baudrate=12345", "option baudrate=12345: expected a Dynamixel baud rate: 9600, 57600,"),
]


@pytest.mark.parametrize(("option", "message"), BAD)
def test_bad_values_are_one_line(option, message):
    with pytest.raises(UnknownRobotError) as info:
        open_robot(f"{SERIAL}?{option}")
    assert str(info.value).startswith(f"robot '{SERIAL}' {message}")
    assert "\n" not in str(info.value)


def test_python_keywords_are_checked_too():
    with pytest.raises(UnknownRobotError, match=r"option retries='abc': expected an integer"):
        open_robot(SERIAL, retries="abc")
    tcp = "tcp://127.0.0.1:5555"
    with pytest.raises(UnknownRobotError, match=rf"robot '{tcp}' option timeout_s=-1: expected a duration"):
        open_robot(tcp, timeout_s=-1)


def test_good_values_are_coerced():
    serial = open_robot(f"{SERIAL}?timeout_margin_ms=20&retries=0&baudrate=57600&return_delay_us=null").unwrapped()
    assert serial.timeout_margin_ms == 20.0 and isinstance(serial.timeout_margin_ms, float)
    assert serial.retries == 0 and serial.baudrate == 57600 and serial.return_delay_us is None
    assert open_robot(f"{SERIAL}?on_close=hold&read_effort=false").unwrapped().on_close == "hold"


def test_objects_pass_through():
    assert open_robot("mock", clock=time.monotonic).unwrapped().clock is time.monotonic


class Picky(MockRobot):
    def __init__(self, spec, *, mode: str = "a") -> None:
        if mode != "a":
            raise ValueError(f"mode must be 'a', got {mode!r}\nsecond line")
        super().__init__(spec)


def test_constructor_value_errors_become_one_line(monkeypatch):
    monkeypatch.setitem(registry.BACKENDS, "picky", "unused:Picky")
    monkeypatch.setattr(registry, "backend_class", lambda scheme: Picky)
    with pytest.raises(UnknownRobotError) as info:
        open_robot("picky?mode=b")
    assert str(info.value) == "robot 'picky': mode must be 'a', got 'b'"


def test_unknown_option_still_named():
    with pytest.raises(UnknownRobotError, match="has no option 'colour'"):
        open_robot(f"{SERIAL}?colour=red")


def unknown_model_hardware(tmp_path: Path) -> Path:
    text = HARDWARE.read_text()
    text = text.replace("../sim/openmanipulator_x.xml", str(HARDWARE.parents[1] / "sim" / "openmanipulator_x.xml"))
    text = text.replace("{name: joint4, id: 14, model: XM430-W350", "{name: joint4, id: 14, model: XM999")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def test_unknown_servo_model(tmp_path):
    with pytest.raises(ConfigError, match=r"joints\[3\].model': unknown Dynamixel model 'XM999'"):
        open_robot(SERIAL, unknown_model_hardware(tmp_path))


@pytest.mark.parametrize("option", ["retries=abc", "on_close=explode", "baudrate=fast", "timeout_margin_ms=-1"])
def test_serve_says_it_in_one_line(capsys, option):
    assert main(["serve", "--robot", f"{SERIAL}?{option}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"pearl-robot serve: error: robot '{SERIAL}' option {option.split('=')[0]}=")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_serve_unknown_servo_model_in_one_line(capsys, tmp_path):
    assert main(["serve", "--robot", SERIAL, "--hardware", str(unknown_model_hardware(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "unknown Dynamixel model 'XM999'" in err
    assert err.count("\n") == 1 and "Traceback" not in err
