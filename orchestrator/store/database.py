"""Opening a database: URL resolution, connection checks with clear errors, SQLite pragmas, migrations.

SQLite (the default, `sqlite:///peirce.db`) runs in WAL mode so a `peirce status` in another terminal reads while
a campaign writes; PostgreSQL is reached by URL. Every open brings the schema to the newest Alembic revision.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.exc import DatabaseError as SqlDatabaseError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import DatabaseError
from orchestrator.store.artifacts import ArtifactStore

DEFAULT_URL = "sqlite:///peirce.db"
URL_ENV = "PEIRCE_DB_URL"


def resolve_url(url: str | None) -> str:
    """The database URL to use: the `--db` option, else $PEIRCE_DB_URL, else a SQLite file here."""
    return url or os.environ.get(URL_ENV) or DEFAULT_URL


def safe_url(url: str | URL) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


class Database:
    """An engine plus a session factory; sessions do not expire objects on commit so stages can keep reading."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        return safe_url(self.engine.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @property
    def artifacts(self) -> ArtifactStore:
        """Where this database's content-addressed artifacts live (beside a SQLite file by default)."""
        return ArtifactStore.for_engine(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str | None = None, migrate: bool = True) -> Database:
    """Connect, check the connection, and (by default) upgrade the schema to the newest revision."""
    url = resolve_url(url)
    engine = _create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (OperationalError, SqlDatabaseError) as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        raise DatabaseError(f"--db: cannot connect to {safe_url(url)}: {reason}") from None
    if migrate:
        upgrade_schema(engine)
    return Database(engine)


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"--db: not a database URL: '{url}' (e.g. sqlite:///peirce.db)") from None
    connect_args: dict[str, object] = {}
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_path(parsed)
        connect_args["timeout"] = 30  # seconds to wait for another writer's lock
    elif parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = 5
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
    try:
        engine = create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
    except NoSuchModuleError:
        raise DatabaseError(f"--db: unsupported database '{parsed.drivername}' in {safe_url(url)}") from None
    except ArgumentError as exc:
        raise DatabaseError(f"--db: bad database URL {safe_url(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _check_sqlite_path(url: URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().resolve().parent
        if not folder.is_dir():
            raise DatabaseError(f"--db: folder {folder} of the SQLite file does not exist")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("orchestrator.store") / "migrations"))
    return config


def upgrade_schema(engine: Engine) -> None:
    config = _alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() == head:
            return
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def downgrade_schema(engine: Engine, revision: str = "base") -> None:
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
