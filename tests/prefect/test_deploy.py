"""Campaigns as deployments on a real Prefect server with a real worker: `peirce deploy` + `peirce submit` run a
campaign to its end through `prefect worker start`, the database URL nowhere in Prefect's records; and two flow runs
of one campaign started 0.3 s apart: exactly one runs, the other ends Cancelled saying who runs the campaign, with a
`run-refused` event in peirce's database. Nothing is mocked."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import make_url, select

from orchestrator.store.database import open_database
from orchestrator.store.models import Campaign, Event
from tests.campaigns import hartmann_spec, write_spec
from tests.prefect import server
from tests.prefect.server import start_worker, stop_worker

pytestmark = pytest.mark.slow
prefect_env = server.prefect_env  # the real server's fixture (tests/prefect/server.py)

PEIRCE = str(Path(sys.executable).with_name("peirce"))
FINAL_WITHIN_S = 150.0


def _peirce(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([PEIRCE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _final(env: dict[str, str], run_id: UUID, log: Path) -> FlowRun:
    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
        deadline = time.monotonic() + FINAL_WITHIN_S
        while time.monotonic() < deadline:
            run = c.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                return run
            time.sleep(0.5)
    pytest.fail(f"flow run {run_id} not final after {FINAL_WITHIN_S:.0f} s; worker:\n{log.read_text()[-4000:]}")


GATE_LAB = """
import pathlib
import time


def measure(parameters, gate):
    deadline = time.monotonic() + 600
    while not pathlib.Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.05)
    return {"y": sum(parameters[f"x{i}"] for i in range(1, 7))}
"""


def _wait_until_run(url: str, campaign_id: int, log: Path) -> None:
    """Until a runner has claimed the campaign (its first run started)."""
    db = open_database(url)
    try:
        deadline = time.monotonic() + FINAL_WITHIN_S
        while time.monotonic() < deadline:
            with db.session() as session:
                if session.get_one(Campaign, campaign_id).runner is not None:
                    return
            time.sleep(0.2)
    finally:
        db.dispose()
    pytest.fail(f"campaign {campaign_id} not claimed after {FINAL_WITHIN_S:.0f} s; worker:\n{log.read_text()[-4000:]}")


def _deploy(env: dict[str, str], url: str, tmp_path: Path) -> str:
    pool = f"lab-{uuid.uuid4().hex[:8]}"  # a server CI shares among modules may know other pools
    first = _peirce(env, "deploy", "--pool", pool, "--db", url, cwd=tmp_path)
    assert f"deployed peirce-campaign/{pool} (work pool '{pool}' created" in first.stdout
    again = _peirce(env, "deploy", "--pool", pool, "--db", url, cwd=tmp_path)  # idempotent
    assert f"work pool '{pool}' exists" in again.stdout
    return pool


def test_a_submitted_campaign_runs_to_its_end_on_a_worker(
    prefect_env: dict[str, str], db_url: str, tmp_path: Path
) -> None:
    env = {key: value for key, value in prefect_env.items() if key != "PEIRCE_DB_URL"}
    pool = _deploy(env, db_url, tmp_path)
    write_spec(tmp_path / "campaign.yaml", hartmann_spec(name="deployed", budget={"experiments": 6, "batch_size": 3}))
    log = tmp_path / "worker.log"
    worker = start_worker(env, pool, db_url=db_url, log=log)
    try:
        submitted = _peirce(env, "submit", "campaign.yaml", "--pool", pool, "--db", db_url, cwd=tmp_path)
        assert "created campaign 'deployed'; flow run " in submitted.stdout
        run_id = UUID(submitted.stdout.split("flow run ")[1].split()[0])
        assert f"/runs/flow-run/{run_id}" in submitted.stdout
        run = _final(env, run_id, log)
    finally:
        stop_worker(worker)
    assert run.state is not None and run.state.is_completed(), (run.state, log.read_text()[-4000:])
    assert run.name == "deployed"
    db = open_database(db_url)
    with db.session() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.name == "deployed")).one()
        assert (campaign.status, campaign.runner) == ("completed", None)
        assert run.parameters == {"campaign_id": campaign.id}
    db.dispose()
    # Neither the URL nor (on PostgreSQL) its password appears in what Prefect keeps of the run or the deployment.
    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
        records = run.model_dump_json() + c.read_deployment(run.deployment_id).model_dump_json()  # type: ignore[arg-type]
    secrets = [db_url, make_url(db_url).database or db_url]
    if make_url(db_url).password:
        secrets.append(str(make_url(db_url).password))
    assert not [secret for secret in secrets if secret in records]


def test_two_runs_of_one_campaign_only_one_runs_the_other_is_refused(
    prefect_env: dict[str, str], sqlite_url: str, tmp_path: Path
) -> None:
    env = {key: value for key, value in prefect_env.items() if key != "PEIRCE_DB_URL"}
    pool = _deploy(env, sqlite_url, tmp_path)
    # The first run's lab waits at a gate the test opens only once the second run has ended, so the first holds the
    # campaign while the second starts however slowly the machine starts flow-run processes (a fixed delay did not
    # hold on a loaded machine).
    gate = tmp_path / "gate-open"
    (tmp_path / "gate_lab.py").write_text(GATE_LAB, encoding="utf-8")
    spec = hartmann_spec(name="twice", budget={"experiments": 4, "batch_size": 2})
    spec["lab"] = {"python": "gate_lab:measure", "path": str(tmp_path), "options": {"gate": str(gate)}}
    write_spec(tmp_path / "campaign.yaml", spec)
    log = tmp_path / "worker.log"
    worker = start_worker(env, pool, db_url=sqlite_url, log=log)
    try:
        submitted = _peirce(env, "submit", "campaign.yaml", "--pool", pool, "--db", sqlite_url, cwd=tmp_path)
        first = UUID(submitted.stdout.split("flow run ")[1].split()[0])
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
            campaign_id = c.read_flow_run(first).parameters["campaign_id"]
            _wait_until_run(sqlite_url, campaign_id, log)
            deployment = c.read_deployment_by_name(f"peirce-campaign/{pool}")
            second = c.create_flow_run_from_deployment(deployment.id, parameters={"campaign_id": campaign_id}).id
        refused_run = _final(env, second, log)
        gate.touch()
        runs = {first: _final(env, first, log), second: refused_run}
    finally:
        gate.touch()
        stop_worker(worker)
    states = {run_id: run.state for run_id, run in runs.items()}
    completed = [i for i, s in states.items() if s is not None and s.is_completed()]
    refused = [i for i, s in states.items() if s is not None and s.is_cancelled()]
    assert len(completed) == 1 and len(refused) == 1, (states, log.read_text()[-4000:])
    message = states[refused[0]].message  # type: ignore[union-attr]
    assert message is not None and message.startswith("campaign 'twice' is being run by "), message
    db = open_database(sqlite_url)
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        assert (campaign.status, campaign.runner) == ("completed", None)
        events = session.scalars(select(Event).where(Event.kind == "run-refused")).all()
        assert [(e.entity, (e.detail or {}).get("flow_run_id"), (e.detail or {}).get("reason")) for e in events] == [
            ("campaign", str(refused[0]), message)
        ]
    db.dispose()
