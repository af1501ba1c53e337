"""A campaign whose lab is a person, as a chemist drives it: `peirce run` hands out a batch and pauses, `peirce next`
shows it (a table, a Markdown checklist, a CSV sheet), `peirce record` enters the filled-in sheet, `peirce tell` one
experiment, `peirce resume` goes on. Bad input is one line, exit 2, and leaves every table as it was."""

from __future__ import annotations

import csv
import io
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.campaign.spec import parse_spec
from orchestrator.cycle.context import open_campaign
from orchestrator.people.requests import answer, open_requests
from orchestrator.store.database import open_database
from orchestrator.store.models import Experiment, ExperimentState, Measurement, RequestKind
from orchestrator.store.records import move_experiment
from tests.conftest import EXAMPLES
from tests.orchestrator.cli.helpers import invoke, one_error

EXAMPLE = EXAMPLES / "manual_lab.yaml"
NAME = "esterification"


def spec_text(*, experiments: int = 9, planner: str = "{kind: bayesian, seed: 0}", approval: str = "") -> str:
    """The example, with a smaller budget (three cycles of three by default)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace(
        "budget: {experiments: 18, batch_size: 3}", f"budget: {{experiments: {experiments}, batch_size: 3}}"
    )
    text = text.replace("planner: {kind: bayesian, seed: 0}", f"planner: {planner}")
    return text + (f"approval: {approval}\n" if approval else "")


def measured_yield(row: dict[str, str]) -> float:
    """What the chemist 'measures': a known function of the conditions as the sheet shows them."""
    catalyst = {"H2SO4": 12.0, "TsOH": 8.0, "Amberlyst-15": 3.0}[row["catalyst"]]
    alcohol = {"ethanol": 6.0, "n-propanol": 4.0, "n-butanol": 2.0}[row["alcohol"]]
    temperature, equivalents, hours = (
        float(row["temperature [degC]"]),
        float(row["equivalents"]),
        float(row["time [h]"]),
    )
    return round(10 + 0.3 * (temperature - 60) + 2.5 * equivalents + 3 * math.log2(hours) + catalyst + alcohol, 2)


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a SQLite file (read-only): equal dumps mean nothing was written in between."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: connection.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}


def fill(sheet: Path) -> dict[int, float]:
    """Fill the yield column of a sheet from `peirce next --format csv`, as a spreadsheet would; returns the values."""
    rows = list(csv.DictReader(io.StringIO(sheet.read_text(encoding="utf-8"))))
    values = {}
    for row in rows:
        row["yield [%]"] = repr(values.setdefault(int(row["seq"]), measured_yield(row)))
    with sheet.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return values


def measurements(db_path: Path) -> dict[int, float]:
    db = open_database(f"sqlite:///{db_path}", read_only=True)
    try:
        with db.session() as session:
            rows = session.execute(select(Experiment.seq, Measurement.value).join(Measurement)).all()
            return dict(rows)  # type: ignore[arg-type]
    finally:
        db.dispose()


@pytest.mark.slow
def test_three_cycles_through_next_and_record_then_replay_matches(tmp_path: Path) -> None:
    spec = tmp_path / "ester.yaml"
    spec.write_text(spec_text(), encoding="utf-8")
    db_path = tmp_path / "ester.db"
    db = f"sqlite:///{db_path}"

    ran = invoke("run", str(spec), "--db", db, "--engine", "inline", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    handed = f"3 experiments wait for results entered by hand (#1, #2, #3; `peirce next {NAME}`)"
    assert f"{NAME} is waiting for people: {handed}" in ran.stdout

    shown = invoke("next", NAME, "--db", db, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"{NAME}: 3 experiments wait for results" in shown.stdout
    assert "  yield: isolated yield of the ester, % of theory (from its mass)" in shown.stdout
    checklist = invoke("next", NAME, "--db", db, "--format", "markdown", cwd=tmp_path)
    assert checklist.stdout.count("- [ ] **#") == 3
    assert "Charge 5.0 mmol benzoic acid" in checklist.stdout

    recorded: dict[int, float] = {}
    for cycle in (1, 2, 3):
        sheet = tmp_path / f"batch{cycle}.csv"
        wrote = invoke("next", NAME, "--db", db, "--format", "csv", "--output", str(sheet), cwd=tmp_path)
        assert wrote.returncode == 0, wrote.stderr
        assert f"wrote 3 experiments waiting for results to {sheet}" in wrote.stdout
        header = sheet.read_text(encoding="utf-8").splitlines()[0]
        assert header == ("seq,alcohol,catalyst,equivalents,temperature [degC],time [h],yield [%],not_run,instructions")
        values = fill(sheet)
        assert sorted(values) == [3 * cycle - 2, 3 * cycle - 1, 3 * cycle]
        entered = invoke("record", NAME, str(sheet), "--by", "Ada Lovelace", "--db", db, cwd=tmp_path)
        assert entered.returncode == 0, entered.stderr
        assert entered.stdout.splitlines() == [
            f"recorded results of {', '.join(f'#{seq}' for seq in sorted(values))} (by Ada Lovelace)",
            f"nothing waits for people now; continue with: peirce resume {NAME}",
        ]
        recorded.update(values)

        # The same sheet again changes nothing, and says so.
        before = dump(db_path)
        again = invoke("record", NAME, str(sheet), "--by", "Ada Lovelace", "--db", db, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines()[0].startswith("unchanged: #")
        assert dump(db_path) == before

        resumed = invoke("resume", NAME, "--db", db, "--engine", "inline", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert f"cycle   {cycle}" in resumed.stdout
        if cycle < 3:
            assert "wait for results entered by hand" in resumed.stdout
    assert f"{NAME} finished: budget of 9 experiments spent" in resumed.stdout

    assert measurements(db_path) == recorded  # exactly what was entered, experiment by experiment
    with sqlite3.connect(db_path) as connection:
        entries = connection.execute(
            "SELECT json_extract(detail, '$.by'), json_extract(detail, '$.source') FROM events "
            "WHERE entity = 'experiment' AND to_state = 'completed'"
        ).fetchall()
    assert entries == [("Ada Lovelace", f"peirce record batch{(i - 1) // 3 + 1}.csv") for i in range(1, 10)]

    nothing = invoke("next", NAME, "--db", db, cwd=tmp_path)
    assert nothing.stdout.strip() == f"nothing of {NAME} waits for results or a manual step (status completed)"

    replayed = invoke("replay", NAME, "--db", db, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "3 of 3 decisions re-derived exactly" in replayed.stdout


@pytest.fixture(scope="module")
def waiting_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manual campaign whose first batch was approved in part: #1 and #2 handed out (waiting for results), #3
    rejected by a person. Tests copy the database before touching it."""
    folder = tmp_path_factory.mktemp("manual")
    spec = folder / "ester.yaml"
    spec.write_text(spec_text(planner="{kind: random, seed: 1}", approval="batch"), encoding="utf-8")
    db_path = folder / "ester.db"
    ran = invoke("run", str(spec), "--db", f"sqlite:///{db_path}", "--engine", "inline", cwd=folder)
    assert "3 experiments wait for approval" in ran.stdout, ran.stdout + ran.stderr
    db = open_database(f"sqlite:///{db_path}")
    with db.session() as session:
        for request in open_requests(session, 1, [RequestKind.APPROVAL]):
            experiment = session.get_one(Experiment, request.experiment_id)
            verdict = ExperimentState.APPROVED if experiment.seq < 3 else ExperimentState.REJECTED
            answer(session, request, by="Grace", resolution=verdict)
            move_experiment(session, experiment, verdict, detail={"by": "Grace"})
    db.dispose()
    resumed = invoke("resume", NAME, "--db", f"sqlite:///{db_path}", "--engine", "inline", cwd=folder)
    assert "2 experiments wait for results entered by hand (#1, #2;" in resumed.stdout, resumed.stdout
    return db_path


