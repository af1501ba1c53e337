"""The store on SQLite and PostgreSQL: migrations match the models, events are append-only, clear errors."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError

from orchestrator.cycle.context import open_campaign
from orchestrator.errors import CampaignConflict, CampaignNotFound, DatabaseError
from orchestrator.store.database import downgrade_schema, open_database, upgrade_schema
from orchestrator.store.models import Base, Campaign, Event, Experiment, ExperimentState
from orchestrator.store.records import IllegalTransition, find_campaign, move_experiment
from tests.campaigns import hartmann_spec, to_spec

TABLES = {"campaigns", "cycles", "decisions", "experiments", "measurements", "hypotheses", "events"}


def test_migrations_create_exactly_the_models(db_url: str) -> None:
    db = open_database(db_url)
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_downgrade_and_upgrade_round_trip(db_url: str) -> None:
    db = open_database(db_url)
    downgrade_schema(db.engine)
    assert not TABLES & set(inspect(db.engine).get_table_names())
    upgrade_schema(db.engine)
    assert set(inspect(db.engine).get_table_names()) >= TABLES


def _campaign_with_experiment(db_url: str):
    db = open_database(db_url)
    spec, text_ = to_spec(hartmann_spec())
    campaign_id, how = open_campaign(db, spec, text_)
    assert how == "created"
    from orchestrator.cycle.context import load_context
    from orchestrator.cycle.deduce import deduce
    from orchestrator.cycle.recovery import start_cycle

    ctx = load_context(db, campaign_id)
    ids = deduce(ctx, start_cycle(ctx), 2)
    return db, campaign_id, ids


def test_events_are_append_only_in_the_database(db_url: str) -> None:
    db, _campaign_id, _ = _campaign_with_experiment(db_url)
    with db.engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM events")).scalar_one()
        assert count > 0
        with pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text("UPDATE events SET kind = 'x'"))
        connection.rollback()
        with pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text("DELETE FROM events"))
        connection.rollback()
        assert connection.execute(text("SELECT count(*) FROM events")).scalar_one() == count


def test_every_state_change_has_an_event(db_url: str) -> None:
    db, _campaign_id, ids = _campaign_with_experiment(db_url)
    with db.session() as session:
        experiment = session.get_one(Experiment, ids[0])
        assert experiment.state == ExperimentState.APPROVED
        move_experiment(session, experiment, ExperimentState.DISPATCHED)
    with db.session() as session:
        events = session.scalars(
            select(Event).where(Event.entity == "experiment", Event.entity_id == ids[0]).order_by(Event.id)
        ).all()
        assert [(e.from_state, e.to_state) for e in events] == [
            (None, "planned"),
            ("planned", "approved"),
            ("approved", "dispatched"),
        ]
        assert session.get_one(Experiment, ids[0]).attempts == 1


def test_illegal_transitions_are_refused(db_url: str) -> None:
    db, _, ids = _campaign_with_experiment(db_url)
    with db.session() as session:
        experiment = session.get_one(Experiment, ids[0])
        with pytest.raises(IllegalTransition, match="approved -> completed"):
            move_experiment(session, experiment, ExperimentState.COMPLETED)


def test_idempotency_keys_are_unique(db_url: str) -> None:
    db, _campaign_id, ids = _campaign_with_experiment(db_url)
    with db.session() as session:
        keys = session.scalars(select(Experiment.idempotency_key)).all()
    assert len(keys) == len(set(keys)) == len(ids)


def test_same_name_with_another_spec_is_refused(db_url: str) -> None:
    db = open_database(db_url)
    spec, text_ = to_spec(hartmann_spec())
    open_campaign(db, spec, text_)
    assert open_campaign(db, spec, text_)[1] == "reopened"
    other, other_text = to_spec(hartmann_spec(budget={"experiments": 20}))
    with pytest.raises(CampaignConflict, match="already exists with a different spec"):
        open_campaign(db, other, other_text)


def test_unknown_campaign_is_named(db_url: str) -> None:
    db = open_database(db_url)
    with db.session() as session, pytest.raises(CampaignNotFound, match="no campaign 'nope'"):
        find_campaign(session, "nope")


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    db = open_database(sqlite_url)
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://peirce:secret@127.0.0.1:1/peirce",
            "--db: cannot connect to postgresql://peirce:***@127.0.0.1:1/peirce",
        ),
        ("sqlite:////no/such/folder/peirce.db", "--db: folder /no/such/folder of the SQLite file does not exist"),
        ("not a url", "--db: not a database URL: 'not a url'"),
        ("oracle+nodriver://x/y", "--db: unsupported database"),
    ],
)
def test_unreachable_databases_give_one_clear_line(url: str, expected: str) -> None:
    with pytest.raises(DatabaseError) as caught:
        open_database(url)
    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message
    assert "secret" not in message


def test_campaign_row_keeps_spec_text_and_hash(db_url: str) -> None:
    db = open_database(db_url)
    spec, text_ = to_spec(hartmann_spec())
    campaign_id, _ = open_campaign(db, spec, text_)
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        assert campaign.spec_text == text_
        assert campaign.spec_hash == spec.content_hash()
        assert campaign.spec["lab"]["simulator"] == "hartmann6"
