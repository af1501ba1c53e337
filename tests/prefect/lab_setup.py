"""A lab on a real Prefect server, for the end-to-end tests of shared instruments and of faults: a lab file with one
balance served over TCP by its device twin, station campaigns that weigh on it, `peirce` commands run as a person
runs them, flow runs waited for through Prefect's API, and the database read straight from its tables (never
through the code under test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import TextClause, bindparam, create_engine, text

from simulators.twins.bench import Bench
from simulators.twins.mettler_sics import MettlerSicsTwin
from simulators.twins.server import FaultPlan, TwinServer

PEIRCE = str(Path(sys.executable).with_name("peirce"))


def lab_file(lab: str, drivers: dict[str, str], ports: dict[str, str], *, timeout_s: float) -> dict[str, Any]:
    """A lab file's content: each instrument's driver at its port (a `socket://` URL), held lab-wide; a wait for an
    instrument ends after `timeout_s`."""
    return {
        "lab": lab,
        "holds": {"timeout_s": timeout_s},
        "instruments": {
            name: {"driver": driver, "port": ports[name], "serial": {"timeout_s": 5.0}}
            for name, driver in drivers.items()
        },
    }


def write_lab(folder: Path, lab: str, port: str, *, timeout_s: float = 240) -> None:
    """`lab.yaml`: one balance at `port`, held lab-wide; a wait for it ends after `timeout_s`."""
    content = lab_file(lab, {"balance": "mettler-sics"}, {"balance": port}, timeout_s=timeout_s)
    (folder / "lab.yaml").write_text(yaml.safe_dump(content, sort_keys=False))


def poll(url: str, query: str, params: dict[str, Any], done: Any, within_s: float, failure: str) -> Any:
    """Run `query` (its first row) on the database at `url` every 0.05 s until `done(row)`; that row. The test
    fails with `failure` after `within_s`."""
    engine = create_engine(url)
    deadline = time.monotonic() + within_s
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                row = conn.execute(text(query), params).first()
            if done(row):
                return row
            time.sleep(0.05)
    finally:
        engine.dispose()
    pytest.fail(failure)


def write_campaign(
    folder: Path, name: str, *, seed: int, experiments: int, batch: int, wait_s: float = 0.3, concurrency: int = 0
) -> Path:
    """A station campaign on the lab's balance: weigh, wait `wait_s` with the balance held, weigh again."""
    spec = {
        "name": name,
        "goal": "Keep the balance's drift over a short wait small, as a stand-in for a weighing protocol.",
        "space": [{"name": "x", "type": "continuous", "bounds": [0.0, 1.0]}],
        "objectives": [{"name": "score", "direction": "maximize"}],
        "budget": {"experiments": experiments, "batch_size": batch, "max_retries": 1},
        "planner": {"kind": "random", "seed": seed},
        "hypotheses": "none",
        "lab": {
            "station": "weighing",
            "lab_file": "lab.yaml",
            "instruments": ["balance"],
            "protocol": [
                {"instrument": "balance", "action": "weigh", "save": {"mass_g": "mass"}},
                # The balance stays held through the wait: a window in which another campaign's weighing would
                # overlap if the lab-wide hold let it.
                {"wait": wait_s, "unit": "s"},
                {"instrument": "balance", "action": "weigh", "save": {"mass_g": "again"}},
            ],
            "outcomes": {"score": "x - 1000 * (again - mass) * (again - mass)"},
            "max_concurrency": concurrency or batch,
        },
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def peirce(env: dict[str, str], *args: str, cwd: Path) -> str:
    """`peirce ARGS` as a person runs it; its output, the test failing with it when it exits non-zero."""
    done = subprocess.run([PEIRCE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def submit(env: dict[str, str], spec: Path, pool: str, db_url: str) -> UUID:
    """`peirce submit`: the id of the flow run it started."""
    submitted = peirce(env, "submit", spec.name, "--pool", pool, "--db", db_url, cwd=spec.parent)
    return UUID(submitted.split("flow run ")[1].split()[0])


def read_run(env: dict[str, str], run_id: UUID) -> FlowRun:
    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
        return c.read_flow_run(run_id)


def final_runs(env: dict[str, str], run_ids: list[UUID], logs: list[Path], within_s: float) -> dict[UUID, FlowRun]:
    """Each flow run once its state is final, read from Prefect's API; the test fails with the workers' logs when
    one is not final within `within_s`."""
    finals: dict[UUID, FlowRun] = {}
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and len(finals) < len(run_ids):
        for run_id in run_ids:
            run = read_run(env, run_id)
            if run.state is not None and run.state.is_final():
                finals[run_id] = run
        time.sleep(1.0)
    if len(finals) < len(run_ids):
        tails = "\n".join(log.read_text()[-3000:] for log in logs if log.exists())
        pytest.fail(f"{len(run_ids) - len(finals)} flow runs not final after {within_s:.0f} s:\n{tails}")
    return finals


def read_lab(url: str, names: list[str]) -> dict[str, Any]:
    """The campaigns' states, experiments, measurements, dispatches and experiment events, from the tables; each
    event's detail parsed."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            params = {"names": names}

            def rows(sql: str) -> list[dict[str, Any]]:
                query: TextClause = text(sql).bindparams(bindparam("names", expanding=True))
                return [dict(row._mapping) for row in conn.execute(query, params)]

            campaigns = {
                str(r["name"]): str(r["status"])
                for r in rows("SELECT name, status FROM campaigns WHERE name IN :names")
            }
            experiments = rows(
                "SELECT e.id, e.seq, e.state, e.attempts, c.name AS campaign FROM experiments e"
                " JOIN campaigns c ON c.id = e.campaign_id WHERE c.name IN :names ORDER BY e.id"
            )
            measurements = rows(
                "SELECT m.experiment_id, m.attempt, m.name, m.value, e.seq, c.name AS campaign"
                " FROM measurements m JOIN experiments e ON e.id = m.experiment_id"
                " JOIN campaigns c ON c.id = e.campaign_id WHERE c.name IN :names"
            )
            dispatches = rows(
                "SELECT d.experiment_id, d.attempt FROM dispatches d JOIN experiments e ON e.id = d.experiment_id"
                " JOIN campaigns c ON c.id = e.campaign_id WHERE c.name IN :names"
            )
            events = rows(
                "SELECT v.id, v.entity, v.entity_id, v.kind, v.to_state, v.at, v.detail, c.name AS campaign"
                " FROM events v JOIN campaigns c ON c.id = v.campaign_id WHERE c.name IN :names ORDER BY v.id"
            )
    finally:
        engine.dispose()
    for event in events:
        detail = event["detail"]
        event["detail"] = (json.loads(detail) if isinstance(detail, str) else detail) or {}
    return {
        "campaigns": campaigns,
        "experiments": experiments,
        "measurements": measurements,
        "dispatches": dispatches,
        "events": events,
    }


@pytest.fixture
def lab_db(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """PostgreSQL where a server is given (a lab's database; CI has one), else a SQLite file."""
    if os.environ.get("PEIRCE_TEST_POSTGRES_URL"):
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'lab.db'}"


@pytest.fixture
def balance() -> Iterator[str]:
    """The lab's balance: a twin on TCP serving one client at a time; its `socket://` URL."""
    twin = TwinServer(MettlerSicsTwin(Bench(time_scale=1000.0, seed=4)), FaultPlan(rate=0.0), name="balance")
    try:
        yield twin.start_tcp()
    finally:
        twin.stop()
