"""How each command opens its database: commands that read write nothing (not even a new empty database), commands
that change a campaign need the database to exist, and only `run` and `archive import` create one."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from orchestrator.errors import DatabaseError
from orchestrator.store import database as store
from orchestrator.store.database import downgrade_schema, open_database
from tests.campaigns import hartmann_spec, write_spec
from tests.orchestrator.cli.helpers import invoke, one_error

READING = [
    ["list"],
    ["status"],
    ["status", "nonexistent"],
    ["export", "h6", "--out", "h6.csv"],
    ["hypotheses", "h6"],
    ["hypotheses", "h6", "--history", "1"],
    ["knowledge", "export", "h6", "--out", "k.json"],
    ["replay", "h6"],
    ["report", "h6", "--out", "r.html", "--skip-replay"],
    ["archive", "export", "h6", "--out", "a.zip"],
]
CHANGING = [
    ["resume", "h6", "--engine", "inline"],
    ["stop", "h6"],
    ["hypothesize", "h6", "attainability", "--above", "3"],
    ["retire", "h6", "1", "--reason", "why not"],
    ["knowledge", "import", "h6", "k.json"],
    ["upgrade"],
]


@pytest.mark.parametrize("args", READING + CHANGING, ids=[" ".join(a) for a in READING + CHANGING])
def test_without_a_database_a_command_says_so_and_creates_none(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "k.json").write_text("{}", encoding="utf-8")  # so knowledge import gets as far as the database
    result = invoke(*args, cwd=tmp_path)
    one_error(result, f"no database at {tmp_path / 'peirce.db'} (give --db URL or set $PEIRCE_DB_URL)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json"]
    named = invoke(*args, "--db", f"sqlite:///{tmp_path / 'other.db'}", cwd=tmp_path)
    one_error(named, f"no database at {tmp_path / 'other.db'}")
    assert "give --db" not in named.stderr  # it was given
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished campaign (random planner, four experiments) in a folder of its own; tests work on copies."""
    folder = tmp_path_factory.mktemp("finished")
    write_spec(folder / "h6.yaml", hartmann_spec(budget={"experiments": 4, "batch_size": 2}))
    ran = invoke("run", "h6.yaml", "--engine", "inline", cwd=folder)
    assert ran.returncode == 0, ran.stderr
    return folder


def _copy(finished: Path, target: Path) -> Path:
    # SQLite's backup copies what is still in the write-ahead log too (a plain file copy could miss it).
    with sqlite3.connect(finished / "peirce.db") as source, sqlite3.connect(target / "peirce.db") as copy:
        source.backup(copy)
    if (finished / "peirce.db.artifacts").exists():
        shutil.copytree(finished / "peirce.db.artifacts", target / "peirce.db.artifacts")
    return target / "peirce.db"


def _files(folder: Path) -> dict[str, str]:
    """Every file under `folder` with the hash of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_reading_commands_change_no_file(finished: Path, tmp_path: Path) -> None:
    database = tmp_path / "db"
    database.mkdir()
    _copy(finished, database)
    before = _files(database)
    url = f"sqlite:///{database / 'peirce.db'}"
    for args in READING:
        result = invoke(*args, "--db", url, cwd=tmp_path)
        if args == ["status", "nonexistent"]:
            one_error(result, "no campaign 'nonexistent'")
        elif args[0] == "hypotheses" and "--history" in args:
            one_error(result, "--history: campaign 'h6' has no hypothesis 1")
        else:
            assert result.returncode == 0, (args, result.stderr)
    assert _files(database) == before  # no byte changed, no file added (no -wal or -shm left behind either)
    assert {"h6.csv", "k.json", "r.html", "a.zip"} <= {p.name for p in tmp_path.iterdir()}


def test_a_file_we_may_not_write_is_read_through_sqlites_read_only_mode(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _copy(finished, tmp_path)
    path.chmod(0o444)
    # Running as root, the permission bits would not stop us: say so the way the store asks.
    monkeypatch.setattr(store, "_may_write", lambda _path: False)
    status = invoke("status", "h6", "--db", f"sqlite:///{path}", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "h6 (completed)" in status.stdout
    db = open_database(f"sqlite:///{path}", read_only=True)
    try:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA query_only=OFF")  # even so, the connection itself is read-only
            with pytest.raises(OperationalError, match="readonly database"):
                connection.execute(text("DELETE FROM events"))
        assert db.url == f"sqlite:///{path}"  # named as given; its artifacts are beside it as always
        assert db.artifacts.root == tmp_path / "peirce.db.artifacts"
    finally:
        db.dispose()


def test_a_read_only_open_refuses_writes(finished: Path, tmp_path: Path) -> None:
    path = _copy(finished, tmp_path)
    db = open_database(f"sqlite:///{path}", read_only=True)
    try:
        with db.engine.connect() as connection, pytest.raises(OperationalError, match="readonly database"):
            connection.execute(text("DELETE FROM events"))
    finally:
        db.dispose()


def test_an_older_schema_is_refused_by_reading_commands_and_upgraded_by_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = open_database(url)
    downgrade_schema(db.engine, "0003")
    db.dispose()
    before = _files(tmp_path)
    result = invoke("list", "--db", url, cwd=tmp_path)
    one_error(result, "has schema revision 0003, older than this peirce's")
    assert f"upgrade it first with: peirce upgrade --db {url}" in result.stderr
    assert _files(tmp_path) == before
    upgraded = invoke("upgrade", "--db", url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout == f"{url} is up to date\n"
    listed = invoke("list", "--db", url, cwd=tmp_path)
    assert listed.returncode == 0 and "no campaigns in" in listed.stdout


def test_a_file_that_is_not_a_peirce_database_is_refused(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "other.db").close()  # an empty SQLite file, no schema
    for args in (["list"], ["stop", "h6"]):
        one_error(invoke(*args, "--db", f"sqlite:///{tmp_path / 'other.db'}", cwd=tmp_path), "is not a peirce database")
    assert (tmp_path / "other.db").stat().st_size == 0


@pytest.mark.postgres
def test_postgresql_read_only_and_existing(postgres_url: str, tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="is not a peirce database"):
        open_database(postgres_url, read_only=True)  # an empty database: nothing created in it
    with pytest.raises(DatabaseError, match="is not a peirce database"):
        open_database(postgres_url, create=False)
    open_database(postgres_url).dispose()  # created
    db = open_database(postgres_url, read_only=True)
    try:
        with db.engine.connect() as connection, pytest.raises(Exception, match="read-only transaction"):
            connection.execute(text("DELETE FROM events"))
    finally:
        db.dispose()
    listed = invoke("list", "--db", postgres_url, cwd=tmp_path)
    assert listed.returncode == 0 and "no campaigns in" in listed.stdout
