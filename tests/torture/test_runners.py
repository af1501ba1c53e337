"""Exactly one runner, tortured with real `peirce` processes (issue 14, "What broke" 1, 2 and 5).

- Three `peirce resume C` started at once on a campaign that is new, stopped, or whose runner was killed (a real
  SIGKILL mid-run, or a lease left by a process that is gone): exactly one runs it, the others are refused with one
  line; afterwards the database shows no attempt dispatched twice, at most one measurement per experiment, attempt
  and objective, at most one deduce decision per cycle, no cycle index twice, and the budget spent exactly.
- Two `peirce run` on a new database file at once: no traceback; one runs, the other is refused or continues the
  campaign after it (a run that finds the campaign completed says so).
- SIGTERM and Ctrl-C (SIGINT) stop a runner at its next safe point, as `peirce stop` does, with one line.

Bounded: every process has a timeout, and the whole file runs in about a minute and a half on two cores. The long
version (many more trials, and the Prefect engine) is `benchmarks/torture.py`.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.campaigns import hartmann_spec, write_spec
from tests.orchestrator.cli.helpers import invoke
from tests.torture.processes import completed, finish, query, start, wait_for

pytestmark = pytest.mark.slow

BUDGET = 15


def _spec(folder: Path) -> Path:
    data = hartmann_spec(budget={"experiments": BUDGET, "batch_size": 3})
    # Experiments long enough for the three runners to overlap: CI once started the third after the first had
    # finished (at 0.1 s an experiment), and it was refused as completed rather than as being run.
    data["lab"] = {**data["lab"], "delay_s": 0.5}
    return write_spec(folder / "c.yaml", data)


def _prepare(folder: Path, state: str) -> str:
    """A campaign `h6` in `folder/c.db` in `state`: created (never run), killed (its runner SIGKILLed mid-run),
    stopped (killed, then `peirce stop`, which finds no runner and marks it stopped), or gone (marked running by
    a process of this host that no longer exists, as after a kill before any experiment)."""
    _spec(folder)
    url = f"sqlite:///{folder / 'c.db'}"
    if state in ("created", "gone"):
        made = invoke("validate", "c.yaml", cwd=folder)
        assert made.returncode == 0, made.stderr
        _create_only(folder, url)
        if state == "gone":
            dead = subprocess.Popen(["true"])
            dead.wait()
            with sqlite3.connect(folder / "c.db") as connection:
                connection.execute(
                    "UPDATE campaigns SET status = 'running', runner = ?, heartbeat_at = CURRENT_TIMESTAMP",
                    (f"{socket.gethostname()}:{dead.pid}",),
                )
        return url
    runner = start(["run", "c.yaml", "--db", url, "--engine", "inline"], folder)
    try:
        wait_for(lambda: completed(folder / "c.db") >= 3)
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.communicate()
    if state == "stopped":
        stopped = invoke("stop", "h6", "--db", url, cwd=folder)
        assert stopped.stdout.strip() == "'h6' stopped (no runner was active)", stopped
    return url


def _create_only(folder: Path, url: str) -> None:
    # The campaign row as `peirce run` writes it before its runner claims it, without running anything.
    from orchestrator.campaign.spec import load_spec
    from orchestrator.cycle.context import open_campaign
    from orchestrator.store.database import open_database

    db = open_database(url)
    spec, text = load_spec(folder / "c.yaml")
    open_campaign(db, spec, text)
    db.dispose()


def _check_one_runner_left_one_record(db: Path) -> None:
    """What two runners at once left behind in issue 14, each counted: none of it may be there."""
    dispatched = Counter(
        query(
            db,
            "SELECT entity_id, json_extract(detail, '$.attempt') FROM events "
            "WHERE entity = 'experiment' AND to_state = 'dispatched'",
        )
    )
    assert max(dispatched.values()) == 1, "an attempt dispatched twice"
    measured = query(db, "SELECT experiment_id, attempt, name, count(*) FROM measurements GROUP BY 1, 2, 3")
    assert all(row[3] == 1 for row in measured), "two measurements of one attempt"
    per_experiment = query(db, "SELECT count(DISTINCT attempt) FROM measurements GROUP BY experiment_id")
    assert all(row[0] == 1 for row in per_experiment), "an experiment measured in two attempts"
    decisions = query(db, "SELECT cycle_id, count(*) FROM decisions WHERE stage = 'deduce' GROUP BY cycle_id")
    assert all(row[1] == 1 for row in decisions), "two deduce decisions in one cycle"
    keys = query(db, "SELECT idempotency_key, count(*) FROM experiments WHERE state = 'completed' GROUP BY 1")
    assert all(row[1] == 1 for row in keys), "an idempotency key completed twice"
    spent = query(db, "SELECT count(*) FROM experiments WHERE state IN ('completed', 'failed', 'infeasible')")
    assert spent[0][0] == BUDGET, "the budget not spent exactly"
    assert query(db, "SELECT status, runner FROM campaigns") == [("completed", None)]


@pytest.mark.parametrize("state", ["created", "stopped", "killed", "gone", "killed", "stopped"], ids=lambda s: s)
def test_simultaneous_resumes_one_runner(tmp_path: Path, state: str) -> None:
    url = _prepare(tmp_path, state)
    runners = [start(["resume", "h6", "--db", url, "--engine", "inline"], tmp_path) for _ in range(3)]
    ended = [finish(process) for process in runners]
    for _, out, err in ended:
        assert "Traceback" not in err and "Traceback" not in out, err
    ran = [(out, err) for code, out, err in ended if code == 0]
    refused = [err for code, out, err in ended if code != 0]
    assert len(ran) == 1, ended
    assert "h6 finished: budget of 15 experiments spent" in ran[0][0]
    assert len(refused) == 2
    for err in refused:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: CAMPAIGN: 'h6' is being run by "), ended
    _check_one_runner_left_one_record(tmp_path / "c.db")


@pytest.mark.parametrize("trial", range(3))
def test_two_runs_on_a_new_database_file(tmp_path: Path, trial: int) -> None:
    _spec(tmp_path)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    runners = [start(["run", "c.yaml", "--db", url, "--engine", "inline"], tmp_path) for _ in range(2)]
    ended = [finish(process) for process in runners]
    for _, out, err in ended:
        assert "Traceback" not in err and "Traceback" not in out, err
    finished = [out for code, out, _ in ended if code == 0 and "h6 finished: budget of 15" in out]
    assert len(finished) == 1, ended  # one ran the campaign to its end
    other = next(result for result in ended if result[1] not in finished)
    code, out, err = other
    if code == 0:  # it came after the first had finished, and found nothing to do
        assert "continuing campaign 'h6' from the database" in out, other
    else:
        lines = err.strip().splitlines()
        assert len(lines) == 1, other
        assert lines[0].startswith("error: CAMPAIGN: 'h6' is being run by ") or "already completed" in lines[0]
    _check_one_runner_left_one_record(tmp_path / "c.db")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("engine", ["inline", "prefect"])
def test_a_signal_stops_the_runner_at_the_next_safe_point(tmp_path: Path, signum: signal.Signals, engine: str) -> None:
    """On either engine: Prefect swaps in its own SIGTERM handler while a flow runs (one that ends the flow run at
    once); a flow started by `peirce` puts the runner's back, so SIGTERM is the same stop as Ctrl-C."""
    data = hartmann_spec(budget={"experiments": 300, "batch_size": 3})
    data["lab"] = {**data["lab"], "delay_s": 0.1}
    write_spec(tmp_path / "c.yaml", data)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    runner = start(["run", "c.yaml", "--db", url, "--engine", engine], tmp_path)
    wait_for(lambda: completed(tmp_path / "c.db") >= 3, timeout=120)
    runner.send_signal(signum)
    code, out, err = finish(runner)
    name = signum.name
    assert code == 0, err
    assert err.strip().splitlines() == [f"{name} received: stopping after the experiments now running"]
    assert f"h6 finished: stopped by signal {name}" in out
    status, reason, runner_left = query(tmp_path / "c.db", "SELECT status, stop_reason, runner FROM campaigns")[0]
    assert (status, reason, runner_left) == ("stopped", f"stopped by signal {name}", None)
    states = {row[0] for row in query(tmp_path / "c.db", "SELECT DISTINCT state FROM experiments")}
    assert states <= {"completed", "abandoned"}  # experiments running then finished; none left in doubt
    resumed = invoke("status", "h6", "--db", url, cwd=tmp_path)
    assert "not alive" not in resumed.stdout and "(stopped)" in resumed.stdout


