import os

import pytest
import torch

from pearl_robot.cli.main import main

os.environ.setdefault("CI", "true")
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


@pytest.fixture(params=["mock", "sim"])
def backend(request) -> str:
    """The in-process backends every safety and lifecycle rule is checked on."""
    return request.param


@pytest.fixture
def cli(capsys):
    """``cli(*argv)`` -> (exit code, stdout, stderr) of ``pearl-robot`` run in-process."""

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def start_virtual_bus():
    """``start_virtual_bus(spec, **from_spec options)``: a started virtual servo bus on a pty (Dynamixel or
    Feetech, by the spec's bus protocol), stopped at teardown (every test that starts one leaves no pty or
    thread behind)."""
    from pearl_robot.virtual import virtual_bus_from_spec

    started = []

    def start(spec, **options):
        bus = virtual_bus_from_spec(spec, **options).start()
        started.append(bus)
        return bus

    yield start
    for bus in started:
        bus.stop()
