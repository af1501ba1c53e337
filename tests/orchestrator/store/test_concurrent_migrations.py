"""Concurrent first use of a database file: migrations are serialised, so two processes (here two threads, each
with an engine of its own, as two processes would have) opening a new file at once both get the schema and neither
fails on "table campaigns already exists" (issue 14, "What broke" 2)."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from orchestrator.store.database import _alembic_config, _revision, open_database


def test_two_opens_of_a_new_file_at_once_both_succeed(tmp_path: Path) -> None:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    for trial in range(4):
        url = f"sqlite:///{tmp_path / f'new{trial}.db'}"
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def open_new(url: str = url, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                open_database(url).dispose()
            except BaseException as exc:  # noqa: BLE001 - any error at all is the failure this test looks for
                errors.append(exc)

        threads = [threading.Thread(target=open_new) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == [], f"trial {trial}: {errors}"
        db = open_database(url)
        assert _revision(db.engine) == head
        assert "campaigns" in inspect(db.engine).get_table_names()
        db.dispose()
