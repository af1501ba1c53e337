"""Concurrent first use of a database file: migrations are serialised, so two processes (here two threads, each
with an engine of its own, as two processes would have) opening a new file at once both get the schema and neither
fails on "table campaigns already exists" (issue 14, "What broke" 2)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from orchestrator.store.database import _alembic_config, _revision, open_database


def _open_at_once(url: str) -> list[BaseException]:
    """Two opens of the database at `url` started together; the errors they raised."""
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def open_new() -> None:
        start.wait()
        try:
            open_database(url).dispose()
        except BaseException as exc:  # any error at all is the failure looked for
            errors.append(exc)

    threads = [threading.Thread(target=open_new) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def _check_schema(url: str) -> None:
    db = open_database(url)
    assert _revision(db.engine) == ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert "campaigns" in inspect(db.engine).get_table_names()
    db.dispose()


def test_two_opens_of_a_new_file_at_once_both_succeed(tmp_path: Path) -> None:
    for trial in range(4):
        url = f"sqlite:///{tmp_path / f'new{trial}.db'}"
        assert _open_at_once(url) == [], f"trial {trial}"
        _check_schema(url)


@pytest.mark.postgres
def test_two_opens_of_a_new_postgresql_database_at_once_both_succeed(postgres_url: str) -> None:
    assert _open_at_once(postgres_url) == []
    _check_schema(postgres_url)
