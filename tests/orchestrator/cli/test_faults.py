"""Bad input, unwritable databases and a station status that used to mislead (issue 14, "What broke" 6, 7 and 8):
line naming the field or the database, a non-zero exit (2 for input), and nothing written.

A file "that cannot be written" is made so for real (`unwritable`): as root, whom the mode bits do not stop, with
`chattr +i`; as anyone else, with the mode bits. (The mid-run case, a database that stops taking writes while a
campaign runs, needs a process of its own: tests/torture/test_faults.py.)
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text as text_sql

from orchestrator.cycle.context import load_context, open_campaign
from orchestrator.cycle.deduce import deduce
from orchestrator.cycle.recovery import recover, start_cycle
from orchestrator.errors import DatabaseUnwritable
from orchestrator.review.export import campaign_status, describe_unconfirmed
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Event, Experiment, ExperimentState
from orchestrator.store.records import add_event, move_experiment
from tests.campaigns import EXAMPLES_DIR, hartmann_spec, to_spec, write_spec
from tests.orchestrator.cli.helpers import invoke, one_error


@contextmanager
def unwritable(*paths: Path) -> Iterator[None]:
    """Make `paths` (files or folders) unwritable to this process and its children for the block, then writable again.

    Root ignores the mode bits, so as root the files are made immutable (`chattr +i`), which access(2) and every
    write refuse even to root; a root without the capability to do so (some containers) skips the test, saying why.
    """
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in paths}
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("running as root (the mode bits do not stop root) and chattr is not installed")
    frozen: list[Path] = []
    try:
        for path in paths:
            done = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"running as root, and chattr +i is refused here: {done.stderr.strip()}")
            frozen.append(path)
        yield
    finally:
        for path in frozen:
            subprocess.run([chattr, "-i", str(path)], check=True)


def _files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def _refused(tmp_path: Path, data: dict[str, Any] | str, expected: str) -> str:
    """`validate` and `run` of the campaign file `data` both refuse it with one line containing `expected`, and
    `run` writes nothing (no database file, no artifacts folder)."""
    path = tmp_path / "campaign.yaml"
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        write_spec(path, data)
    before = _files(tmp_path)
    line = one_error(invoke("validate", "campaign.yaml", cwd=tmp_path), expected)
    assert one_error(invoke("run", "campaign.yaml", "--engine", "inline", cwd=tmp_path), expected) == line
    assert _files(tmp_path) == before
    return line


# --- bad campaign files -------------------------------------------------------------------------------------------


def test_thousands_of_nested_brackets_are_one_line_not_a_recursion_error(tmp_path: Path) -> None:
    line = _refused(tmp_path, "name: " + "[" * 20_000, "nested more than 50 levels deep")
    assert line.startswith("error: campaign.yaml:1:")


def test_nesting_a_real_campaign_needs_is_accepted(tmp_path: Path) -> None:
    # The deepest place of a campaign file, a station step's argument, is five levels down; fifty is far above.
    text = "name: h6\nbudget:\n  experiments: 2\n" + "goal: " + "[" * 40 + "]" * 40 + "\n"
    path = tmp_path / "campaign.yaml"
    path.write_text(text, encoding="utf-8")
    result = invoke("validate", "campaign.yaml", cwd=tmp_path)
    assert "nested" not in result.stderr and "Traceback" not in result.stderr
    one_error(result, "goal: Input should be a valid string")  # parsed: the schema, not the loader, answers


def test_bounds_whose_span_overflows_are_refused_by_field(tmp_path: Path) -> None:
    data = hartmann_spec()
    data["space"][2]["bounds"] = [-1e308, 1e308]  # each finite, their difference is not
    _refused(tmp_path, data, "space[2].bounds: the span upper - lower")


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("constraints", [{"coefficients": {"x1": 1.0, "x2": ".nan"}, "operator": "<=", "rhs": 1.0}]),
        ("objectives", [{"name": "y", "direction": "minimize", "target": ".inf"}]),
    ],
)
def test_numbers_that_are_not_finite_are_refused_by_field(tmp_path: Path, where: str, value: Any) -> None:
    text = write_spec(tmp_path / "spec.yaml", hartmann_spec(**{where: value})).read_text(encoding="utf-8")
    text = text.replace("'.nan'", ".nan").replace("'.inf'", ".inf")  # YAML's own spellings, not strings
    expected = "constraints[0].coefficients.x2" if where == "constraints" else "objectives[0].target"
    _refused(tmp_path, text, f"{expected}: Input should be a finite number")


def test_constraints_no_point_satisfies_are_refused_at_validate(tmp_path: Path) -> None:
    # x1, x2 in [0, 1]: x1 + x2 reaches 2 at most.
    infeasible = [{"coefficients": {"x1": 1.0, "x2": 1.0}, "operator": ">=", "rhs": 2.5}]
    line = _refused(tmp_path, hartmann_spec(constraints=infeasible), "constraints: no point of the space satisfies")
    assert "1*x1 + 1*x2 >= 2.5" in line


def test_constraints_met_only_at_a_corner_still_pass(tmp_path: Path) -> None:
    # Feasible at (x1, x2) = (1, 1) only, and together with a second constraint that cuts from the other side.
    corner = [
        {"coefficients": {"x1": 1.0, "x2": 1.0}, "operator": ">=", "rhs": 2.0},
        {"coefficients": {"x1": 1.0, "x3": -1.0}, "operator": "<=", "rhs": 0.0},
    ]
    write_spec(tmp_path / "campaign.yaml", hartmann_spec(constraints=corner))
    result = invoke("validate", "campaign.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_constraints_over_a_finite_space_are_checked_point_by_point(tmp_path: Path) -> None:
    # Integers 0..3 and the values 0.5, 2.5: the sums x1 + x2 are 0.5, 1.5, ..., 5.5 in steps of one, so 5.5 is
    # reached (3 + 2.5) and nothing lies between 3.6 and 4.4, which the ranges alone ([0, 3] and [0.5, 2.5]) allow.
    data = hartmann_spec()
    data["lab"] = {"simulator": "lookup", "table": "table.csv"}
    data["space"] = [
        {"name": "x1", "type": "integer", "bounds": [0, 3]},
        {"name": "x2", "type": "discrete", "values": [0.5, 2.5]},
    ]
    rows = [f"{x1},{x2},{x1 * x2}" for x1 in range(4) for x2 in (0.5, 2.5)]
    (tmp_path / "table.csv").write_text("\n".join(["x1,x2,y", *rows]) + "\n", encoding="utf-8")
    sums_to = [{"coefficients": {"x1": 1.0, "x2": 1.0}, "operator": ">=", "rhs": 5.5}]
    write_spec(tmp_path / "campaign.yaml", {**data, "constraints": sums_to})
    assert invoke("validate", "campaign.yaml", cwd=tmp_path).returncode == 0
    between = [
        {"coefficients": {"x1": 1.0, "x2": 1.0}, "operator": ">=", "rhs": 3.6},
        {"coefficients": {"x1": 1.0, "x2": 1.0}, "operator": "<=", "rhs": 4.4},
    ]
    _refused(tmp_path, {**data, "constraints": between}, "constraints: no point of the space satisfies")


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    text = write_spec(tmp_path / "spec.yaml", hartmann_spec()).read_text(encoding="utf-8")
    assert text.startswith("name: h6\n")
    line = _refused(tmp_path, text + "name: other\n", "duplicate key 'name' (first given on line 1)")
    assert line.startswith(f"error: campaign.yaml:{len(text.splitlines()) + 1}:1: ")
    # In a nested mapping too.
    nested = text.replace("  batch_size: 4\n", "  batch_size: 4\n  experiments: 8\n")
    assert nested != text
    _refused(tmp_path, nested, "duplicate key 'experiments'")


def test_a_merge_key_then_an_override_is_not_a_repeat(tmp_path: Path) -> None:
    # YAML's `<<: *anchor` then a key of the mapping's own is how YAML says "as that one, but": not a repeated key.
    text = write_spec(tmp_path / "spec.yaml", hartmann_spec()).read_text(encoding="utf-8")
    start, end = text.index("space:\n"), text.index("objectives:\n")
    merged = "space:\n- &x {name: x1, type: continuous, bounds: [0, 1]}\n"
    merged += "".join(f"- {{<<: *x, name: x{i}}}\n" for i in range(2, 7))
    (tmp_path / "campaign.yaml").write_text(text[:start] + merged + text[end:], encoding="utf-8")
    result = invoke("validate", "campaign.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "6 parameters" in result.stdout


# --- databases --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["mysql://user@localhost/lab", "mysql+pymysql://user@localhost/lab", "oracle://x"])
def test_an_unsupported_database_url_names_the_supported_ones(tmp_path: Path, url: str) -> None:
    write_spec(tmp_path / "campaign.yaml", hartmann_spec(budget={"experiments": 2, "batch_size": 1}))
    for args in (["run", "campaign.yaml", "--engine", "inline"], ["status"]):
        line = one_error(invoke(*args, "--db", url, cwd=tmp_path), "unsupported database")
        assert "sqlite:///" in line and "postgresql://" in line and "postgresql+psycopg://" in line
    assert _files(tmp_path) == ["campaign.yaml"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished campaign (random planner, four experiments) in a folder of its own; tests work on copies."""
    folder = tmp_path_factory.mktemp("finished")
    write_spec(folder / "h6.yaml", hartmann_spec(budget={"experiments": 4, "batch_size": 2}))
    ran = invoke("run", "h6.yaml", "--engine", "inline", cwd=folder)
    assert ran.returncode == 0, ran.stderr
    return folder


