"""The `peirce` command as a user runs it: real files, a real SQLite database. Commands run in this process
through the CLI's `main` (helpers.invoke); a run that is killed, resumed or stopped from another terminal runs as
a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from orchestrator.store.database import open_database
from orchestrator.store.models import Campaign, Cycle, Decision, Event, Experiment
from tests.campaigns import EXAMPLES_DIR, hartmann_spec, write_spec
from tests.orchestrator.cli.helpers import PEIRCE, invoke, one_error, peirce


def rows(db_path: Path, model: type) -> list:
    engine = create_engine(f"sqlite:///{db_path}")
    with Session(engine) as session:
        result = session.scalars(select(model)).all()
        for row in result:
            session.expunge(row)
    engine.dispose()
    return result


def test_init_validate_run_status_list_export(tmp_path: Path) -> None:
    assert invoke("init", "c.yaml", cwd=tmp_path).returncode == 0
    spec = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert spec["name"] == "branin_demo"
    assert spec["planner"]["kind"] == "bayesian"
    checked = invoke("validate", "c.yaml", cwd=tmp_path)
    assert checked.returncode == 0 and "ok branin_demo" in checked.stdout
    assert not (tmp_path / "peirce.db").exists()  # validate writes nothing

    # Four cycles of the template's Bayesian planner are enough to exercise it; its full budget is a minute or two.
    spec["budget"]["experiments"] = 12
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    ran = invoke("run", "c.yaml", "--engine", "inline", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "cycle   1" in ran.stdout and "best y =" in ran.stdout
    assert "branin_demo finished" in ran.stdout
    assert (tmp_path / "peirce.db").exists()  # the default database

    status = invoke("status", "branin_demo", cwd=tmp_path)
    assert status.returncode == 0 and "(completed)" in status.stdout
    listed = invoke("list", cwd=tmp_path)
    assert "branin_demo" in listed.stdout and "completed" in listed.stdout

    assert invoke("export", "branin_demo", "--format", "csv", "--out", "r.csv", cwd=tmp_path).returncode == 0
    assert invoke("export", "branin_demo", "--format", "parquet", "--out", "r.parquet", cwd=tmp_path).returncode == 0
    csv, parquet = pd.read_csv(tmp_path / "r.csv"), pd.read_parquet(tmp_path / "r.parquet")
    experiments = rows(tmp_path / "peirce.db", Experiment)
    assert len(csv) == len(parquet) == len(experiments)
    assert {"seq", "cycle", "state", "x1", "x2", "y", "y_predicted_mean", "idempotency_key"} <= set(csv.columns)
    assert csv["y"].notna().all()

    again = invoke("run", "c.yaml", "--engine", "inline", cwd=tmp_path)  # same spec: continue, already done
    assert again.returncode == 2 and "already completed" in again.stderr


def test_db_option_and_environment_variable(tmp_path: Path) -> None:
    write_spec(tmp_path / "s.yaml", hartmann_spec(budget={"experiments": 4, "batch_size": 2}))
    ran = invoke("run", "s.yaml", "--engine", "inline", "--db", f"sqlite:///{tmp_path / 'a.db'}", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    env_run = invoke("status", "h6", cwd=tmp_path, env={"PEIRCE_DB_URL": f"sqlite:///{tmp_path / 'a.db'}"})
    assert env_run.returncode == 0 and "(completed)" in env_run.stdout


@pytest.mark.slow
def test_run_with_prefect_records_every_cycle(tmp_path: Path) -> None:
    spec = yaml.safe_load((EXAMPLES_DIR / "hartmann6_random.yaml").read_text())
    spec["budget"] = {"experiments": 10, "batch_size": 5}
    write_spec(tmp_path / "h6.yaml", spec)
    ran = invoke("run", "h6.yaml", "--db", f"sqlite:///{tmp_path / 'p.db'}", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    experiments = rows(tmp_path / "p.db", Experiment)
    assert len(experiments) == 10 and {e.state for e in experiments} == {"completed"}
    cycles, decisions = rows(tmp_path / "p.db", Cycle), rows(tmp_path / "p.db", Decision)
    assert len(cycles) == len(decisions) == 2
    events = rows(tmp_path / "p.db", Event)
    assert {e.entity for e in events} >= {"campaign", "cycle", "decision", "experiment"}


BAD_SPECS = [
    ("name: x\nspace: [\n", "YAML syntax error"),
    ("- just\n- a list\n", "a campaign file must be a mapping"),
    (
        "{name: x, space: [], objectives: [], budget: {experiments: 1}, lab: {simulator: branin}, colour: red}",
        "colour: unknown key (and 2 more errors)",
    ),
]


def _bad(**overrides: object) -> str:
    return yaml.safe_dump(hartmann_spec(**overrides))


BAD_CASES = [
    *BAD_SPECS,
    (_bad(budget={"experiments": "five"}), "budget.experiments: Input should be a valid integer"),
    (_bad(space=[{"name": "x1", "type": "continuous", "bounds": [120, 90]}]), "space[0].bounds: lower 120 > upper 90"),
    (
        _bad(space=[{"name": "a", "type": "continuous", "bounds": [0, 1]}] * 6),
        "space[1].name: duplicate parameter name 'a'",
    ),
    (_bad(lab={"simulator": "rosenbrock"}), "lab.simulator: unknown simulator 'rosenbrock'"),
    (_bad(lab={"simulator": "lookup", "table": "missing.csv", "noise_std": None}), "lab.noise_std: unknown key"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CASES)
def test_bad_specs_give_one_line_exit_2_and_no_database(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    for command in (["validate", "bad.yaml"], ["run", "bad.yaml"]):
        one_error(invoke(*command, cwd=tmp_path), expected)
    assert not (tmp_path / "peirce.db").exists()


def test_missing_data_file_is_named(tmp_path: Path) -> None:
    spec = yaml.safe_load((EXAMPLES_DIR / "direct_arylation.yaml").read_text())
    spec["lab"]["table"] = "nowhere/reactions.csv"
    write_spec(tmp_path / "da.yaml", spec)
    result = invoke("run", "da.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: lab.table: data file not found:")
    assert not (tmp_path / "peirce.db").exists()


def test_unreachable_database_and_unknown_campaign(tmp_path: Path) -> None:
    result = invoke(
        "run", str(EXAMPLES_DIR / "hartmann6_random.yaml"), "--db", "postgresql://u:pw@127.0.0.1:1/db", cwd=tmp_path
    )
    one_error(result, "--db: cannot connect to postgresql://u:***@127.0.0.1:1/db")
    assert result.stderr.startswith("error: --db: cannot connect to postgresql://u:***@127.0.0.1:1/db")
    open_database(f"sqlite:///{tmp_path / 'e.db'}").dispose()  # a database without that campaign
    missing = invoke("status", "ghost", "--db", f"sqlite:///{tmp_path / 'e.db'}", cwd=tmp_path)
    one_error(missing, "no campaign 'ghost'")
    bad_format = invoke("export", "ghost", "--format", "xlsx", cwd=tmp_path)
    one_error(bad_format, "--format: 'xlsx' is not one of")


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _completed(db_path: Path) -> dict[str, tuple]:
    if not db_path.exists():
        return {}
    try:
        experiments = rows(db_path, Experiment)
    except Exception:  # the schema may not be there yet
        return {}
    return {e.idempotency_key: (e.id, e.parameters, e.attempts) for e in experiments if e.state == "completed"}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["prefect", "inline"])
def test_killed_run_resumes_without_losing_or_repeating(tmp_path: Path, engine: str) -> None:
    data = hartmann_spec(budget={"experiments": 24, "batch_size": 3})
    data["lab"] = {**data["lab"], "delay_s": 0.2}
    write_spec(tmp_path / "k.yaml", data)
    db_path = tmp_path / "k.db"
    url = f"sqlite:///{db_path}"
    process = subprocess.Popen(
        [PEIRCE, "run", "k.yaml", "--db", url, "--engine", engine],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: len(_completed(db_path)) >= 8)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    before = _completed(db_path)
    assert 8 <= len(before) < 24
    campaign = rows(db_path, Campaign)[0]
    assert campaign.status == "running"  # killed: nobody marked it finished

    resumed = peirce("resume", "h6", "--db", url, "--engine", engine, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = _completed(db_path)
    assert len(after) == 24
    for key, record in before.items():
        assert after[key] == record  # completed experiments stand, untouched
    experiments = rows(db_path, Experiment)
    assert len({e.idempotency_key for e in experiments}) == len(experiments)
    assert {e.state for e in experiments} <= {"completed", "abandoned"}
    assert all(e.attempts == 1 for e in experiments if e.state == "completed")
    for e in experiments:
        if e.state == "abandoned":
            assert "in doubt" in e.error
    assert rows(db_path, Campaign)[0].status == "completed"


@pytest.mark.slow
def test_stop_from_another_terminal(tmp_path: Path) -> None:
    data = hartmann_spec(budget={"experiments": 200, "batch_size": 2})
    data["lab"] = {**data["lab"], "delay_s": 0.1}
    write_spec(tmp_path / "s.yaml", data)
    url = f"sqlite:///{tmp_path / 's.db'}"
    process = subprocess.Popen(
        [PEIRCE, "run", "s.yaml", "--db", url, "--engine", "inline"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: len(_completed(tmp_path / "s.db")) >= 4)
    stopped = invoke("stop", "h6", "--db", url, cwd=tmp_path)
    assert stopped.returncode == 0 and "will stop" in stopped.stdout
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped by request" in out
    experiments = rows(tmp_path / "s.db", Experiment)
    assert len(experiments) < 200
    assert {e.state for e in experiments} <= {"completed", "abandoned"}
