"""Faults of a lab on several machines, against real processes: a Prefect server, workers, a database.

- A worker killed in the middle of an experiment (SIGKILL to the worker and the flow run it started, while the
  experiment holds the lab's balance): the campaign is submitted again and a second worker carries it to the end of
  its budget; the experiment in doubt is abandoned with the action it left unconfirmed, nothing is measured twice
  or sent without a dispatch record, the balance's hold of the dead run lapses and is taken again, and Prefect's
  record of the dead run is set to Crashed by the run that took the campaign over.
- The Prefect server restarted under a running campaign (see its test).
- The database restarted under a running campaign (see its test).

Everything is read back from the database's tables and from Prefect's API, never through the code under test.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from orchestrator.errors import PeirceError
from orchestrator.store.database import open_database
from tests.prefect import lab_setup, server
from tests.prefect.lab_setup import final_runs, peirce, poll, read_lab, read_run, submit, write_campaign, write_lab
from tests.prefect.postgres_cluster import PrivatePostgres
from tests.prefect.server import descendants, start_worker, stop_worker

pytestmark = pytest.mark.slow
prefect_env = server.prefect_env
lab_db = lab_setup.lab_db
balance = lab_setup.balance

EXPERIMENTS, BATCH = 4, 2
# The dead run's hold lapses on its own: its lease (60 s, Prefect's least) plus the server's 15 s sweep.
FINAL_WITHIN_S = 360.0


def wait_for_event(url: str, campaign: str, kind: str, within_s: float = 240.0) -> dict[str, Any]:
    """The first event of `kind` of the campaign's experiments, polled from the events table."""
    row = poll(
        url,
        "SELECT v.entity_id, v.detail FROM events v JOIN campaigns c ON c.id = v.campaign_id"
        " WHERE c.name = :name AND v.entity = 'experiment' AND v.kind = :kind ORDER BY v.id LIMIT 1",
        {"name": campaign, "kind": kind},
        lambda row: row is not None,
        within_s,
        f"no {kind} event of {campaign} within {within_s:.0f} s",
    )
    return dict(row._mapping)


