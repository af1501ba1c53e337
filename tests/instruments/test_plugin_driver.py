"""A driver in a separate package is found through its entry point, passes the conformance kit, and runs in a
station campaign, with no change to peirce. The package is installed for real (pip, into a folder put on the path
of the subprocesses), as a lab's own driver package would be."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PLUGIN = REPO / "tests" / "plugin_driver"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("site")
    # Built from a copy: a build leaves build/ and *.egg-info beside the sources.
    source = shutil.copytree(PLUGIN, tmp_path_factory.mktemp("source") / "acme-thermometer")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{REPO}"}


def _peirce(env: dict[str, str], *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli.app", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_installed_driver_is_listed_with_its_actions(installed: dict[str, str]) -> None:
    listed = _peirce(installed, "instruments", "--json")
    assert listed.returncode == 0, listed.stderr
    drivers = {d["name"]: d for d in json.loads(listed.stdout)}
    assert {"acme-thermometer", "mettler-sics", "ika-namur", "newera-pump", "keithley-2000"} <= set(drivers)
    assert [a["name"] for a in drivers["acme-thermometer"]["actions"]] == ["read_temperature"]


def test_without_the_package_it_is_unknown(tmp_path: Path) -> None:
    listed = _peirce({**os.environ, "PYTHONPATH": str(REPO)}, "instruments", "acme-thermometer")
    assert listed.returncode == 2
    assert "no instrument driver 'acme-thermometer' is installed" in listed.stderr


def test_the_package_passes_the_conformance_kit(installed: dict[str, str]) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(PLUGIN),
            str(PLUGIN / "test_acme_thermometer.py"),
        ],
        env=installed,
        cwd=PLUGIN,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout


def test_a_station_campaign_runs_on_the_plugin_driver(installed: dict[str, str], tmp_path: Path) -> None:
    spec = tmp_path / "thermo.yaml"
    spec.write_text(
        """
name: thermo_station
space:
  - {name: samples, type: integer, bounds: [1, 4]}
objectives:
  - {name: temperature, direction: maximize}
budget: {experiments: 4, batch_size: 2}
planner: {kind: random, seed: 0}
lab:
  station: probe_bench
  instruments:
    probe: {driver: acme-thermometer}
  protocol:
    - {instrument: probe, action: read_temperature, args: {samples: "{samples}"}, save: {temperature_c: t}}
  outcomes: {temperature: "t"}
  twins: {time_scale: 100}
""",
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'thermo.db'}"
    assert _peirce(installed, "validate", str(spec)).returncode == 0
    ran = _peirce(installed, "run", str(spec), "--db", db, "--engine", "inline")
    assert ran.returncode == 0, ran.stderr
    status = _peirce(installed, "status", "thermo_station", "--db", db)
    assert "4" in status.stdout and "completed" in status.stdout
