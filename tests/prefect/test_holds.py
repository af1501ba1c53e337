"""Who holds the lab's instruments and who waits, and a wait that lasts too long.

`peirce holds` is read from the experiments' hold events (no server needed); the timeout is Prefect's: a hold is
a real global concurrency slot on a real server, taken by one campaign's experiment while another's waits for it
past the lab file's `holds.timeout_s` and fails, retryable, with one reason naming who holds the instrument.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import select

from instruments.station import HoldTimeout
from orchestrator.campaign.station import SharedInstruments
from orchestrator.cycle.context import open_campaign
from orchestrator.cycle.holds import PrefectHolds
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Cycle, Event, Experiment, ExperimentState
from orchestrator.store.records import add_event
from tests.campaigns import EXAMPLES_DIR, hartmann_spec, to_spec
from tests.orchestrator.cli.helpers import invoke
from tests.prefect import server

prefect_env = server.prefect_env  # the real server's fixture (tests/prefect/server.py)


def _experiment(db: Database, campaign: str, state: str = ExperimentState.DISPATCHED) -> int:
    """A campaign named `campaign` with experiment 1 in `state`; the experiment's id."""
    spec, text = to_spec(hartmann_spec(name=campaign), EXAMPLES_DIR)
    campaign_id, _ = open_campaign(db, spec, text)
    with db.session() as session:
        cycle = Cycle(campaign_id=campaign_id, index=1)
        session.add(cycle)
        session.flush()
        experiment = Experiment(
            campaign_id=campaign_id,
            cycle_id=cycle.id,
            seq=1,
            idempotency_key=f"{campaign}-1",
            parameters={"x1": 0.5},
            state=state,
            attempts=1,
        )
        session.add(experiment)
        session.flush()
        return experiment.id


def _journal(db: Database, experiment_id: int) -> Any:
    """The cycle's journal of attempt 1 (orchestrator/cycle/experiment.py writes the same events)."""

    def write(kind: str, detail: dict[str, Any]) -> None:
        with db.session() as session:
            experiment = session.get_one(Experiment, experiment_id)
            add_event(
                session, experiment.campaign_id, "experiment", experiment_id, kind, detail={"attempt": 1, **detail}
            )

    return write


def test_peirce_holds_says_who_holds_what_since_when_and_who_waits(sqlite_url: str, tmp_path: Path) -> None:
    db = open_database(sqlite_url)
    holder, waiter, done = _experiment(db, "a"), _experiment(db, "b"), _experiment(db, "c", ExperimentState.COMPLETED)
    slot = {"instrument": "balance", "slot": "instrument:bench:balance"}
    _journal(db, holder)("hold-taken", {**slot, "waited_s": 0.0})
    _journal(db, waiter)("hold-waiting", slot)
    _journal(db, done)("hold-taken", {**slot, "waited_s": 0.0})  # a finished experiment holds nothing any more
    with db.session() as session:
        at = {e.entity_id: e.at for e in session.scalars(select(Event).where(Event.kind.like("hold-%")))}
    shown = invoke("holds", "--db", sqlite_url, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        f"instrument:bench:balance: campaign a (experiment 1) holds balance since {at[holder]:%H:%M:%S}",
        f"instrument:bench:balance: campaign b (experiment 1) waits for balance since {at[waiter]:%H:%M:%S}",
    ]
    rows = json.loads(invoke("holds", "--db", sqlite_url, "--json", cwd=tmp_path).stdout)
    assert [(r["campaign"], r["state"], datetime.fromisoformat(r["since"])) for r in rows] == [
        ("a", "held", at[holder]),
        ("b", "waiting", at[waiter]),
    ]
    _journal(db, holder)("hold-released", {**slot, "held_s": 1.0})
    _journal(db, waiter)("hold-timeout", {**slot, "message": "waited"})
    assert invoke("holds", "--db", sqlite_url, cwd=tmp_path).stdout == "no instrument is held or waited for\n"
    db.dispose()


@pytest.mark.slow
def test_a_wait_past_the_timeout_fails_naming_who_holds_the_instrument(
    prefect_env: dict[str, str], sqlite_url: str
) -> None:
    db = open_database(sqlite_url)
    holder, waiter = _experiment(db, "a"), _experiment(db, "b")
    lab = f"lab_{uuid.uuid4().hex[:6]}"  # a server CI shares among modules may know other labs
    holds = PrefectHolds(db, SharedInstruments(lab=lab, hold_timeout_s=1.0))
    taken, leave = threading.Event(), threading.Event()

    def hold_a_while() -> None:
        with holds.for_attempt(_journal(db, holder), holder, 1)("balance"):
            taken.set()
            leave.wait(60)

    with temporary_settings(updates={PREFECT_API_URL: prefect_env["PREFECT_API_URL"]}):
        thread = threading.Thread(target=hold_a_while)
        thread.start()
        try:
            assert taken.wait(60), "the first hold was never taken"
            started = time.monotonic()
            with pytest.raises(HoldTimeout) as caught, holds.for_attempt(_journal(db, waiter), waiter, 1)("balance"):
                pytest.fail("the balance was taken while another experiment held it")
            waited = time.monotonic() - started
        finally:
            leave.set()
            thread.join(60)
        # Once given back, the next experiment takes it.
        with holds.for_attempt(_journal(db, waiter), waiter, 1)("balance"):
            pass
    assert waited >= 1.0
    with db.session() as session:
        [since] = session.scalars(
            select(Event.at).where(Event.entity == "experiment", Event.entity_id == holder, Event.kind == "hold-taken")
        )
        kinds = session.scalars(
            select(Event.kind).where(Event.entity == "experiment", Event.entity_id == waiter).order_by(Event.id)
        ).all()
    reason = f"waited 1 s for balance, held by campaign a (experiment 1) since {since:%H:%M:%S}"
    assert caught.value.message == reason and caught.value.retryable and caught.value.instrument == "balance"
    assert kinds == ["hold-waiting", "hold-timeout", "hold-waiting", "hold-taken", "hold-released"]
    db.dispose()
