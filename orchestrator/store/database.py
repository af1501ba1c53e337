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

Only SQLite and PostgreSQL (through psycopg 3) are supported; any other URL is refused by name before a driver is
looked for. A database that cannot be written is refused when a command that writes opens it (`DatabaseError`), and
stops the command with one line if it stops taking writes while in use (`DatabaseUnwritable`, see
`_stop_when_unwritable`).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import sqlite3
import time
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

from orchestrator.errors import DatabaseError, DatabaseUnwritable
from orchestrator.store.artifacts import ArtifactStore

DEFAULT_URL = "sqlite:///peirce.db"
URL_ENV = "PEIRCE_DB_URL"
SUPPORTED_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")
SUPPORTED_URLS = "sqlite:///FILE or postgresql://USER@HOST/DATABASE (postgresql+psycopg://)"
RESUME_HINT = "the campaign stays as it was last written; `peirce resume` continues once it is writable"


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
    engine = _create_engine(
        resolved, must_exist=must_exist, read_only=must_exist, defaulted=url is None, will_write=not read_only
    )
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


def _create_engine(
    url: str,
    *,
    must_exist: bool = False,
    read_only: bool = False,
    defaulted: bool = False,
    will_write: bool | None = None,
) -> Engine:
    """An engine for `url`, its SQLite file (if any) checked first. `will_write` (default: not `read_only`) says the
    command will write, so a file or folder it cannot write is refused now, before even a read-only look at it
    leaves SQLite's WAL files beside it."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"--db: not a database URL: '{url}' (e.g. sqlite:///peirce.db)") from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        # Refused before SQLAlchemy looks for the driver: for `mysql://` it would import MySQLdb and fail with a
        # traceback about a module, not about the URL.
        raise DatabaseError(
            f"--db: unsupported database '{parsed.drivername}' in {safe_url(url)}; peirce supports {SUPPORTED_URLS}"
        )
    connect_args: dict[str, object] = {}
    sqlite_file: Path | None = None
    if parsed.get_backend_name() == "sqlite":
        sqlite_file = _check_sqlite_path(parsed, must_exist=must_exist, defaulted=defaulted)
        if sqlite_file is not None and (not read_only if will_write is None else will_write):
            _check_sqlite_writable(sqlite_file, url)
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
    if not read_only:
        _stop_when_unwritable(engine, sqlite_file)
        if engine.dialect.name == "postgresql":
            _wait_out_restarts(engine, RECONNECT_WITHIN_S)
    if engine.dialect.name == "sqlite":
        if not read_only:
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            event.listen(engine, "connect", _sqlite_read_only_pragmas)
            if sqlite_file is not None and not _may_write(sqlite_file):
                _open_sqlite_read_only(engine, sqlite_file)
    return engine


# How long a process that has reached its PostgreSQL server waits for it to come back before it gives up: a restart
# (an upgrade, a failover) takes seconds; a server that is gone for longer ends the run, to be resumed.
RECONNECT_WITHIN_S = 120.0
RECONNECT_EVERY_S = 1.0


def _wait_out_restarts(engine: Engine, within_s: float) -> None:
    """Once a PostgreSQL server has answered this process, a new connection it refuses is asked for again, every
    `RECONNECT_EVERY_S`, for up to `within_s`: a runner between two writes rides out a restart of the server. A
    connection is made only before a transaction begins (idle ones are checked first, `pool_pre_ping`), so nothing
    is repeated. A write under way when the server stops still fails, and the run stops, to be resumed. A server
    that never answered is not waited for: a command given a wrong URL says so at once."""
    reached = False

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: object, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        nonlocal reached
        deadline = time.monotonic() + within_s
        while True:
            try:
                connection = dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError:
                if not reached or time.monotonic() > deadline:
                    raise
                time.sleep(RECONNECT_EVERY_S)
                continue
            reached = True
            return connection


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
    # access(2), not the mode bits: it also says no for a file made immutable (`chattr +i`), even to root.
    return os.access(path, os.W_OK)


def _sqlite_companions(path: Path) -> tuple[Path, Path]:
    """The write-ahead log and the shared-memory index SQLite keeps beside a database file in WAL mode."""
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _check_sqlite_writable(path: Path, url: str) -> None:
    """Refuse, before anything is opened, a SQLite database a writing command could not write: the file, or its
    folder (where SQLite must create the write-ahead log and its index, and where a new file is made)."""
    if path.exists() and not _may_write(path):
        raise DatabaseError(f"--db: database {safe_url(url)} cannot be written: the file is read-only")
    if not _may_write(path.parent):
        raise DatabaseError(
            f"--db: database {safe_url(url)} cannot be written: its folder {path.parent} is read-only "
            "(SQLite keeps its write-ahead log beside the file)"
        )


def _stop_when_unwritable(engine: Engine, sqlite_file: Path | None) -> None:
    """Make a database that stops taking writes while in use end the command with one `DatabaseUnwritable` line.

    Two ways it shows. SQLite or PostgreSQL refuse a write (read-only, disk full, I/O error): `handle_error`
    replaces the driver's error, wherever in the cycle it was raised. And a SQLite file made immutable under a
    running campaign: SQLite keeps its WAL index (`-shm`) mapped in memory, and the first store to a page of a
    mapping the kernel will not write is a SIGBUS, which kills the process (exit 135) before Python can say a word.
    So each transaction first asks the kernel whether the files can still be written; three access(2) calls are
    nothing beside a transaction. (A change in the instant between that check and the write can still bus-error;
    the check closes the window to that instant.)
    """
    url = safe_url(engine.url)

    @event.listens_for(engine, "handle_error")
    def _unwritable(context: Any) -> None:
        reason = _unwritable_reason(context.original_exception)
        if reason is not None:
            raise DatabaseUnwritable(f"database {url} cannot be written: {reason}; {RESUME_HINT}")

    if sqlite_file is None:
        return
    files = (sqlite_file, *_sqlite_companions(sqlite_file))

    def _check_files(*_args: object) -> None:
        for file in files:
            if not _may_write(file) and file.exists():
                raise DatabaseUnwritable(
                    f"database {url} cannot be written: {file.name} is read-only or immutable; {RESUME_HINT}"
                )

    # On connect (before the pragmas, which touch the index) and at the start of every transaction.
    event.listen(engine, "connect", _check_files)
    event.listen(engine, "begin", _check_files)

    def _close_unless_unwritable(dbapi_connection: Any) -> None:
        # Closing the last connection to a WAL database checkpoints the log into the file and writes the index: on
        # files made immutable, that too is a bus error, at the very end of a command that has said why it stopped.
        # Such a connection is left open for the life of the process instead (its reference count raised, since a
        # connection merely kept in a list is still closed when the interpreter frees it on the way out); the
        # operating system lets go of the files at exit, and the next writer recovers the log as after any crash.
        if all(_may_write(file) or not file.exists() for file in files):
            dbapi_connection.close()
        else:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(dbapi_connection))

    engine.dialect.do_close = _close_unless_unwritable  # type: ignore[method-assign]


# SQLite's primary result codes for a database that stopped taking writes (the low byte of `sqlite_errorcode`):
# read-only, an I/O error (a write refused, EFBIG past a file size limit), disk full. Not "cannot open": that is a
# database never reached (a folder given as the file), which `open_database` reports as such.
_SQLITE_CANNOT_WRITE = {8: "read-only", 10: "disk I/O error", 13: "disk full"}
# PostgreSQL's SQLSTATEs for the same: the disk is full, or the server is read-only (a standby, or set so).
_POSTGRES_CANNOT_WRITE = {"53100": "disk full", "25006": "read-only"}


def _unwritable_reason(error: BaseException) -> str | None:
    """The driver's message when `error` says the database cannot be written, else None (another error)."""
    sqlite_code = getattr(error, "sqlite_errorcode", None)
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlite_code, int) and (sqlite_code & 0xFF) in _SQLITE_CANNOT_WRITE:
        return str(error).strip().splitlines()[0] if str(error).strip() else _SQLITE_CANNOT_WRITE[sqlite_code & 0xFF]
    if isinstance(sqlstate, str) and sqlstate in _POSTGRES_CANNOT_WRITE:
        return str(error).strip().splitlines()[0] if str(error).strip() else _POSTGRES_CANNOT_WRITE[sqlstate]
    return None