def _copy(finished: Path, folder: Path) -> Path:
    folder.mkdir()
    with sqlite3.connect(finished / "peirce.db") as source, sqlite3.connect(folder / "peirce.db") as copy:
        source.backup(copy)  # what is still in the write-ahead log too
    shutil.copy(finished / "h6.yaml", folder / "h6.yaml")
    return folder / "peirce.db"


def _bytes(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in _files(folder) if (folder / name).is_file()}


def test_run_into_a_database_file_that_cannot_be_written_is_one_line(finished: Path, tmp_path: Path) -> None:
    database = _copy(finished, tmp_path / "db")
    url = f"sqlite:///{database}"
    before = _bytes(database.parent)
    with unwritable(database):
        result = invoke("run", "h6.yaml", "--engine", "inline", "--db", url, cwd=database.parent)
        one_error(result, f"--db: database {url} cannot be written: the file is read-only")
        resumed = invoke("resume", "h6", "--engine", "inline", "--db", url, cwd=database.parent)
        one_error(resumed, "cannot be written")
    assert _bytes(database.parent) == before


def test_run_into_a_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    write_spec(tmp_path / "h6.yaml", hartmann_spec(budget={"experiments": 2, "batch_size": 1}))
    with unwritable(folder):
        result = invoke("run", "h6.yaml", "--engine", "inline", "--db", f"sqlite:///{folder / 'p.db'}", cwd=tmp_path)
        one_error(result, f"its folder {folder} is read-only")
    assert _files(folder) == []


