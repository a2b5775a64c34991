"""A wheel (not an editable install) carries the shipped hardware/ and sim/ data and finds it from any
directory; PEARL_ROBOT_HOME still points at a user's own copy; calibrations go to the working directory."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SKIP = (".venv", ".git", "runs", "sessions", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests")

PROBE = """
import json, pearl_robot
from pearl_robot.paths import calibration_dir, hardware_dir
from pearl_robot.pearl.config import configs_dir, shipped_configs
from pearl_robot.robot.spec import load_spec
spec = load_spec()
print(json.dumps({"package": pearl_robot.__file__, "hardware": str(spec.source), "mjcf": str(spec.mjcf),
                  "configs_dir": str(configs_dir()), "configs": shipped_configs(),
                  "hardware_dir": str(hardware_dir()), "calibration_dir": str(calibration_dir())}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The repository built into a wheel from a clean copy and installed with ``pip --target``."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(*SKIP))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    (wheel,) = (root / "dist").glob("pearl_robot-*.whl")
    site = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    elsewhere = root / "work"
    elsewhere.mkdir()
    return wheel, site, elsewhere


def _probe(site: Path, cwd: Path, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != "PEARL_ROBOT_HOME"}
    environ.update(PYTHONPATH=str(site), **env)
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=environ, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_wheel_contains_the_shipped_data(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("hardware", "sim"):
        shipped = {p.relative_to(REPO).as_posix() for p in (REPO / folder).rglob("*") if p.is_file()}
        missing = {f for f in shipped if "__pycache__" not in f and f"pearl_robot/data/{f}" not in names}
        assert not missing, f"not in the wheel: {sorted(missing)}"
    assert "pearl_robot/data/hardware/openmanipulator_x.yaml" in names
    assert "pearl_robot/data/sim/openmanipulator_x.xml" in names
    assert not any(n.startswith(("hardware/", "sim/", "calibration/", "pearl_robot/data/calibration")) for n in names)


def test_installed_package_resolves_its_own_data_from_anywhere(installed):
    _, site, elsewhere = installed
    found = _probe(site, elsewhere)
    package = site / "pearl_robot"
    assert Path(found["package"]).parent == package  # the installed copy, not the checkout
    for key in ("hardware", "mjcf", "configs_dir"):
        assert Path(found[key]).is_relative_to(package), (key, found[key])
    assert Path(found["hardware"]).is_file() and Path(found["mjcf"]).is_file()
    assert "arm-dynamics-small" in found["configs"] and "point-robot" in found["configs"]
    assert Path(found["calibration_dir"]) == elsewhere / "calibration"  # the user's tree, never the package


def test_pearl_robot_home_points_at_a_users_copy(installed, tmp_path):
    _, site, elsewhere = installed
    home = tmp_path / "lab"
    shutil.copytree(REPO / "hardware", home / "hardware")
    shutil.copytree(REPO / "sim", home / "sim")
    found = _probe(site, elsewhere, PEARL_ROBOT_HOME=str(home))
    assert Path(found["hardware"]) == home / "hardware" / "openmanipulator_x.yaml"
    assert Path(found["configs_dir"]) == home / "sim" / "configs"
    assert Path(found["calibration_dir"]) == home / "calibration"


def test_train_list_from_the_installed_package(installed):
    _, site, elsewhere = installed
    environ = {k: v for k, v in os.environ.items() if k != "PEARL_ROBOT_HOME"}
    command = [sys.executable, "-m", "pearl_robot.cli.main", "train", "--list"]
    environ["PYTHONPATH"] = str(site)
    result = subprocess.run(command, cwd=elsewhere, env=environ, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "arm-dynamics" in result.stdout and "arm-dynamics-small" in result.stdout


def test_checkout_keeps_its_top_level_folders(monkeypatch):
    from pearl_robot.paths import calibration_dir, data_root, in_checkout

    monkeypatch.delenv("PEARL_ROBOT_HOME", raising=False)

    assert in_checkout() and data_root() == REPO and calibration_dir() == REPO / "calibration"
    assert (REPO / "calibration" / "README.md").is_file()
