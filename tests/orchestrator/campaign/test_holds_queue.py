"""First come, first served on a lab's shared instrument, decided from the lab's journal.

Prefect's slots are polled: whoever asks again first when a slot frees takes it, so a campaign that began waiting
long ago could lose its turn again and again. Each experiment therefore asks Prefect only at its turn
(`turn_to_take`): when no live runner's experiment holds the instrument and none began waiting for it earlier.
These tests write the journal's hold events as runners do and ask whose turn it is, on SQLite and PostgreSQL
(the slot is picked out of the events' JSON by each database)."""

from __future__ import annotations

import os
import socket
from typing import Any

from orchestrator.campaign.holds import turn_to_take
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Campaign, Cycle, Event, Experiment, ExperimentState

SLOT = "instrument:bench_lab:hotplate"
LIVE = f"{socket.gethostname()}:{os.getpid()}"
DEAD = f"{socket.gethostname()}:999999999"  # no such process


class Lab:
    """A lab's database with campaigns whose experiments run, each writing hold events in order."""

    def __init__(self, url: str) -> None:
        self.db: Database = open_database(url)
        self.experiments: dict[str, int] = {}

    def campaign(self, name: str, runner: str, experiments: int) -> None:
        with self.db.session() as session:
            campaign = Campaign(name=name, spec={}, spec_text="", spec_hash="0" * 64, runner=runner, status="running")
            session.add(campaign)
            session.flush()
            cycle = Cycle(campaign_id=campaign.id, index=1)
            session.add(cycle)
            session.flush()
            for seq in range(1, experiments + 1):
                experiment = Experiment(
                    campaign_id=campaign.id,
                    cycle_id=cycle.id,
                    seq=seq,
                    idempotency_key=f"{name}:{seq}",
                    parameters={},
                    state=ExperimentState.RUNNING,
                    attempts=1,
                )
                session.add(experiment)
                session.flush()
                self.experiments[f"{name}#{seq}"] = experiment.id

    def write(self, who: str, kind: str, slot: str = SLOT) -> None:
        experiment_id = self.experiments[who]
        with self.db.session() as session:
            campaign_id = session.get_one(Experiment, experiment_id).campaign_id
            detail: dict[str, Any] = {"attempt": 1, "instrument": slot.rsplit(":", 1)[1], "slot": slot}
            session.add(
                Event(campaign_id=campaign_id, entity="experiment", entity_id=experiment_id, kind=kind, detail=detail)
            )

    def turn(self, who: str, slot: str = SLOT) -> bool:
        with self.db.session() as session:
            return turn_to_take(session, slot, self.experiments[who], 1)


def test_waiters_are_served_in_the_order_they_asked(db_url: str) -> None:
    lab = Lab(db_url)
    lab.campaign("a", LIVE, 2)
    lab.campaign("b", LIVE, 1)
    lab.write("a#1", "hold-waiting")
    lab.write("a#1", "hold-taken")
    lab.write("b#1", "hold-waiting")
    lab.write("a#2", "hold-waiting")
    # Held: nobody's turn, not even the first waiter's.
    assert not lab.turn("b#1") and not lab.turn("a#2")
    lab.write("a#1", "hold-released")
    # Free: the first to ask (campaign b), though campaign a's runner asks again as often.
    assert lab.turn("b#1") and not lab.turn("a#2")
    lab.write("b#1", "hold-taken")
    assert not lab.turn("a#2")
    lab.write("b#1", "hold-released")
    assert lab.turn("a#2")


def test_a_waiter_that_gave_up_or_whose_runner_died_is_passed_over(db_url: str) -> None:
    lab = Lab(db_url)
    lab.campaign("gone", DEAD, 1)
    lab.campaign("tired", LIVE, 1)
    lab.campaign("next", LIVE, 1)
    lab.write("gone#1", "hold-waiting")
    lab.write("gone#1", "hold-taken")  # died holding it: its Prefect lease lapses on its own
    lab.write("tired#1", "hold-waiting")
    lab.write("tired#1", "hold-timeout")
    lab.write("next#1", "hold-waiting")
    assert lab.turn("next#1")


def test_other_instruments_do_not_count_and_an_attempt_that_did_not_ask_has_no_turn(db_url: str) -> None:
    lab = Lab(db_url)
    lab.campaign("a", LIVE, 2)
    other = "instrument:bench_lab:balance"
    lab.write("a#1", "hold-waiting", other)
    lab.write("a#1", "hold-taken", other)
    lab.write("a#2", "hold-waiting")
    assert lab.turn("a#2")
    assert not lab.turn("a#1")  # it holds the balance and never asked for the hotplate