def kill_tree(process: Any) -> None:
    """SIGKILL to a worker and everything below it, at once: a computer that lost power, as far as they know."""
    pids = [process.pid, *descendants(process.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_a_worker_killed_mid_experiment_the_campaign_goes_on_on_another_worker(
    prefect_env: dict[str, str], lab_db: str, balance: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    lab, pool, name = f"lab_{suffix}", f"faults-{suffix}", f"killed_{suffix}"
    write_lab(tmp_path, lab, balance)
    # One experiment at a time, each holding the balance for 2 s between its weighings: the kill lands inside one.
    spec = write_campaign(tmp_path, name, seed=1, experiments=EXPERIMENTS, batch=BATCH, wait_s=2.0, concurrency=1)
    env = {**prefect_env, "PEIRCE_ARTIFACTS": str(tmp_path / "artifacts")}
    env.pop("PEIRCE_DB_URL", None)
    deployed = subprocess.run(
        [lab_setup.PEIRCE, "deploy", "--pool", pool, "--db", lab_db],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "leases in memory" not in deployed.stderr  # this lab's server keeps its holds on disk
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    first_worker = start_worker(env, pool, db_url=lab_db, log=logs[0], name=f"{pool}-a")
    second_worker = None
    try:
        first_run = submit(env, spec, pool, lab_db)
        held = wait_for_event(lab_db, name, "hold-taken")
        wait_for_event(lab_db, name, "action-done")  # the first weighing confirmed; the balance still held
        kill_tree(first_worker)
        killed_in = held["entity_id"]

        # Nothing runs the campaign now; Prefect still believes its run is running.
        assert str(read_run(env, first_run).state_name) == "Running"
        # peirce knows the campaign ran on the pool and says how to continue it there (not `peirce resume`, which
        # would run it wherever it is typed); by its name, as a person would.
        status = peirce(env, "status", name, "--db", lab_db, cwd=tmp_path)
        assert "is not alive" in status and f"`peirce submit {name} --pool {pool}` continues" in status, status
        second_worker = start_worker(env, pool, db_url=lab_db, log=logs[1], name=f"{pool}-b")
        submitted = peirce(env, "submit", name, "--pool", pool, "--db", lab_db, cwd=tmp_path)
        assert f"continuing campaign '{name}'" in submitted
        second_run = uuid.UUID(submitted.split("flow run ")[1].split()[0])
        runs = final_runs(env, [second_run], logs, FINAL_WITHIN_S)
    finally:
        for worker in (first_worker, second_worker):
            if worker is not None:
                stop_worker(worker)

    state = runs[second_run].state
    assert state is not None and state.is_completed(), (state, logs[1].read_text()[-3000:])
    assert f"{second_run}" in logs[1].read_text() and f"{second_run}" not in logs[0].read_text()

    db = read_lab(lab_db, [name])
    assert db["campaigns"][name] == "completed"
    experiments = {e["id"]: e for e in db["experiments"]}
    # The experiment the kill interrupted is abandoned, naming what the dead run left unconfirmed or last did.
    interrupted = experiments[killed_in]
    assert interrupted["state"] == "abandoned", interrupted
    abandoned = [e["detail"] for e in db["events"] if e["entity_id"] == killed_in and e["to_state"] == "abandoned"]
    assert len(abandoned) == 1 and "interrupt" in abandoned[0]["reason"], abandoned
    assert abandoned[0].get("last_action", abandoned[0].get("unconfirmed_action"))["instrument"] == "balance"
    # The budget is spent all the same, by experiments the second run planned and measured.
    completed = [e for e in experiments.values() if e["state"] == "completed"]
    assert len(completed) == EXPERIMENTS, experiments
    measured = {(m["experiment_id"], m["attempt"]) for m in db["measurements"] if m["name"] == "score"}
    assert all((e["id"], e["attempts"]) in measured for e in completed)
    assert len(measured) == len([m for m in db["measurements"] if m["name"] == "score"])  # none measured twice
    # Every action sent to the balance belongs to an attempt with a dispatch record, and no step ran twice in one.
    dispatched = {(d["experiment_id"], d["attempt"]) for d in db["dispatches"]}
    steps = [
        (e["entity_id"], e["detail"]["attempt"], e["detail"]["step"])
        for e in db["events"]
        if e["kind"] == "action-started"
    ]
    assert all((experiment, attempt) in dispatched for experiment, attempt, _ in steps)
    assert len(steps) == len(set(steps))
    # The dead run's hold lapsed and the balance was taken again: every later attempt holds it once.
    taken = [e for e in db["events"] if e["kind"] == "hold-taken"]
    assert len(taken) == len(completed) + 1
    # The run that took the campaign over said whose lease it took, and set Prefect's record of the dead run.
    replaced = [e["detail"] for e in db["events"] if e["entity"] == "campaign" and "took_over_from" in e["detail"]]
    assert len(replaced) == 1, replaced
    dead = read_run(env, first_run)
    assert dead.state is not None and dead.state.is_crashed(), dead.state
    assert str(second_run) in str(dead.state.message)


def wait_for_completed(url: str, campaign: str, count: int, within_s: float = 240.0) -> None:
    """Until `count` experiments of the campaign are completed."""
    poll(
        url,
        "SELECT count(*) FROM experiments e JOIN campaigns c ON c.id = e.campaign_id"
        " WHERE c.name = :name AND e.state = 'completed'",
        {"name": campaign},
        lambda row: row[0] >= count,
        within_s,
        f"fewer than {count} experiments of {campaign} completed within {within_s:.0f} s",
    )


def test_the_prefect_server_restarted_mid_run_the_campaign_carries_on(
    lab_db: str, balance: str, tmp_path: Path
) -> None:
    """A server of its own (restarting the one other tests share would disturb them), set up as docs/deploy.md says:
    its holds kept on disk. It is stopped after the first experiment completes, while the next ones run, and
    started again on the same port 8 s later."""
    suffix = uuid.uuid4().hex[:6]
    lab, pool, name = f"lab_{suffix}", f"restart-{suffix}", f"restarted_{suffix}"
    write_lab(tmp_path, lab, balance)
    spec = write_campaign(tmp_path, name, seed=2, experiments=6, batch=2, wait_s=1.0, concurrency=1)
    home = tmp_path / "prefect-home"
    home.mkdir()
    logs = [tmp_path / "worker.log"]
    started = server.StartedServer(home)
    with started as prefect:
        env = {**prefect, "PEIRCE_ARTIFACTS": str(tmp_path / "artifacts")}
        env.pop("PEIRCE_DB_URL", None)
        peirce(env, "deploy", "--pool", pool, "--db", lab_db, cwd=tmp_path)
        worker = start_worker(env, pool, db_url=lab_db, log=logs[0])
        try:
            run = submit(env, spec, pool, lab_db)
            wait_for_completed(lab_db, name, 1)
            started.stop()
            down_at = time.monotonic()
            time.sleep(8)
            started.start()
            down_s = time.monotonic() - down_at
            runs = final_runs(env, [run], logs, FINAL_WITHIN_S)
        finally:
            stop_worker(worker)

    # The run carried on through the outage (its worker, its flow run and its holds all outlived it).
    state = runs[run].state
    assert state is not None and state.is_completed(), (state, logs[0].read_text()[-3000:])
    assert down_s > 8
    db = read_lab(lab_db, [name])
    assert db["campaigns"][name] == "completed"
    experiments = db["experiments"]
    assert len(experiments) == 6 and {e["state"] for e in experiments} == {"completed"}, experiments
    measured = {(m["experiment_id"], m["attempt"]) for m in db["measurements"] if m["name"] == "score"}
    assert all((e["id"], e["attempts"]) in measured for e in experiments)  # nothing lost
    steps = [
        (e["entity_id"], e["detail"]["attempt"], e["detail"]["step"])
        for e in db["events"]
        if e["kind"] == "action-started"
    ]
    assert len(steps) == len(set(steps)) == 2 * sum(e["attempts"] for e in experiments)  # nothing repeated
    # Holds never overlapped, across the restart.
    spans = _hold_spans(db["events"])
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(sorted(spans))), spans
    # The lab runs one experiment at a time (max_concurrency 1), batches of two notwithstanding, on a worker too.
    running = _state_spans(db["events"], "running", "completed")
    assert len(running) == 6 and all(a[1] <= b[0] for a, b in itertools.pairwise(sorted(running))), running


def _state_spans(events: list[dict[str, Any]], start: str, end: str) -> list[tuple[Any, Any]]:
    """Per experiment, from its last move to `start` to its move to `end`."""
    began: dict[int, Any] = {}
    spans = []
    for event in events:
        if event["entity"] != "experiment":
            continue
        if event["to_state"] == start:
            began[event["entity_id"]] = event["at"]
        elif event["to_state"] == end and event["entity_id"] in began:
            spans.append((began.pop(event["entity_id"]), event["at"]))
    return spans


def _hold_spans(events: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    taken: dict[tuple[int, int], Any] = {}
    spans = []
    for event in events:
        key = (event["entity_id"], event["detail"].get("attempt"))
        if event["kind"] == "hold-taken":
            taken[key] = event["at"]
        elif event["kind"] == "hold-released" and key in taken:
            spans.append((taken.pop(key), event["at"]))
    return spans


@pytest.fixture
def own_postgres() -> Iterator[PrivatePostgres]:
    # Not under pytest's own folder, which only root may enter: the server runs as the postgres user.
    folder = Path(tempfile.mkdtemp(prefix="peirce-test-pg-"))
    try:
        cluster = PrivatePostgres(folder)
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(AssertionError):
                cluster.stop("immediate")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_database_restarted_mid_run(
    prefect_env: dict[str, str], own_postgres: PrivatePostgres, balance: str, tmp_path: Path
) -> None:
    """A PostgreSQL server of its own, stopped (fast: every session ended, as for an upgrade) after the first
    experiment completes and started again 5 s later. The runner waits for the server to come back and carries
    on; had a write been under way at the stop, the run stops instead and the campaign is submitted again, which
    this test then does. Either way: the budget spent, nothing measured lost, nothing repeated without a record."""
    lab_db = own_postgres.url
    suffix = uuid.uuid4().hex[:6]
    lab, pool, name = f"lab_{suffix}", f"pg-{suffix}", f"pg_restarted_{suffix}"
    write_lab(tmp_path, lab, balance)
    spec = write_campaign(tmp_path, name, seed=3, experiments=6, batch=2, wait_s=1.0, concurrency=1)
    env = {**prefect_env, "PEIRCE_ARTIFACTS": str(tmp_path / "artifacts")}
    env.pop("PEIRCE_DB_URL", None)
    peirce(env, "deploy", "--pool", pool, "--db", lab_db, cwd=tmp_path)
    logs = [tmp_path / "worker.log"]
    worker = start_worker(env, pool, db_url=lab_db, log=logs[0])
    try:
        run = submit(env, spec, pool, lab_db)
        wait_for_completed(lab_db, name, 1)
        own_postgres.stop("fast")
        time.sleep(5)
        own_postgres.start()
        runs = final_runs(env, [run], logs, FINAL_WITHIN_S)
        state = runs[run].state
        assert state is not None
        if not state.is_completed():
            # Stopped by a write the restart cut short: the campaign is left to be taken over, and is.
            assert state.is_failed() or state.is_crashed(), state
            again = submit(env, spec, pool, lab_db)
            state = final_runs(env, [again], logs, FINAL_WITHIN_S)[again].state
            assert state is not None and state.is_completed(), (state, logs[0].read_text()[-3000:])
    finally:
        stop_worker(worker)

    db = read_lab(lab_db, [name])
    assert db["campaigns"][name] == "completed"
    completed = [e for e in db["experiments"] if e["state"] == "completed"]
    assert len(completed) == 6, db["experiments"]
    # Anything else was in flight at the stop and is abandoned, with its reason.
    for experiment in db["experiments"]:
        if experiment["state"] != "completed":
            assert experiment["state"] == "abandoned", experiment
    measured = {(m["experiment_id"], m["attempt"]) for m in db["measurements"] if m["name"] == "score"}
    assert all((e["id"], e["attempts"]) in measured for e in completed)
    dispatched = {(d["experiment_id"], d["attempt"]) for d in db["dispatches"]}
    steps = [
        (e["entity_id"], e["detail"]["attempt"], e["detail"]["step"])
        for e in db["events"]
        if e["kind"] == "action-started"
    ]
    assert all((experiment, attempt) in dispatched for experiment, attempt, _ in steps)
    assert len(steps) == len(set(steps))
    spans = _hold_spans(db["events"])
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(sorted(spans))), spans


def test_a_writer_waits_for_its_restarted_database_and_a_command_on_a_dead_one_fails_at_once(
    own_postgres: PrivatePostgres,
) -> None:
    db = open_database(own_postgres.url)
    try:
        with db.session() as session:
            assert session.execute(text("SELECT 1")).scalar_one() == 1
        own_postgres.stop("fast")  # every session ended, the pooled connection with it
        restarter = threading.Timer(3.0, own_postgres.start)
        restarter.start()
        started = time.monotonic()
        with db.session() as session:  # waits for the server instead of failing
            assert session.execute(text("SELECT 2")).scalar_one() == 2
        assert time.monotonic() - started >= 2.5
        restarter.join()
    finally:
        db.dispose()
    # A process that never reached the server is not kept waiting: a wrong address says so at once.
    own_postgres.stop("fast")
    started = time.monotonic()
    with pytest.raises(PeirceError):
        open_database(own_postgres.url)
    assert time.monotonic() - started < 30


def test_deploy_warns_when_the_server_would_forget_its_holds_on_a_restart(tmp_path: Path) -> None:
    """Prefect's default lease storage is memory: `peirce deploy` reads the server's settings and says so."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    memory = {"PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.memory"}
    with server.StartedServer(home, memory) as env:
        db = f"sqlite:///{tmp_path / 'lab.db'}"
        done = subprocess.run(
            [lab_setup.PEIRCE, "deploy", "--pool", "memory-pool", "--db", db],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr
    assert "deployed peirce-campaign/memory-pool" in done.stdout
    warning = [line for line in done.stderr.splitlines() if "keeps its leases in memory" in line]
    assert len(warning) == 1 and "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=" in warning[0], done.stderr
