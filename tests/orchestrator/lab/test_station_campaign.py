"""A campaign on the example station's twins with faults injected into one request in ten: it finishes its
budget, every fault is in the database with the experiment it hit, every measurement is its own sample's, and
no command that moves liquid was ever sent twice without a record."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.campaign import runs
from orchestrator.cycle.context import load_context, open_campaign
from orchestrator.cycle.loop import InlineStages, run_loop
from orchestrator.store.database import open_database
from orchestrator.store.models import Event, Experiment, ExperimentState
from tests.instruments.station_specs import station_spec, station_yaml

pytestmark = pytest.mark.slow


def _run(db_url: str, **knobs: Any):
    db = open_database(db_url)
    spec = station_spec(**knobs)
    campaign_id, _ = open_campaign(db, spec, station_yaml(**knobs))
    runs.claim(db, campaign_id)
    ctx = load_context(db, campaign_id)
    reason = run_loop(ctx, InlineStages(ctx))
    return db, ctx, reason


def test_a_campaign_with_ten_percent_faults_finishes_and_accounts_for_every_fault(sqlite_url: str) -> None:
    db, ctx, reason = _run(sqlite_url, experiments=8, batch_size=4, fault_rate=0.1, max_retries=3, seed=3)
    assert reason == "budget of 8 experiments spent"
    runtime = ctx.lab.station
    injected = runtime.injected_faults
    assert len(injected) >= 10, "the twins did inject faults"
    with db.session() as session:
        experiments = session.scalars(select(Experiment).where(Experiment.campaign_id == ctx.campaign_id)).all()
        events = session.scalars(
            select(Event).where(Event.campaign_id == ctx.campaign_id, Event.entity == "experiment").order_by(Event.id)
        ).all()
        spent = [e for e in experiments if e.state in ExperimentState.SPENT]
        assert len(spent) == 8
        completed = [e for e in experiments if e.state == ExperimentState.COMPLETED]
        assert len(completed) >= 6

        # --- every fault is recorded with the experiment it hit ---
        windows = _action_windows(events)
        unexplained = []
        for instrument, fault in injected:
            hit = [w for w in windows if w["instrument"] == instrument and w["start"] <= fault.at <= w["end"]]
            if not hit:
                continue  # a fault while connecting or bringing an instrument to its safe state: checked below
            record = hit[0]
            sent = [e["data"] for e in record["transcript"] if e["dir"] == "tx"]
            # The fault shows as a failed action, late bytes thrown away, a retry or re-send noted, or (for a
            # command the device never answers) a second copy that covered a lost first one.
            evidence = (
                record["failed"]
                or sent.count(fault.request) >= 2
                or _lost_setting_read_back_unchanged(record["transcript"], fault)
                or any(
                    e["dir"] == "discarded"
                    or (e["dir"] == "note" and (e["data"].startswith("retry") or "again" in e["data"]))
                    for e in record["transcript"]
                )
            )
            if fault.request not in sent or not evidence:
                unexplained.append((instrument, fault, record["experiment"]))
        assert not unexplained, unexplained
        # Faults while connecting or bringing an instrument to its safe state are in that experiment's events too;
        # only the shutdown after the last experiment (ports closed, no experiment left to hit) is outside.
        last = max(w["end"] for w in windows)
        outside = [(i, f) for i, f in injected if f.at <= last and not _within(windows, i, f.at)]
        assert not outside, outside

        # --- failures name their fault kind; retries are recorded attempts under the same key ---
        for event in events:
            if event.kind == "state" and event.to_state == ExperimentState.FAILED:
                assert event.detail["fault"] in ("timeout", "protocol", "device", "disconnected")

        # --- no measurement belongs to another experiment: each equals its own sample's true yield ---
        samples = {}
        for event in events:
            if event.kind == "sample":
                samples[(event.entity_id, event.detail["attempt"])] = event.detail["sample"]
        for experiment in completed:
            sample = samples[(experiment.id, experiment.attempts)]
            vessel = runtime.bench.vessels[sample]
            truth = 100 * vessel.p_mmol / vessel.chemistry.charge_b_mmol
            measured = next(m.value for m in experiment.measurements if m.attempt == experiment.attempts)
            assert measured == pytest.approx(truth, abs=1.0), (experiment.seq, sample)

        # --- RUN (the pump's only liquid-moving command) went out once per dispense action, each recorded ---
        pump_log = next(s for s in runtime.servers if s.name == "pump").log
        recorded_runs = 0
        for window in windows:
            runs_sent = [e for e in window["transcript"] if e["dir"] == "tx" and e["data"].endswith("RUN")]
            assert len(runs_sent) <= 1, window
            recorded_runs += len(runs_sent)
        assert sum(r.endswith("RUN") for r in pump_log) == recorded_runs


def _action_windows(events: list[Event]) -> list[dict[str, Any]]:
    """Each action's span, from its `action-started` event to its `action-done` / `action-failed` event."""
    open_actions: dict[tuple[int, int, int], float] = {}
    windows = []
    for event in events:
        detail = event.detail or {}
        key = (event.entity_id, detail.get("attempt", 0), detail.get("step", -1))
        at = _seconds(event.at)
        if event.kind in ("connect-started", "instrument-safe", "instrument-safe-failed"):
            key = (event.entity_id, detail.get("attempt", 0), detail["instrument"])  # type: ignore[assignment]
        if event.kind in ("action-started", "connect-started"):
            open_actions[key] = at
        elif event.kind in (
            "action-done",
            "action-failed",
            "connect-done",
            "connect-failed",
            "instrument-safe",
            "instrument-safe-failed",
        ):
            start = min([open_actions.pop(key, at), *(e["at"] for e in detail["transcript"][:1])])
            end = max([at, *(e["at"] for e in detail["transcript"][-1:])])
            windows.append(
                {
                    "experiment": event.entity_id,
                    "instrument": detail["instrument"],
                    "start": start,
                    "end": end,
                    "transcript": detail["transcript"],
                    "failed": event.kind.endswith("-failed"),
                }
            )
    return windows