def _open_sqlite_read_only(engine: Engine, path: Path) -> None:
    """Connect through SQLite's read-only URI (`file:…?mode=ro`): the way to open a file we may not write. The
    engine's URL stays the plain one, so the database is named, and its artifacts found, as for any other open.

    In a folder we may not write either, SQLite cannot make the WAL index a read-only connection needs. With no
    write-ahead log there, the file holds the whole database, and it is opened `immutable`, which needs no index:
    a read command then sees the database as it was when it opened (a writer with more rights than ours, starting
    while it reads, would go unseen until the next command)."""
    wal, _ = _sqlite_companions(path)
    frozen = not _may_write(path.parent) and not wal.exists()
    query = "mode=ro&immutable=1" if frozen else "mode=ro"

    @event.listens_for(engine, "do_connect")
    def _read_only_uri(dialect: object, record: object, cargs: list[object], cparams: dict[str, object]) -> None:
        cargs[:] = [f"{path.as_uri()}?{query}"]
        cparams["uri"] = True


def _enter_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode=WAL`, tried again while the file is locked: two processes opening a new file at once
    both switch it to WAL, and SQLite answers the second "database is locked" at once, without waiting on its busy
    handler (the switch needs the file to itself). So wait here, as long as for another writer's lock."""
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    _enter_wal(cursor)  # readers never block the writer
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