def test_a_runner_whose_lease_was_taken_stops_with_one_line(tmp_path: Path) -> None:
    """Another host takes the lease under a running campaign (as if this runner's heartbeat had gone stale): the
    runner stops before its next act with one line, leaves the campaign to the new holder (neither failed nor
    finished), and sends nothing more to the lab."""
    data = hartmann_spec(budget={"experiments": 300, "batch_size": 3})
    data["lab"] = {**data["lab"], "delay_s": 0.1}
    write_spec(tmp_path / "c.yaml", data)
    db = tmp_path / "c.db"
    runner = start(["run", "c.yaml", "--db", f"sqlite:///{db}", "--engine", "inline"], tmp_path)
    wait_for(lambda: completed(db) >= 3)
    with sqlite3.connect(db, timeout=30) as connection:
        connection.execute("UPDATE campaigns SET runner = 'far-away:4242', heartbeat_at = CURRENT_TIMESTAMP")
    taken_at = query(db, "SELECT max(id) FROM events")[0][0]
    code, out, err = finish(runner)
    assert code == 1, (out, err)
    assert err.strip().splitlines() == ["error: lease lost to far-away:4242; stopping"]
    assert query(db, "SELECT status, runner FROM campaigns") == [("running", "far-away:4242")]
    dispatched_after = query(db, f"SELECT count(*) FROM events WHERE id > {taken_at} AND to_state = 'dispatched'")
    assert dispatched_after == [(0,)]
