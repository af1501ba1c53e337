"""Three campaigns on two Prefect workers share one instrument: the lab end to end.

A lab file declares one balance, served over TCP by its device twin (one client at a time, as a serial device
server is). Three campaigns name it and are submitted to one work pool with two workers (`prefect worker start`,
real processes, against a real Prefect server); each experiment holds the balance lab-wide (a Prefect global
concurrency slot) from its first weighing through a wait to its second. Checked from peirce's database and from
Prefect's API, never from the code under test: every budget spent, no two holds of the balance overlapping, no
experiment lost or run twice without a record, and each campaign's artifacts visible through Prefect's API.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import TextClause, bindparam, create_engine, text

from orchestrator.cycle.prefect_artifacts import artifact_key
from simulators.twins.bench import Bench
from simulators.twins.mettler_sics import MettlerSicsTwin
from simulators.twins.server import FaultPlan, TwinServer
from tests.prefect import server
from tests.prefect.server import start_worker, stop_worker

pytestmark = pytest.mark.slow
prefect_env = server.prefect_env  # the real server's fixture (tests/prefect/server.py)

PEIRCE = str(Path(sys.executable).with_name("peirce"))
CAMPAIGNS = 3
EXPERIMENTS, BATCH = 6, 2
FINAL_WITHIN_S = 420.0  # three flow runs starting on two workers, on two shared cores


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


def _write_lab(folder: Path, lab: str, port: str) -> None:
    lab_file = {
        "lab": lab,
        "holds": {"timeout_s": 240},
        "instruments": {"balance": {"driver": "mettler-sics", "port": port, "serial": {"timeout_s": 5.0}}},
    }
    (folder / "lab.yaml").write_text(yaml.safe_dump(lab_file, sort_keys=False))


def _write_campaign(folder: Path, name: str, seed: int) -> Path:
    spec = {
        "name": name,
        "goal": "Keep the balance's drift over a short wait small, as a stand-in for a weighing protocol.",
        "space": [{"name": "x", "type": "continuous", "bounds": [0.0, 1.0]}],
        "objectives": [{"name": "score", "direction": "maximize"}],
        "budget": {"experiments": EXPERIMENTS, "batch_size": BATCH, "max_retries": 1},
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
                {"wait": 0.3, "unit": "s"},
                {"instrument": "balance", "action": "weigh", "save": {"mass_g": "again"}},
            ],
            "outcomes": {"score": "x - 1000 * (again - mass) * (again - mass)"},
            "max_concurrency": BATCH,
        },
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _peirce(env: dict[str, str], *args: str, cwd: Path) -> str:
    done = subprocess.run([PEIRCE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _final(env: dict[str, str], run_ids: list[UUID], logs: list[Path]) -> dict[UUID, FlowRun]:
    finals: dict[UUID, FlowRun] = {}
    deadline = time.monotonic() + FINAL_WITHIN_S
    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
        while time.monotonic() < deadline and len(finals) < len(run_ids):
            for run_id in run_ids:
                run = c.read_flow_run(run_id)
                if run.state is not None and run.state.is_final():
                    finals[run_id] = run
            time.sleep(1.0)
    if len(finals) < len(run_ids):
        tails = "\n".join(log.read_text()[-3000:] for log in logs)
        pytest.fail(f"{len(run_ids) - len(finals)} flow runs not final after {FINAL_WITHIN_S:.0f} s:\n{tails}")
    return finals


def test_three_campaigns_on_two_workers_share_one_balance_without_overlap(
    prefect_env: dict[str, str], lab_db: str, balance: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]  # a server CI shares among modules may know other labs, pools and campaigns
    lab, pool = f"lab_{suffix}", f"shared-{suffix}"
    names = [f"weigh_{suffix}_{i}" for i in range(CAMPAIGNS)]
    _write_lab(tmp_path, lab, balance)
    specs = [_write_campaign(tmp_path, name, seed=i) for i, name in enumerate(names)]
    env = {key: value for key, value in prefect_env.items() if key != "PEIRCE_DB_URL"}
    env["PEIRCE_ARTIFACTS"] = str(tmp_path / "artifacts")
    _peirce(env, "deploy", "--pool", pool, "--db", lab_db, cwd=tmp_path)
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    workers = [start_worker(env, pool, db_url=lab_db, log=log, name=f"{pool}-{i}") for i, log in enumerate(logs)]
    try:
        run_ids = []
        for spec in specs:
            submitted = _peirce(env, "submit", spec.name, "--pool", pool, "--db", lab_db, cwd=tmp_path)
            run_ids.append(UUID(submitted.split("flow run ")[1].split()[0]))
        runs = _final(env, run_ids, logs)
    finally:
        for worker in workers:
            stop_worker(worker)

    states = {run.name: run.state for run in runs.values()}
    assert all(s is not None and s.is_completed() for s in states.values()), (states, logs[0].read_text()[-3000:])
    assert sorted(states) == sorted(names)

    db = _read(lab_db, names)
    # Every budget spent, every experiment measured once in its final attempt.
    for name in names:
        assert db["campaigns"][name] == "completed", db["campaigns"]
        experiments = [e for e in db["experiments"] if e["campaign"] == name]
        assert len(experiments) == EXPERIMENTS and {e["state"] for e in experiments} == {"completed"}, experiments
    measured = {(m["experiment_id"], m["attempt"]) for m in db["measurements"]}
    for experiment in db["experiments"]:
        assert (experiment["id"], experiment["attempts"]) in measured, experiment  # no result lost

    # Each attempt weighed exactly twice, each weighing journalled as started and done: nothing repeated without a
    # record. Every attempt took and gave back the balance once.
    events = db["events"]
    by_attempt: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for event in events:
        detail = json.loads(event["detail"]) if isinstance(event["detail"], str) else (event["detail"] or {})
        by_attempt.setdefault((event["entity_id"], int(detail.get("attempt", 0))), []).append(
            {**event, "detail": detail}
        )
    slot = f"instrument:{lab}:balance"
    spans = []
    for experiment in db["experiments"]:
        for attempt in range(1, experiment["attempts"] + 1):
            journal = by_attempt.get((experiment["id"], attempt), [])
            kinds = [str(e["kind"]) for e in journal]
            weighings = [e for e in journal if e["kind"] == "action-started"]
            assert len(weighings) == 2 and kinds.count("action-done") == 2, kinds
            taken = [e for e in journal if e["kind"] == "hold-taken"]
            released = [e for e in journal if e["kind"] == "hold-released"]
            assert len(taken) == len(released) == 1, kinds
            assert taken[0]["detail"]["slot"] == slot
            spans.append((taken[0]["at"], released[0]["at"], experiment["campaign"], experiment["seq"]))
    assert len(spans) == CAMPAIGNS * EXPERIMENTS
    spans.sort()
    overlapping = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert not overlapping, overlapping
    # Campaigns ran at the same time and took turns on the balance (in time order, the campaign holding it changed
    # more often than once per campaign), rather than each having it to itself from start to end.
    turns = [campaign for _, _, campaign, _ in spans]
    changes = sum(1 for a, b in itertools.pairwise(turns) if a != b)
    assert changes >= CAMPAIGNS, turns

    # What Prefect's UI shows: each campaign's best-so-far and batch artifacts, read back through the API.
    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
        for name in names:
            best = c.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(name, "best")]))
            )
            batches = c.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(name, "batch")]))
            )
            assert len(best) == len(batches) == EXPERIMENTS // BATCH, (name, best, batches)
            latest = str(max(best, key=lambda a: a.created or 0).data)
            assert f"budget of {EXPERIMENTS} experiments spent" in latest, latest
            top = max(
                (m for m in db["measurements"] if m["campaign"] == name and m["name"] == "score"),
                key=lambda m: m["value"],
            )
            assert f"| {top['value']:.4g} | #{top['seq']} |" in latest, (top, latest)


def _read(url: str, names: list[str]) -> dict[str, Any]:
    """The campaigns' states, experiments, measurements and experiment events, straight from the tables."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            params = {"names": names}

            def query(sql: str) -> TextClause:
                return text(sql).bindparams(bindparam("names", expanding=True))

            statuses = conn.execute(query("SELECT name, status FROM campaigns WHERE name IN :names"), params)
            campaigns = {str(name): str(status) for name, status in statuses}
            experiments = [
                dict(row._mapping)
                for row in conn.execute(
                    query(
                        "SELECT e.id, e.seq, e.state, e.attempts, c.name AS campaign FROM experiments e"
                        " JOIN campaigns c ON c.id = e.campaign_id WHERE c.name IN :names ORDER BY e.id"
                    ),
                    params,
                )
            ]
            measurements = [
                dict(row._mapping)
                for row in conn.execute(
                    query(
                        "SELECT m.experiment_id, m.attempt, m.name, m.value, e.seq, c.name AS campaign"
                        " FROM measurements m JOIN experiments e ON e.id = m.experiment_id"
                        " JOIN campaigns c ON c.id = e.campaign_id WHERE c.name IN :names"
                    ),
                    params,
                )
            ]
            events = [
                dict(row._mapping)
                for row in conn.execute(
                    query(
                        "SELECT v.entity_id, v.kind, v.at, v.detail FROM events v"
                        " JOIN campaigns c ON c.id = v.campaign_id"
                        " WHERE c.name IN :names AND v.entity = 'experiment' ORDER BY v.id"
                    ),
                    params,
                )
            ]
            return {"campaigns": campaigns, "experiments": experiments, "measurements": measurements, "events": events}
    finally:
        engine.dispose()