def test_read_commands_work_on_a_database_that_cannot_be_written(finished: Path, tmp_path: Path) -> None:
    # The file and its folder: SQLite cannot even make the index a read-only connection of a WAL database needs.
    database = _copy(finished, tmp_path / "db")
    url = f"sqlite:///{database}"
    before = _bytes(database.parent)
    out = tmp_path / "out"
    out.mkdir()
    with unwritable(database, database.parent):
        status = invoke("status", "h6", "--db", url, cwd=out)
        assert status.returncode == 0, status.stderr
        assert "h6 (completed)" in status.stdout and "experiments: 4/4 spent" in status.stdout
        exported = invoke("export", "h6", "--db", url, "--out", str(out / "h6.csv"), cwd=out)
        assert exported.returncode == 0, exported.stderr
        assert len((out / "h6.csv").read_text(encoding="utf-8").splitlines()) == 1 + 4
        replayed = invoke("replay", "h6", "--db", url, cwd=out)
        assert replayed.returncode == 0, replayed.stderr
        assert "2 of 2 decisions re-derived exactly" in replayed.stdout
    assert _bytes(database.parent) == before


# --- status of a station after an interruption ---------------------------------------------------------------------


def test_status_names_the_actions_left_unconfirmed(tmp_path: Path) -> None:
    # A runner interrupted on a station: experiment A had its dispense sent and never confirmed (its journal ends
    # at `action-started`), B's was confirmed. Both are in doubt; the recovery abandons both, and only A's dispense
    # is unconfirmed. Status counted 1 action done and said nothing of A's.
    db = open_database(f"sqlite:///{tmp_path / 'peirce.db'}")
    try:
        spec, text = to_spec(hartmann_spec(budget={"experiments": 4, "batch_size": 2}), EXAMPLES_DIR)
        campaign_id, _ = open_campaign(db, spec, text)
        ctx = load_context(db, campaign_id)
        unconfirmed, confirmed = deduce(ctx, start_cycle(ctx), 2)
        dispense = {"step": 0, "instrument": "pump", "action": "dispense", "args": {"volume_ml": 1.5}}
        with db.session() as session:
            for experiment_id in (unconfirmed, confirmed):
                move_experiment(session, session.get_one(Experiment, experiment_id), ExperimentState.DISPATCHED)
                add_event(session, campaign_id, "experiment", experiment_id, "action-started", detail=dispense)
            add_event(session, campaign_id, "experiment", confirmed, "action-done", detail={**dispense, "result": {}})
            seq = session.get_one(Experiment, unconfirmed).seq
        recover(ctx)
        info = campaign_status(db, "h6")
    finally:
        db.dispose()
    assert info["instrument_actions"] == {"pump": {"done": 1}}
    assert info["unconfirmed_actions"] == [{"seq": seq, "instrument": "pump", "action": "dispense", "step": 0}]
    assert describe_unconfirmed(info["unconfirmed_actions"]) == (
        f"unconfirmed: 1 action sent and never confirmed (#{seq} pump.dispense); "
        "check the instruments before reusing what they touched"
    )
    assert describe_unconfirmed([]) is None


