"""Opening a database: URL resolution, connection checks with clear errors, SQLite pragmas, migrations.

SQLite (the default, `sqlite:///peirce.db`) runs in WAL mode so a `peirce status` in another terminal reads while
a campaign writes; PostgreSQL is reached by URL.

Three ways to open, chosen by the caller (`open_database(url, create=..., read_only=...)`):
- create (the default; `peirce run`, `archive import`): a missing SQLite file or an empty database is given the
  schema, and an older schema is brought to the newest Alembic revision;
- existing (`create=False`; `resume`, `stop`, `hypothesize`, ...): the same, but a database that is not there is
  refused by name instead of made;
- read-only (`read_only=True`; `list`, `status`, `export`, `replay`, ...): nothing is created, migrated or written.
  SQLite refuses every write on the connection (`PRAGMA query_only`, or `mode=ro` for a file we may not write);
  PostgreSQL opens every transaction READ ONLY. A schema older than this peirce is refused with the way to
  upgrade it, since upgrading would be a write.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

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


def open_database(
    url: str | None = None, *, create: bool = True, read_only: bool = False, migrate: bool = True
) -> Database:
    """Connect and check the connection; then, unless `read_only`, bring the schema to the newest revision.

    `create=False` refuses a database that is not there (a missing SQLite file, an empty PostgreSQL database)
    instead of making it; `read_only=True` implies it, and also refuses every write and an older schema.
    `migrate=False` leaves the schema as it is (for tests of the migrations themselves).
    """
    resolved = resolve_url(url)
    must_exist = read_only or not create
    # A database that must exist is first looked at read-only: what is there is checked before anything is
    # written (even the journal mode a writing connection sets, which would turn any SQLite file into one).
    engine = _create_engine(resolved, must_exist=must_exist, read_only=must_exist, defaulted=url is None)
    try:
        revision = _current_revision(engine, resolved)
        _check_revision(revision, resolved, must_exist=must_exist, read_only=read_only)
        if must_exist and not read_only:
            engine.dispose()
            engine = _create_engine(resolved)
        if migrate and not read_only:
            upgrade_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return Database(engine)


def _current_revision(engine: Engine, url: str) -> str | None:
    """The schema's Alembic revision (None: no peirce schema), reading it also checks that the database answers."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            return MigrationContext.configure(connection).get_current_revision()
    except (OperationalError, SqlDatabaseError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        raise DatabaseError(f"--db: cannot connect to {safe_url(url)}: {reason}") from None


def _check_revision(revision: str | None, url: str, *, must_exist: bool, read_only: bool) -> None:
    """Refuse a database whose schema this peirce cannot use as asked: none at all when it must exist, one from a
    newer peirce, or (read-only, where upgrading would be a write) an older one."""
    if revision is None:
        if must_exist:
            raise DatabaseError(f"--db: {safe_url(url)} is not a peirce database (it has no peirce schema)")
        return
    scripts = ScriptDirectory.from_config(_alembic_config())
    head = scripts.get_current_head()
    if revision == head:
        return
    known = {script.revision for script in scripts.walk_revisions()}
    if revision not in known:
        raise DatabaseError(
            f"--db: {safe_url(url)} has schema revision {revision}, newer than this peirce knows (newest {head}); "
            "upgrade peirce"
        )
    if read_only:
        raise DatabaseError(
            f"--db: {safe_url(url)} has schema revision {revision}, older than this peirce's {head}, and this "
            f"command only reads; upgrade it first with: peirce upgrade --db {safe_url(url)}"
        )


def _create_engine(url: str, *, must_exist: bool = False, read_only: bool = False, defaulted: bool = False) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"--db: not a database URL: '{url}' (e.g. sqlite:///peirce.db)") from None
    connect_args: dict[str, object] = {}
    sqlite_file: Path | None = None
    if parsed.get_backend_name() == "sqlite":
        sqlite_file = _check_sqlite_path(parsed, must_exist=must_exist, defaulted=defaulted)
        connect_args["timeout"] = 30  # seconds to wait for another writer's lock
    elif parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = 5
        if read_only:
            # Every transaction of this connection is READ ONLY: the server itself refuses a write.
            connect_args["options"] = "-c default_transaction_read_only=on"
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
    try:
        engine = create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
    except NoSuchModuleError:
        raise DatabaseError(f"--db: unsupported database '{parsed.drivername}' in {safe_url(url)}") from None
    except ArgumentError as exc:
        raise DatabaseError(f"--db: bad database URL {safe_url(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":
        if not read_only:
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            event.listen(engine, "connect", _sqlite_read_only_pragmas)
            if sqlite_file is not None and not _may_write(sqlite_file):
                _open_sqlite_read_only(engine, sqlite_file)
    return engine


def _check_sqlite_path(url: URL, *, must_exist: bool, defaulted: bool) -> Path | None:
    """The SQLite file a URL names (None for an in-memory or `file:` URI database), checked: its folder must exist,
    and the file too when the database must exist (opening a missing file would create it)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).expanduser().resolve()
    if not path.parent.is_dir():
        raise DatabaseError(f"--db: folder {path.parent} of the SQLite file does not exist")
    if must_exist and not path.is_file():
        hint = f" (give --db URL or set ${URL_ENV})" if defaulted and not os.environ.get(URL_ENV) else ""
        raise DatabaseError(f"no database at {path}{hint}")
    return path


def _may_write(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _open_sqlite_read_only(engine: Engine, path: Path) -> None:
    """Connect through SQLite's read-only URI (`file:…?mode=ro`): the way to open a file we may not write. The
    engine's URL stays the plain one, so the database is named, and its artifacts found, as for any other open."""

    @event.listens_for(engine, "do_connect")
    def _read_only_uri(dialect: object, record: object, cargs: list[object], cparams: dict[str, object]) -> None:
        cargs[:] = [f"{path.as_uri()}?mode=ro"]
        cparams["uri"] = True


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_read_only_pragmas(dbapi_connection: Any, _record: object) -> None:
    # No journal mode here: setting one is a write. A file we may write is opened as usual, so SQLite tidies its
    # WAL files away when the last connection closes (a `mode=ro` connection would leave them behind), and
    # `query_only` makes this connection refuse every statement that would change the database.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("orchestrator.store") / "migrations"))
    return config


def upgrade_schema(engine: Engine) -> None:
    """Bring the schema to the newest revision, one process at a time.

    Two processes opening a new database at once would both see no schema and both create it (the second fails on
    "table campaigns already exists"). So the migration runs under a lock that spans processes, and the revision is
    read again once the lock is held: the second finds the first's work done. SQLite: an exclusive `flock` on
    `<file>.migrate.lock` beside the database (SQLite's own locks cannot be held across Alembic's transactions);
    PostgreSQL: a session-level advisory lock, released when its connection closes, even if the process dies.
    """
    config = _alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    if _revision(engine) == head:
        return
    with _migration_lock(engine):
        if _revision(engine) == head:
            return
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


# Any constant unique to peirce: the key of PostgreSQL's advisory lock that serialises migrations.
_MIGRATION_LOCK_KEY = 0x7065697263650001


def _revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield  # an in-memory database has one user; a `file:` URI is left to SQLite's own locking
        return
    lock_path = Path(database).expanduser().resolve().with_name(Path(database).name + ".migrate.lock")
    with open(lock_path, "a+b") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def downgrade_schema(engine: Engine, revision: str = "base") -> None:
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
