"""A station campaign as a lab scientist runs it: `peirce validate`, `run`, `status`, `instruments`, `twin`.

In this process through the CLI's `main`, except the twin served by hand: it runs until SIGTERM, as a process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from instruments.drivers.mettler_sics import MettlerSicsBalance
from tests.instruments.station_specs import EXAMPLE, station_yaml
from tests.orchestrator.cli.helpers import PEIRCE, invoke


def test_the_example_station_validates_and_names_its_lab(tmp_path: Path) -> None:
    result = invoke("validate", str(EXAMPLE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "station reaction_bench (4 instruments, on device twins)" in result.stdout
    assert not list(tmp_path.iterdir())


def test_a_space_beyond_a_safety_limit_is_one_line_naming_the_limit(tmp_path: Path) -> None:
    spec = tmp_path / "hot.yaml"
    spec.write_text(station_yaml().replace("bounds: [60, 130]", "bounds: [60, 180]"), encoding="utf-8")
    result = invoke("run", str(spec), "--db", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: space[1]: 'temperature' reaches 180 but lab.protocol[3] sends it as temperature_c to hotplate, "
        "whose limit is lab.instruments.hotplate.limits.temperature_c.max = 140"
    ]
    assert not (tmp_path / "x.db").exists()


@pytest.mark.slow
def test_run_on_faulty_twins_then_status_shows_each_instrument(tmp_path: Path) -> None:
    spec = tmp_path / "station.yaml"
    spec.write_text(station_yaml(name="cli_station", experiments=4, batch_size=2, fault_rate=0.05), encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'station.db'}"
    ran = invoke("run", str(spec), "--db", db, "--engine", "inline", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "cli_station finished: budget of 4 experiments spent" in ran.stdout
    status = invoke("status", "cli_station", "--db", db, cwd=tmp_path)
    for instrument in ("pump", "hotplate", "balance", "photometer"):
        assert f"  {instrument}: " in status.stdout


@pytest.mark.slow
def test_a_twin_served_by_hand_answers_a_driver(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [PEIRCE, "twin", "mettler-sics", "--tcp", "0", "--time-scale", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "mettler-sics twin serving on socket://127.0.0.1:" in line, line + process.stderr.read()
        url = line.split(" on ")[1].split()[0]
        balance = MettlerSicsBalance(url)
        assert balance.connect()["serial_number"]
        assert balance.execute("weigh_immediate")["mass_g"] == pytest.approx(0.0, abs=0.001)
        balance.close()
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "requests served" in out


def test_an_unknown_driver_is_refused(tmp_path: Path) -> None:
    result = invoke("twin", "nonesuch", cwd=tmp_path)
    assert result.returncode == 2
    assert "no device twin for driver 'nonesuch'" in result.stderr
