"""Fixtures for calibration on the virtual arm; everything started here is stopped at teardown."""

import numpy as np
import pytest
import yaml
from calibration_helpers import HIDDEN_DIRECTIONS, HIDDEN_OFFSETS_TICKS, CliRun, ScriptedOperator

from pearl_robot.paths import resolve_hardware
from pearl_robot.robot.spec import load_spec
from pearl_robot.virtual import virtual_bus_from_spec


@pytest.fixture
def hardware_file(tmp_path):
    """The shipped arm with an 8 ms USB latency timer (an FTDI adapter's default is 16 ms): generous
    bus deadlines for a CLI that cannot be given a timeout margin, on a shared CI machine."""
    source = resolve_hardware(None)
    data = yaml.safe_load(source.read_text())
    data["bus"]["latency_timer_ms"] = 8
    data["sim"]["mjcf"] = str((source.parent / data["sim"]["mjcf"]).resolve())
    path = tmp_path / "hardware.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def spec(hardware_file):
    return load_spec(hardware_file)


@pytest.fixture
def make_bus(spec):
    """``make_bus(**from_spec options)``: a started virtual bus (physics on) with the hidden mounting."""
    buses = []

    def make(**options):
        options.setdefault("hidden_offsets_ticks", HIDDEN_OFFSETS_TICKS)
        options.setdefault("hidden_directions", HIDDEN_DIRECTIONS)
        options.setdefault("return_delay_time", 0)
        bus = virtual_bus_from_spec(spec, **options).start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.hand.release()
        bus.stop()


@pytest.fixture
def make_operator():
    operators = []

    def make(bus, spec, pose=None):
        operator = ScriptedOperator(bus, spec, np.zeros(spec.num_joints) if pose is None else pose).start()
        operators.append(operator)
        return operator

    yield make
    for operator in operators:
        operator.stop()


@pytest.fixture
def run_cli():
    """``run_cli(*args, on_line=None)``: ``pearl-robot ARGS`` in a subprocess, killed at teardown if need be."""
    runs = []

    def start(*args, on_line=None) -> CliRun:
        run = CliRun(args, on_line)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()
