"""The runner lease: an atomic claim, a heartbeat through any step, stale detection that never takes a live lease,
the fence every act passes, the schema's guard against a second dispatch, and status naming a runner that is gone.

Each test here failed on the code before the lease was rebuilt (issue 14, "What broke" 1, 3 and 5)."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import IntegrityError

from orchestrator.campaign import runs
from orchestrator.cycle import takeover
from orchestrator.cycle.context import CampaignContext, load_context, open_campaign
from orchestrator.cycle.experiment import run_attempt
from orchestrator.cycle.recovery import start_cycle
from orchestrator.errors import CampaignConflict
from orchestrator.records.provenance import content_hash
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Campaign, CampaignStatus, Cycle, Dispatch, Event, Experiment, ExperimentState
from orchestrator.store.records import add_event, move_experiment
from tests.campaigns import EXAMPLES_DIR, hartmann_spec, to_spec
from tests.orchestrator.cli.helpers import invoke

HOST = socket.gethostname()


def _campaign(url: str) -> tuple[Database, int]:
    db = open_database(url)
    spec, text = to_spec(hartmann_spec(budget={"experiments": 6, "batch_size": 2}), EXAMPLES_DIR)
    campaign_id, _ = open_campaign(db, spec, text)
    return db, campaign_id


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped), so no process has it now."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _set_lease(db: Database, campaign_id: int, runner: str | None, heartbeat: datetime | None, status: str) -> None:
    with db.session() as session:
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(runner=runner, heartbeat_at=heartbeat, status=status)
        )


def _claims_by_threads(db: Database, campaign_id: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two threads claim at once, each as a process of its own (another host's name, so only a heartbeat can say
    whether it lives). Each claim's first read of the campaign waits for the other's, up to 2 s: without a
    serialised claim both read the lease as free before either writes. Returns how each claim ended."""
    monkeypatch.setattr(runs, "runner_identity", lambda: f"{threading.current_thread().name}:{os.getpid()}")
    both_read = threading.Barrier(2, timeout=2.0)
    waited: set[str] = set()

    def after_read(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        name = threading.current_thread().name
        first_read = name.startswith("runner-") and name not in waited and "FROM campaigns" in statement
        if first_read and statement.lstrip().upper().startswith("SELECT"):
            waited.add(name)
            # A broken barrier: the other claim could not read meanwhile, so claims are serialised.
            with contextlib.suppress(threading.BrokenBarrierError):
                both_read.wait()

    event.listen(db.engine, "after_cursor_execute", after_read)
    results: dict[str, str] = {}

    def claim() -> None:
        try:
            runs.claim(db, campaign_id)
            results[threading.current_thread().name] = "claimed"
        except runs.CampaignConflict as exc:
            results[threading.current_thread().name] = str(exc)

    threads = [threading.Thread(target=claim, name=f"runner-{n}") for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    event.remove(db.engine, "after_cursor_execute", after_read)
    return [results[t.name] for t in threads]


@pytest.mark.parametrize("status", [CampaignStatus.CREATED, CampaignStatus.STOPPED, "killed"])
def test_two_simultaneous_claims_one_wins(db_url: str, status: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db, campaign_id = _campaign(db_url)
    if status == "killed":  # a runner killed outright: marked running, its process gone
        _set_lease(db, campaign_id, f"{HOST}:{_dead_pid()}", datetime.now(UTC), CampaignStatus.RUNNING)
    elif status == CampaignStatus.STOPPED:
        _set_lease(db, campaign_id, None, None, CampaignStatus.STOPPED)
    outcomes = _claims_by_threads(db, campaign_id, monkeypatch)
    assert sorted(o == "claimed" for o in outcomes) == [False, True], outcomes
    loser = next(o for o in outcomes if o != "claimed")
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        assert loser == f"CAMPAIGN: 'h6' is being run by {campaign.runner}"
        taken = session.scalars(
            select(Event.detail).where(
                Event.entity == "campaign",
                (Event.to_state == CampaignStatus.RUNNING) | (Event.kind == "runner-replaced"),
            )
        ).all()
        assert len(taken) == 1  # only the winner marked it running (or, after a kill, replaced the dead runner)


def test_claim_takes_over_a_lease_whose_process_died(sqlite_url: str) -> None:
    db, campaign_id = _campaign(sqlite_url)
    dead = f"{HOST}:{_dead_pid()}"
    _set_lease(db, campaign_id, dead, datetime.now(UTC), CampaignStatus.RUNNING)  # fresh heartbeat, dead process
    lease = runs.claim(db, campaign_id)
    assert lease.runner == runs.runner_identity()
    with db.session() as session:
        replaced = session.scalars(select(Event.detail).where(Event.kind == "runner-replaced")).all()
    assert replaced == [{"runner": lease.runner, "took_over_from": dead}]


def test_the_last_claim_names_the_pool_to_continue_on_after_a_takeover(sqlite_url: str) -> None:
    """A worker's flow run takes over from a dead one's runner and records that run as crashed: that record names
    the dead runner too, and must not be read as the last claim (it has no pool: `peirce resume` would be said)."""
    db, campaign_id = _campaign(sqlite_url)
    dead = f"{HOST}:{_dead_pid()}"
    _set_lease(db, campaign_id, None, None, CampaignStatus.STOPPED)
    first = runs.claim(db, campaign_id, note={"flow_run_id": "run-1", "work_pool": "bench"})
    assert first.runner == runs.runner_identity()
    _set_lease(db, campaign_id, dead, datetime.now(UTC), CampaignStatus.RUNNING)
    with db.session() as session:  # the dead runner's own claim, as its flow run wrote it
        add_event(session, campaign_id, "campaign", campaign_id, "runner-replaced",
                  detail={"runner": dead, "flow_run_id": "run-2", "work_pool": "bench"})  # fmt: skip
    runs.claim(db, campaign_id, note={"flow_run_id": "run-3", "work_pool": "bench"})
    assert takeover.dead_flow_run(db, campaign_id, dead) == "run-2"
    with db.session() as session:
        add_event(session, campaign_id, "campaign", campaign_id, "flow-run-crashed",
                  detail={"flow_run_id": "run-2", "runner": dead, "by_flow_run": "run-3"})  # fmt: skip
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        assert runs.continue_command(session, campaign) == f"peirce submit {campaign.name} --pool bench"
        assert (runs.last_claim(session, campaign_id) or {}).get("flow_run_id") == "run-3"
    assert takeover.dead_flow_run(db, campaign_id, "nobody:1") is None


def test_stale_detection_never_takes_a_live_lease() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    day_old = now - timedelta(days=1)
    # This host: the process table decides, whatever the heartbeat says.
    assert runs.lease_alive(f"{HOST}:{os.getpid()}", day_old, now)
    assert not runs.lease_alive(f"{HOST}:{_dead_pid()}", now, now)
    # Another host: a heartbeat within the stale limit is a live runner.
    assert runs.lease_alive("far-away:12", now - timedelta(minutes=4), now)
    assert not runs.lease_alive("far-away:12", now - timedelta(minutes=6), now)
    assert not runs.lease_alive("far-away:12", None, now)


def test_heartbeat_keeps_the_lease_fresh_through_a_long_step(sqlite_url: str) -> None:
    """A step longer than the stale limit (a furnace ramp, a wait for a person): another host's claim made at the
    end of it is refused, because the heartbeat thread kept beating. The clock is injected: no long sleeps."""
    db, campaign_id = _campaign(sqlite_url)
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    moments = iter(start + timedelta(seconds=30 * n) for n in range(10_000))
    lease = runs.claim(db, campaign_id, interval_s=0.01, clock=lambda: next(moments))
    with lease:
        _wait_for(lambda: lease.beats >= 25)  # 25 beats of 30 s: 12.5 minutes of a step, beyond the stale limit
    with db.session() as session:
        heartbeat = session.get_one(Campaign, campaign_id).heartbeat_at
    assert heartbeat is not None and heartbeat.replace(tzinfo=UTC) >= start + timedelta(minutes=12)
    # As seen from another host at that moment, the lease is live (it would have been stale at the claim's time).
    seen_at = heartbeat.replace(tzinfo=UTC) + timedelta(seconds=30)
    assert runs.lease_alive("far-away:1", heartbeat, seen_at)
    assert not runs.lease_alive("far-away:1", start, seen_at)


def test_heartbeat_notices_a_lost_lease_and_stops(sqlite_url: str) -> None:
    db, campaign_id = _campaign(sqlite_url)
    lease = runs.claim(db, campaign_id, interval_s=0.01)
    with lease:
        _set_lease(db, campaign_id, "far-away:7", datetime.now(UTC), CampaignStatus.RUNNING)
        _wait_for(lambda: lease.lost)
    assert lease.lost_to == "lease lost to far-away:7; stopping"


def test_a_signal_stop_is_written_by_the_heartbeat_thread(sqlite_url: str) -> None:
    db, campaign_id = _campaign(sqlite_url)
    lease = runs.claim(db, campaign_id, interval_s=60)  # the stop must not wait for the next beat
    with lease:
        lease.request_stop("stopped by signal SIGTERM")
        _wait_for(lambda: _status(db, campaign_id) == (CampaignStatus.STOPPING, "stopped by signal SIGTERM"))


def _status(db: Database, campaign_id: int) -> tuple[str, str | None]:
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        return campaign.status, campaign.stop_reason


def _claimed_context(db: Database, campaign_id: int) -> CampaignContext:
    runs.claim(db, campaign_id)
    ctx = load_context(db, campaign_id)
    assert ctx.runner == runs.runner_identity()  # this process holds the lease: its context is fenced
    return ctx


def test_a_runner_that_lost_its_lease_stops_before_acting(db_url: str) -> None:
    db, campaign_id = _campaign(db_url)
    ctx = _claimed_context(db, campaign_id)
    cycle_id = start_cycle(ctx)
    with db.session() as session:
        experiment = Experiment(
            campaign_id=campaign_id, cycle_id=cycle_id, seq=1, idempotency_key="k1", parameters={"x1": 0.5}
        )
        session.add(experiment)
        session.flush()
        move_experiment(session, experiment, ExperimentState.APPROVED)
        experiment_id = experiment.id
    _set_lease(db, campaign_id, "far-away:7", datetime.now(UTC), CampaignStatus.RUNNING)
    with pytest.raises(runs.LeaseLost, match=r"^lease lost to far-away:7; stopping$"):
        start_cycle(ctx)
    with pytest.raises(runs.LeaseLost, match=r"^lease lost to far-away:7; stopping$"):
        run_attempt(ctx, experiment_id)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Cycle)) == 1
        assert session.get_one(Experiment, experiment_id).state == ExperimentState.APPROVED  # never dispatched
        assert session.scalar(select(func.count()).select_from(Dispatch)) == 0


def test_the_schema_refuses_a_second_dispatch_of_one_attempt(db_url: str) -> None:
    """Even if two runners held the lease, the same attempt cannot be dispatched twice: the second runner's
    stale view (the experiment approved, no attempt yet) meets the database's unique (experiment, attempt)."""
    db, campaign_id = _campaign(db_url)
    with db.session() as session:
        cycle = Cycle(campaign_id=campaign_id, index=1)
        session.add(cycle)
        session.flush()
        experiment = Experiment(
            campaign_id=campaign_id, cycle_id=cycle.id, seq=1, idempotency_key="k1", parameters={"x1": 0.5}
        )
        session.add(experiment)
        session.flush()
        move_experiment(session, experiment, ExperimentState.APPROVED)
        experiment_id = experiment.id
    with db.session() as session:
        move_experiment(session, session.get_one(Experiment, experiment_id), ExperimentState.DISPATCHED, runner="a:1")
    with pytest.raises(IntegrityError), db.session() as session:
        stale = session.get_one(Experiment, experiment_id)
        stale.state, stale.attempts = ExperimentState.APPROVED, 0  # what the second runner had read
        move_experiment(session, stale, ExperimentState.DISPATCHED, runner="b:2")
    with db.session() as session:
        rows = session.execute(select(Dispatch.experiment_id, Dispatch.attempt, Dispatch.runner)).all()
    assert [tuple(row) for row in rows] == [(experiment_id, 1, "a:1")]


def test_a_duplicate_cycle_index_ends_the_runner_as_a_lost_lease(sqlite_url: str) -> None:
    """Another process opens cycle 1 between this runner's read of the last index and its insert: the unique index
    refuses the insert, and the runner stops with one line (LeaseLost), not an IntegrityError traceback."""
    db, campaign_id = _campaign(sqlite_url)
    ctx = load_context(db, campaign_id)  # no lease kept: only the schema guards
    path = sqlite_url.removeprefix("sqlite:///")
    inserted: list[bool] = []

    def other_runner_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO CYCLES") and not inserted:
            inserted.append(True)
            with sqlite3.connect(path) as other:
                other.execute(
                    "INSERT INTO cycles (campaign_id, \"index\", stage, started_at) VALUES (?, 1, 'abducing', ?)",
                    (campaign_id, datetime.now(UTC).isoformat()),
                )

    event.listen(db.engine, "before_cursor_execute", other_runner_first)
    try:
        with pytest.raises(runs.LeaseLost, match=r"^lease lost to "):
            start_cycle(ctx)
    finally:
        event.remove(db.engine, "before_cursor_execute", other_runner_first)
    assert _status(db, campaign_id)[0] == CampaignStatus.CREATED  # not marked failed


def test_status_names_a_runner_that_is_gone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    db, campaign_id = _campaign(url)
    dead = f"{HOST}:{_dead_pid()}"
    beat = datetime(2026, 12, 1, 5, 30, 0, tzinfo=UTC)
    _set_lease(db, campaign_id, dead, beat, CampaignStatus.RUNNING)
    db.dispose()
    shown = invoke("status", "h6", "--db", url, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("h6 (running, runner gone)")
    assert lines[1] == (
        f"  runner {dead} is not alive; last heartbeat 2026-12-01 05:30:00 UTC; `peirce resume h6` continues"
    )


def test_status_of_a_live_runner_has_no_hint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    db, campaign_id = _campaign(url)
    _set_lease(db, campaign_id, f"{HOST}:{os.getpid()}", datetime.now(UTC), CampaignStatus.RUNNING)
    db.dispose()
    shown = invoke("status", "h6", "--db", url, cwd=tmp_path)
    assert shown.stdout.splitlines()[0].startswith("h6 (running)")
    assert "not alive" not in shown.stdout


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_campaign_stored_before_a_setting_existed_reopens_from_the_same_file(sqlite_url: str) -> None:
    """Settings added since a campaign was stored (`approval.timeout`, `notify`) are missing from its stored JSON,
    so its hash differs; read by today's model they take their defaults, as the file's do: the same file reopens
    it, and another file is still refused."""
    db = open_database(sqlite_url)
    spec, text = to_spec(hartmann_spec(budget={"experiments": 4, "batch_size": 2}), EXAMPLES_DIR)
    campaign_id, _ = open_campaign(db, spec, text)
    older = spec.model_dump(mode="json")
    older.pop("notify", None)
    older["approval"] = {"policy": "none"}
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        campaign.spec, campaign.spec_hash = older, content_hash(older)
    assert content_hash(older) != spec.content_hash()
    assert open_campaign(db, spec, text) == (campaign_id, "reopened")
    other, other_text = to_spec(hartmann_spec(budget={"experiments": 6, "batch_size": 2}), EXAMPLES_DIR)
    with pytest.raises(CampaignConflict, match="already exists with a different spec"):
        open_campaign(db, other, other_text)


def test_a_runner_that_died_unreaped_is_not_alive() -> None:
    """A runner killed outright whose parent died with it stays a zombie until it is reaped, which a container's
    init may never do; signal 0 still finds such a pid. Its lease must be free all the same."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        # Not waited for: once it has exited it is a zombie of this process.
        while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.02)
        now = datetime.now(UTC)
        os.kill(child.pid, 0)  # the pid is still there to signal
        assert not runs.lease_alive(f"{HOST}:{child.pid}", now, now)
    finally:
        child.wait(timeout=30)
