"""How a command opens the database its `--db` names, by what it will do there (see `open_database`):

- `for_reading`: list, status, export, hypotheses, knowledge export, replay, report, archive export. Nothing is
  created and nothing written; a database that is not there is one line, exit 2.
- `for_changing`: resume, stop, hypothesize, retire, knowledge import, upgrade: a campaign (or the schema) already
  in the database is changed, so the database must exist.
- `for_creating`: run, archive import: the database is made if it is not there.

Each database a command opens is closed when the command ends (`close_opened`, called by `main`), so SQLite's WAL
files go with the last connection even when the CLI runs inside another process (a test, a notebook).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.store.database import Database

_opened: list[Database] = []


def for_reading(url: str | None) -> Database:
    # Imported when a command opens a database: SQLAlchemy and Alembic take a second to load, which `--help`,
    # `validate` and `init` never need.
    from orchestrator.store.database import open_database

    return _opening(open_database(url, read_only=True))


def for_changing(url: str | None) -> Database:
    # Imported when a command opens a database (start-up time, as above).
    from orchestrator.store.database import open_database

    return _opening(open_database(url, create=False))


def for_creating(url: str | None) -> Database:
    # Imported when a command opens a database (start-up time, as above).
    from orchestrator.store.database import open_database

    return _opening(open_database(url, create=True))


def _opening(database: Database) -> Database:
    _opened.append(database)
    return database


def close_opened() -> None:
    """Close every database the command opened."""
    while _opened:
        _opened.pop().dispose()