def _copy(db_path: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ester.db"
    copy.write_bytes(db_path.read_bytes())
    return copy


SHEETS = {
    "wrong unit": ("seq,yield [g]\n1,50\n", "column 2 ('yield [g]'): unit 'g', but yield is recorded in '%'"),
    "duplicated column": ("seq,yield [%],yield\n1,50,50\n", "column 3 ('yield'): column 'yield' is also column 2"),
    "missing column": ("seq,not_run\n1,\n", "no column 'yield [%]' in the header (columns: seq, not_run)"),
    "unknown column": ("seq,yield,notes\n1,50,good\n", "column 3 ('notes'): unknown column 'notes'"),
    "bad seq": ("seq,yield\none,50\n", "row 2, column seq: 'one' is not an experiment number"),
    "unknown seq": ("seq,yield\n1,50\n42,50\n", "sheet.csv row 3: seq: no experiment #42"),
    "rejected seq": ("seq,yield\n3,50\n", "sheet.csv row 2: seq: experiment #3: it was rejected"),
    "not a number": ("seq,yield\n1,50\n2,lots\n", "sheet.csv row 3: yield: 'lots' is not a number"),
    "nan": ("seq,yield\n1,nan\n", "sheet.csv row 2: yield: 'nan' is not a finite number"),
    "seq twice": ("seq,yield\n1,50\n1,51\n", "sheet.csv row 3: seq: experiment #1 is also entered at sheet.csv row 2"),
    "values and not_run": ("seq,yield,not_run\n1,50,spilt\n", "row 2, column not_run: says it was not run, but yield"),
    "moved row": (
        "seq,temperature [degC],yield\n1,999,50\n",
        "sheet.csv row 2, column temperature: '999', but #1 was planned at",
    ),
}


@pytest.mark.parametrize("case", list(SHEETS))
def test_a_bad_sheet_is_one_line_and_writes_nothing(waiting_campaign: Path, tmp_path: Path, case: str) -> None:
    db_path = _copy(waiting_campaign, tmp_path)
    text, expected = SHEETS[case]
    (tmp_path / "sheet.csv").write_text(text, encoding="utf-8")
    before = dump(db_path)
    result = invoke("record", NAME, "sheet.csv", "--by", "Ada", "--db", f"sqlite:///{db_path}", cwd=tmp_path)
    one_error(result, expected)
    assert dump(db_path) == before


TELLS = {
    "unknown seq": (["99", "yield=50"], "SEQ 99: seq: no experiment #99 in campaign 'esterification'"),
    "rejected": (["3", "yield=50"], "experiment #3: it was rejected; a rejected experiment has no results"),
    "unknown outcome": (["1", "purity=50"], "SEQ 1: purity: unknown outcome 'purity' (outcomes: yield)"),
    "not a number": (["1", "yield=abc"], "SEQ 1: yield: 'abc' is not a number"),
    "nan": (["1", "yield=NaN"], "SEQ 1: yield: 'NaN' is not a finite number"),
    "not NAME=VALUE": (["1", "yield"], "VALUES: 'yield' is not NAME=VALUE"),
    "nothing": (["1"], "VALUES: give NAME=VALUE for each outcome, or --not-run REASON"),
    "empty reason": (["1", "--not-run", " "], "SEQ 1: reason: say why the experiment could not be run"),
}


@pytest.mark.parametrize("case", list(TELLS))
def test_a_bad_tell_is_one_line_and_writes_nothing(waiting_campaign: Path, tmp_path: Path, case: str) -> None:
    db_path = _copy(waiting_campaign, tmp_path)
    args, expected = TELLS[case]
    before = dump(db_path)
    result = invoke("tell", NAME, *args, "--by", "Ada", "--db", f"sqlite:///{db_path}", cwd=tmp_path)
    one_error(result, expected)
    assert dump(db_path) == before


@pytest.mark.parametrize("by", [None, "", "   "])
def test_an_entry_without_a_person_is_refused(waiting_campaign: Path, tmp_path: Path, by: str | None) -> None:
    db_path = _copy(waiting_campaign, tmp_path)
    (tmp_path / "sheet.csv").write_text("seq,yield\n1,50\n", encoding="utf-8")
    before = dump(db_path)
    named = [] if by is None else ["--by", by]
    for command in (["tell", NAME, "1", "yield=50"], ["record", NAME, "sheet.csv"]):
        result = invoke(*command, *named, "--db", f"sqlite:///{db_path}", cwd=tmp_path)
        one_error(result, "--by: name the person acting")
    assert dump(db_path) == before


def test_tell_then_not_run_finish_the_batch_and_say_how_to_continue(waiting_campaign: Path, tmp_path: Path) -> None:
    db_path = _copy(waiting_campaign, tmp_path)
    db = f"sqlite:///{db_path}"
    told = invoke("tell", NAME, "1", "yield=71.5", "--by", "Ada", "--db", db, cwd=tmp_path)
    assert told.stdout.splitlines() == [
        "recorded #1: yield = 71.5 % (by Ada)",
        f"still waiting: 1 experiment waits for results entered by hand (#2; `peirce next {NAME}`)",
    ]
    gone = invoke("tell", NAME, "2", "--not-run", "TsOH bottle empty", "--by", "Ada", "--db", db, cwd=tmp_path)
    assert gone.stdout.splitlines() == [
        "#2 could not be run (TsOH bottle empty): abandoned, not counted against the budget",
        f"nothing waits for people now; continue with: peirce resume {NAME}",
    ]
    before = dump(db_path)
    again = invoke("tell", NAME, "1", "yield=71.5", "--by", "Ada", "--db", db, cwd=tmp_path)
    assert again.stdout.splitlines()[0] == "unchanged: #1 already has these results"
    other = invoke("tell", NAME, "1", "yield=70", "--by", "Ada", "--db", db, cwd=tmp_path)
    one_error(other, "SEQ 1: seq: experiment #1 already has results (yield=71.5); they are not replaced")
    assert dump(db_path) == before
    with sqlite3.connect(db_path) as connection:
        states = connection.execute("SELECT seq, state, error FROM experiments ORDER BY seq").fetchall()
    assert states == [
        (1, "completed", None),
        (2, "abandoned", "could not be run: TsOH bottle empty"),
        (3, "rejected", None),
    ]


def test_next_reads_only_and_refuses_to_overwrite_a_sheet(waiting_campaign: Path, tmp_path: Path) -> None:
    db_path = _copy(waiting_campaign, tmp_path)
    db = f"sqlite:///{db_path}"
    before = dump(db_path)
    sheet = invoke("next", NAME, "--db", db, "--format", "csv", cwd=tmp_path)
    assert sheet.returncode == 0, sheet.stderr
    rows = list(csv.DictReader(io.StringIO(sheet.stdout)))
    assert [row["seq"] for row in rows] == ["1", "2"]  # the rejected #3 is not handed out
    assert all(row["yield [%]"] == "" and row["not_run"] == "" for row in rows)
    (tmp_path / "mine.csv").write_text("seq,yield\n1,50\n", encoding="utf-8")
    refused = invoke("next", NAME, "--db", db, "--format", "csv", "--output", "mine.csv", cwd=tmp_path)
    one_error(refused, "--output: mine.csv exists (it may hold results being entered); --force overwrites it")
    assert (tmp_path / "mine.csv").read_text(encoding="utf-8") == "seq,yield\n1,50\n"
    one_error(invoke("next", NAME, "--db", db, "--format", "xml", cwd=tmp_path), "--format: 'xml' is not one of")
    assert dump(db_path) == before
    missing = invoke("next", NAME, "--db", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path)
    assert missing.returncode == 2 and not (tmp_path / "none.db").exists()


def test_next_on_a_campaign_never_run_says_to_run_it(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'ester.db'}")
    text = spec_text()
    open_campaign(db, parse_spec(text, base_dir=EXAMPLES), text)
    db.dispose()
    result = invoke("next", NAME, "--db", f"sqlite:///{tmp_path / 'ester.db'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"{NAME} has not been run yet, so nothing is handed out: start it with `peirce run CAMPAIGN_FILE` "
        f"(or `peirce resume {NAME}`)"
    )


def test_a_sheet_saved_with_semicolons_and_decimal_commas_is_read(waiting_campaign: Path, tmp_path: Path) -> None:
    db_path = _copy(waiting_campaign, tmp_path)
    (tmp_path / "sheet.csv").write_text("\ufeffseq;yield [%];not_run\n1;71,5;\n2;;\n", encoding="utf-8")
    result = invoke("record", NAME, "sheet.csv", "--by", "Ada", "--db", f"sqlite:///{db_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["recorded results of #1 (by Ada)", "not filled in yet: #2"]
    assert measurements(db_path) == {1: 71.5}
    with sqlite3.connect(db_path) as connection:
        (completed,) = connection.execute(
            "SELECT count(*) FROM events WHERE entity = 'experiment' AND to_state = 'completed'"
        ).fetchone()
    assert completed == 1