# --- the store's side of a database that stops taking writes --------------------------------------------------------


def test_a_database_that_stops_taking_writes_raises_one_typed_error(db_url: str, tmp_path: Path) -> None:
    """The typed error the CLI prints as one line, on SQLite (its files made immutable under an open database) and
    on PostgreSQL (the database turned read-only, as a failover to a standby does)."""
    db = open_database(db_url)
    try:
        spec, text = to_spec(hartmann_spec(), EXAMPLES_DIR)
        open_campaign(db, spec, text)
        if db.engine.dialect.name == "sqlite":
            path = Path(db.engine.url.database or "")
            files = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
            with unwritable(*[p for p in files if p.exists()]):
                with pytest.raises(DatabaseUnwritable, match="is read-only or immutable") as raised:
                    _write(db)
                db.dispose()  # closing would write the log into the file: the store must not (a bus error)
        else:
            name = db.engine.url.database
            with db.engine.connect() as connection:
                connection.execute(text_sql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
                connection.commit()
            db.dispose()  # the next connection is made under the new setting (the fixture drops the database)
            with pytest.raises(DatabaseUnwritable, match="read-only transaction") as raised:
                _write(db)
    finally:
        db.dispose()
    message = str(raised.value)
    assert message.startswith(f"database {db.url} cannot be written: ")
    assert message.endswith(
        "; the campaign stays as it was last written; `peirce resume` continues once it is writable"
    )
    assert raised.value.exit_code == 1


def _write(db: Database) -> None:
    with db.session() as session:
        session.add(Event(campaign_id=1, entity="campaign", entity_id=1, kind="note", detail={}))
