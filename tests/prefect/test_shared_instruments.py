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
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.settings import PREFECT_API_URL, temporary_settings

from orchestrator.cycle.prefect_artifacts import artifact_key
from tests.prefect import lab_setup, server
from tests.prefect.lab_setup import final_runs, peirce, read_lab, submit, write_campaign, write_lab
from tests.prefect.server import start_worker, stop_worker

pytestmark = pytest.mark.slow
# Fixtures bound by name (see tests/prefect/server.py): the real server, the lab's database, its balance twin.
prefect_env = server.prefect_env
lab_db = lab_setup.lab_db
balance = lab_setup.balance

CAMPAIGNS = 3
EXPERIMENTS, BATCH = 6, 2
FINAL_WITHIN_S = 420.0  # three flow runs starting on two workers, on two shared cores


def test_three_campaigns_on_two_workers_share_one_balance_without_overlap(
    prefect_env: dict[str, str], lab_db: str, balance: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]  # a server CI shares among modules may know other labs, pools and campaigns
    lab, pool = f"lab_{suffix}", f"shared-{suffix}"
    names = [f"weigh_{suffix}_{i}" for i in range(CAMPAIGNS)]
    write_lab(tmp_path, lab, balance)
    # Each experiment holds the balance for a second: the campaigns' flow runs, started one after another by two
    # workers, overlap and queue for it.
    specs = [
        write_campaign(tmp_path, name, seed=i, experiments=EXPERIMENTS, batch=BATCH, wait_s=1.0)
        for i, name in enumerate(names)
    ]
    env = {key: value for key, value in prefect_env.items() if key != "PEIRCE_DB_URL"}
    env["PEIRCE_ARTIFACTS"] = str(tmp_path / "artifacts")
    peirce(env, "deploy", "--pool", pool, "--db", lab_db, cwd=tmp_path)
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    workers = [start_worker(env, pool, db_url=lab_db, log=log, name=f"{pool}-{i}") for i, log in enumerate(logs)]
    try:
        run_ids = [submit(env, spec, pool, lab_db) for spec in specs]
        runs = final_runs(env, run_ids, logs, FINAL_WITHIN_S)
    finally:
        for worker in workers:
            stop_worker(worker)

    states = {run.name: run.state for run in runs.values()}
    assert all(s is not None and s.is_completed() for s in states.values()), (states, logs[0].read_text()[-3000:])
    assert sorted(states) == sorted(names)

    db = read_lab(lab_db, names)
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
    by_attempt: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for event in db["events"]:
        if event["entity"] == "experiment":
            by_attempt.setdefault((event["entity_id"], int(event["detail"].get("attempt", 0))), []).append(event)
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
    # First come, first served: no attempt took the balance while another that had asked for it earlier (in the
    # order of the lab's journal) was still waiting. None waited past the lab's timeout.
    asked: dict[tuple[int, int], int] = {}
    took: dict[tuple[int, int], int] = {}
    for event in db["events"]:
        key = (event["entity_id"], int(event["detail"].get("attempt", 0)))
        if event["kind"] == "hold-waiting":
            asked[key] = event["id"]
        elif event["kind"] == "hold-taken":
            took[key] = event["id"]
    assert not [e for e in db["events"] if e["kind"] == "hold-timeout"]
    jumped = [
        (early, late)
        for early in asked
        for late in asked
        if asked[early] < asked[late] and took[late] < took[early] and asked[early] < took[late]
    ]
    assert not jumped, jumped

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