def _within(windows: list[dict[str, Any]], instrument: str, at: float) -> bool:
    return any(w["instrument"] == instrument and w["start"] <= at <= w["end"] for w in windows)


def _seconds(at: datetime) -> float:
    # SQLite gives naive datetimes back; the store writes UTC.
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def test_the_station_campaign_also_runs_over_tcp_with_the_bayesian_planner(sqlite_url: str) -> None:
    db, ctx, reason = _run(sqlite_url, experiments=6, batch_size=3, transport="tcp", planner="bayesian")
    assert reason == "budget of 6 experiments spent"
    with db.session() as session:
        states = defaultdict(int)
        for experiment in session.scalars(select(Experiment).where(Experiment.campaign_id == ctx.campaign_id)):
            states[experiment.state] += 1
    assert states == {ExperimentState.COMPLETED: 6}


def _lost_setting_read_back_unchanged(transcript: list[dict[str, Any]], fault: Any) -> bool:
    """A lost setting the device already had: `OUT_SP_n v` dropped (`no_answer`) while the setpoint was already v, so
    the driver's read-back (`IN_SP_n`, answered `v n`) finds it taken and rightly sends nothing more. Harmless, and
    shown by the read-back in the record."""
    command, _, value = fault.request.partition(" ")
    if fault.kind != "no_answer" or not command.startswith("OUT_SP_") or not value:
        return False
    query = command.replace("OUT_", "IN_")
    entries = [(e["dir"], str(e["data"])) for e in transcript]
    try:
        after = next(i for i, (d, data) in enumerate(entries) if d == "tx" and data == fault.request)
        asked = next(i for i in range(after + 1, len(entries)) if entries[i] == ("tx", query))
        answer = next(data for d, data in entries[asked + 1 :] if d == "rx")
    except StopIteration:
        return False
    words = answer.split()
    return bool(words) and float(words[0]) == float(value)
