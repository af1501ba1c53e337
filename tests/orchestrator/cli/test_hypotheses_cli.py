"""A person's side of the hypothesis ledger: `peirce hypotheses`, `hypothesize`, `retire`, and knowledge carried
from one campaign to the next.

Commands run in this process through the CLI's own `main` (so errors become one line and exit status 2 exactly as
for a user) on a SQLite file. The campaign is a small lookup screen run with the random planner and
`hypotheses: none`, so no model is ever fitted; statuses and credences that a model would give are written directly.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from orchestrator.cli.app import main
from orchestrator.store.models import (
    Campaign,
    Cycle,
    Event,
    Experiment,
    Hypothesis,
    HypothesisCredence,
    HypothesisTest,
)

SOLVENT_EFFECT = {"DMAc": 5.0, "Xylene": 1.0, "MeCN": 3.0}


def _screen_spec(name: str = "screen", **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "goal": "find the best solvent and temperature",
        "space": [
            {"name": "temperature", "type": "discrete", "values": [90, 105, 120]},
            {"name": "solvent", "type": "categorical", "levels": list(SOLVENT_EFFECT)},
        ],
        "objectives": [{"name": "yield", "direction": "maximize"}],
        "budget": {"experiments": 4, "batch_size": 2},
        "planner": {"kind": "random", "seed": 1},
        "hypotheses": "none",
        "lab": {"simulator": "lookup", "table": "screen.csv"},
    }
    spec.update(overrides)
    return spec


def _write_screen(directory: Path) -> None:
    lines = ["temperature,solvent,yield"]
    for t, s in itertools.product([90, 105, 120], SOLVENT_EFFECT):
        lines.append(f"{t},{s},{t / 10 + SOLVENT_EFFECT[s]}")
    (directory / "screen.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = ["pressure,solvent,yield"]
    for p, s in itertools.product([1, 2], SOLVENT_EFFECT):
        lines.append(f"{p},{s},{p + SOLVENT_EFFECT[s]}")
    (directory / "pressure.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_spec(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _main(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def screen_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small campaign, run once (two cycles of the random planner); each test works on a copy."""
    directory = tmp_path_factory.mktemp("screen")
    _write_screen(directory)
    _write_spec(directory / "screen.yaml", _screen_spec())
    cwd = Path.cwd()
    os.chdir(directory)
    try:
        assert _main("run", "screen.yaml", "--engine", "inline", "--db", f"sqlite:///{directory / 'base.db'}") == 0
    finally:
        os.chdir(cwd)
    return directory


class Peirce:
    """The CLI against one database in one directory, with what it printed."""

    def __init__(self, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.directory, self.capsys = directory, capsys
        self.url = f"sqlite:///{directory / 'peirce.db'}"

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        cwd = Path.cwd()
        os.chdir(self.directory)
        try:
            code = _main(*args) if args[0] == "validate" else _main(*args, "--db", self.url)
        finally:
            os.chdir(cwd)
        out, err = self.capsys.readouterr()
        return code, out, err

    def session(self) -> Session:
        return Session(create_engine(self.url))

    def count(self, model: type) -> int:
        with self.session() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0

    def ledger(self) -> list[dict[str, Any]]:
        code, out, err = self("hypotheses", "screen", "--all", "--json")
        assert code == 0, err
        return json.loads(out)["hypotheses"]


@pytest.fixture
def peirce(screen_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> Iterator[Peirce]:
    for name in ("screen.csv", "pressure.csv", "screen.yaml"):
        shutil.copy(screen_db / name, tmp_path / name)
    # SQLite's backup copies what is still in the write-ahead log too (a plain file copy would miss it).
    with sqlite3.connect(screen_db / "base.db") as source, sqlite3.connect(tmp_path / "peirce.db") as target:
        source.backup(target)
    monkeypatch.delenv("PEIRCE_DB_URL", raising=False)
    yield Peirce(tmp_path, capsys)


def _one_error(code: int, err: str, expected: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]


# --- hypothesize, list ------------------------------------------------------------------------------------------


def test_each_kind_is_added_checked_and_listed(peirce: Peirce) -> None:
    commands = [
        ["effect", "--parameter", "temperature", "--from", "90", "--to", "120", "--direction", "raises"],
        ["contrast", "--parameter", "solvent", "--better", "DMAc", "--worse", "Xylene", "--context", "temperature=105"],
        ["region", "--where", "temperature>=105", "--where", "temperature<=120", "--where", "solvent=DMAc|MeCN"],
        ["attainability", "--below", "10", "--rationale", "the worst solvent at low temperature"],
    ]
    for command in commands:
        code, out, err = peirce("hypothesize", "screen", *command)
        assert code == 0, err
        assert out.startswith("hypothesis ") and " added: " in out
        assert "hypotheses: none" in out  # the person is told this campaign will not test it
    claim = {"kind": "contrast", "parameter": "solvent", "better": "MeCN", "worse": "Xylene", "rationale": "polar"}
    (peirce.directory / "claim.json").write_text(json.dumps(claim), encoding="utf-8")
    code, out, err = peirce("hypothesize", "screen", "--from-json", "claim.json")
    assert code == 0, err

    entries = peirce.ledger()
    assert [e["kind"] for e in entries] == ["effect", "contrast", "region", "attainability", "contrast"]
    assert {e["source"] for e in entries} == {"person"}
    assert {e["status"] for e in entries} == {"open"}
    assert all(e["credence"] is None and e["evidence"] == 0 for e in entries)
    assert {e["cycle"] for e in entries} == {2}  # filed under the campaign's latest cycle
    assert entries[1]["claim"]["context"] == {"temperature": 105.0}
    assert entries[2]["claim"]["where"] == [
        {"parameter": "solvent", "at_least": None, "at_most": None, "levels": ["DMAc", "MeCN"]},
        {"parameter": "temperature", "at_least": 105.0, "at_most": 120.0, "levels": None},
    ]
    assert entries[3]["statement"] == "yield can go below 10 somewhere in the space"
    assert entries[3]["rationale"] == "the worst solvent at low temperature"
    assert entries[4]["rationale"] == "polar" and entries[4]["claim"]["objective"] == "yield"

    code, out, _ = peirce("hypotheses", "screen")
    assert code == 0
    assert "raising temperature from 90 to 120 raises yield" in out
    assert "yield can go below 10 somewhere in the space" in out
    assert "person" in out and "rejected" not in out
    with peirce.session() as session:
        events = session.scalars(select(Event).where(Event.entity == "hypothesis")).all()
    assert [(e.kind, e.to_state) for e in events] == [("created", "open")] * 5


def test_the_ledger_piped_to_a_file_keeps_each_row_on_one_line(peirce: Peirce) -> None:
    """Piped (as here: not a terminal), the table is as wide as its rows: no statement cut into a narrow column."""
    where = ["--where", "temperature>=105", "--where", "solvent=DMAc|MeCN"]
    assert peirce("hypothesize", "screen", "region", *where, "--rationale", "polar solvents when hot")[0] == 0
    code, out, _ = peirce("hypotheses", "screen")
    assert code == 0
    (statement,) = [e["statement"] for e in peirce.ledger()]
    (row,) = [line for line in out.splitlines() if line.lstrip().startswith("1 ")]
    assert statement in row and len(row) > 80
    assert row.split() == ["1", "region", *statement.split(), "person", "—", "open", "0", "2"]


REFUSED = [
    (
        ["effect", "--parameter", "pressure", "--from", "1", "--to", "2", "--direction", "raises"],
        "parameter: unknown parameter 'pressure'",
    ),
    (["contrast", "--parameter", "solvent", "--better", "DMAc", "--worse", "THF"], "worse: 'THF' is not a level"),
    (
        ["effect", "--parameter", "temperature", "--from", "90", "--to", "150", "--direction", "raises"],
        "to_value: 150 is outside temperature's range [90, 120]",
    ),
    (
        ["effect", "--parameter", "solvent", "--from", "1", "--to", "2", "--direction", "raises"],
        "'solvent' is categorical; an effect needs a numeric parameter",
    ),
    (["region", "--where", "solvent=THF"], "where[0].levels: 'THF' is not a level of solvent"),
    (["region", "--where", "temperature>=90"], "the region is the whole space"),
    (["region", "--where", "temperature>>90"], "--where: 'temperature>>90' is not of the form"),
    (["attainability", "--above", "3", "--objective", "purity"], "objective: unknown objective 'purity'"),
    (["attainability"], "--above: give either --above X or --below X"),
    (
        ["effect", "--parameter", "temperature", "--from", "90", "--to", "120", "--direction", "up"],
        "direction: Input should be 'raises' or 'lowers'",
    ),
    (["effect", "--parameter", "temperature", "--from", "90", "--direction", "raises"], "--to: required for an"),
    (["attainability", "--above", "3", "--better", "DMAc"], "--better: not used by an attainability claim"),
    (["speculation"], "KIND: 'speculation' is not one of"),
    (["attainability", "--above", "16"], "duplicate of hypothesis"),
    (["attainability", "--below", "16"], "same question as hypothesis"),
]


@pytest.mark.parametrize(("command", "expected"), REFUSED, ids=[e for _, e in REFUSED])
def test_refused_claims_are_one_line_exit_2_and_write_nothing(
    peirce: Peirce, command: list[str], expected: str
) -> None:
    # A standing claim, so that repeating it (or stating its opposite) is refused.
    assert peirce("hypothesize", "screen", "attainability", "--above", "16")[0] == 0
    before = peirce.count(Hypothesis), peirce.count(Event)
    code, _, err = peirce("hypothesize", "screen", *command)
    _one_error(code, err, expected)
    assert (peirce.count(Hypothesis), peirce.count(Event)) == before


def test_unknown_campaign_and_unreadable_claim_file(peirce: Peirce) -> None:
    code, _, err = peirce("hypothesize", "ghost", "attainability", "--above", "3")
    _one_error(code, err, "no campaign 'ghost'")
    code, _, err = peirce("hypotheses", "ghost")
    _one_error(code, err, "no campaign 'ghost'")
    (peirce.directory / "bad.json").write_text("{not json", encoding="utf-8")
    code, _, err = peirce("hypothesize", "screen", "--from-json", "bad.json")
    _one_error(code, err, "--from-json: bad.json is not JSON")
    (peirce.directory / "extra.json").write_text(json.dumps({"kind": "attainability", "value": 3, "x": 1}))
    code, _, err = peirce("hypothesize", "screen", "--from-json", "extra.json")
    _one_error(code, err, "claim: x: unknown field")
    code, _, err = peirce("hypothesize", "screen", "--from-json", "extra.json", "--parameter", "solvent")
    _one_error(code, err, "--parameter: give the claim either in --from-json or as options, not both")
    assert peirce.count(Hypothesis) == 0


# --- retire, history ----------------------------------------------------------------------------------------------


def test_a_person_retires_an_open_hypothesis(peirce: Peirce) -> None:
    assert peirce("hypothesize", "screen", "attainability", "--above", "16")[0] == 0
    code, out, err = peirce("retire", "screen", "1", "--reason", "the table's best is known")
    assert code == 0, err
    assert out.startswith("hypothesis 1 retired: yield can go above 16")
    (entry,) = peirce.ledger()
    assert entry["status"] == "retired" and "the table's best is known" in entry["reason"]
    with peirce.session() as session:
        event = session.scalars(select(Event).where(Event.entity == "hypothesis").order_by(Event.id.desc())).first()
    assert (event.kind, event.from_state, event.to_state) == ("state", "open", "retired")

    _one_error(*peirce("retire", "screen", "1", "--reason", "again")[::2], "only an open hypothesis can be retired")
    _one_error(*peirce("retire", "screen", "7", "--reason", "x")[::2], "ID: campaign 'screen' has no hypothesis 7")


def test_rejected_are_counted_and_history_shows_credences_and_tests(peirce: Peirce) -> None:
    assert (
        peirce("hypothesize", "screen", "contrast", "--parameter", "solvent", "--better", "DMAc", "--worse", "MeCN")[0]
        == 0
    )
    with peirce.session() as session, session.begin():
        campaign = session.scalars(select(Campaign)).one()
        cycles = session.scalars(select(Cycle).order_by(Cycle.index)).all()
        third = session.scalars(select(Experiment).where(Experiment.seq == 3)).one()
        measured_point = dict(third.parameters)
        session.add(
            Hypothesis(
                campaign_id=campaign.id,
                cycle_id=cycles[0].id,
                kind="effect",
                statement="(not a valid claim)",
                claim={"kind": "effect", "parameter": "colour"},
                source="llm",
                status="rejected",
                reason="parameter: unknown parameter 'colour'",
            )
        )
        for cycle, credence in zip(cycles, (0.7, 0.9), strict=True):
            session.add(
                HypothesisCredence(hypothesis_id=1, cycle_id=cycle.id, credence=credence, evidence=1, observations=2)
            )
        session.add(
            HypothesisTest(
                hypothesis_id=1,
                experiment_id=third.id,
                chosen=True,
                information_bits=0.42,
                predicted={"objective": "yield", "mean": 12.5, "std": 1.5, "credence": 0.7},
            )
        )
    code, out, _ = peirce("hypotheses", "screen")
    assert code == 0 and "1 proposal was rejected (--all shows why)" in out and "colour" not in out
    code, out, _ = peirce("hypotheses", "screen", "--all")
    assert "rejected" in out and "unknown parameter 'colour'" in out

    code, out, _ = peirce("hypotheses", "screen", "--history", "1")
    assert code == 0
    assert "hypothesis 1 (contrast, person)" in out and "credence per cycle" in out
    assert "0.700" in out and "0.900" in out and "#3" in out and "12.5 ± 1.5" in out
    code, out, _ = peirce("hypotheses", "screen", "--history", "1", "--json")
    history = json.loads(out)
    assert [c["credence"] for c in history["credences"]] == [0.7, 0.9]
    assert [c["cycle"] for c in history["credences"]] == [1, 2]
    (test,) = history["tests"]
    assert test["seq"] == 3 and test["chosen"] and test["predicted_mean"] == 12.5
    expected = measured_point["temperature"] / 10 + SOLVENT_EFFECT[measured_point["solvent"]]
    assert test["measured"] == pytest.approx(expected) and test["state"] == "completed"
    _one_error(
        *peirce("hypotheses", "screen", "--history", "9")[::2], "--history: campaign 'screen' has no hypothesis 9"
    )


def test_history_tells_the_credence_at_proposal_from_the_one_after_the_results(peirce: Peirce) -> None:
    """Abduction gives a new hypothesis a credence before its cycle's experiments; induction gives it another after
    them. Both belong to the same cycle, so the history says which is which (it listed the cycle twice, alike)."""
    assert peirce("hypothesize", "screen", "attainability", "--above", "16")[0] == 0
    with peirce.session() as session, session.begin():
        second = session.scalars(select(Cycle).where(Cycle.index == 2)).one()
        entered_induction = session.scalars(
            select(Event.at).where(Event.entity == "cycle", Event.entity_id == second.id, Event.to_state == "inducing")
        ).one()
        # As the ledger writes them: at abduction (evidence 0, before induction began), then at induction.
        for credence, evidence, observations, at in (
            (0.55, 0, 2, entered_induction - timedelta(seconds=1)),
            (0.8, 2, 4, entered_induction + timedelta(seconds=1)),
        ):
            session.add(
                HypothesisCredence(
                    hypothesis_id=1,
                    cycle_id=second.id,
                    credence=credence,
                    evidence=evidence,
                    observations=observations,
                    created_at=at,
                )
            )
    code, out, err = peirce("hypotheses", "screen", "--history", "1", "--json")
    assert code == 0, err
    rows = [(c["cycle"], c["stage"], c["credence"]) for c in json.loads(out)["credences"]]
    assert rows == [(2, "abduce", 0.55), (2, "induce", 0.8)]
    code, out, _ = peirce("hypotheses", "screen", "--history", "1")
    assert code == 0
    table = [line.split() for line in out.splitlines() if line.startswith("│ 2 ")]
    assert [row[:9] for row in table] == [
        ["│", "2", "│", "when", "proposed", "│", "0.550", "│", "0"],
        ["│", "2", "│", "after", "the", "results", "│", "0.800", "│"],
    ]


# --- knowledge ----------------------------------------------------------------------------------------------------


def _settle(peirce: Peirce, statuses: dict[int, tuple[str, float, int]]) -> None:
    with peirce.session() as session, session.begin():
        for hypothesis_id, (status, credence, evidence) in statuses.items():
            row = session.get(Hypothesis, hypothesis_id)
            row.status, row.credence, row.evidence = status, credence, evidence


def test_knowledge_is_exported_and_imported_into_a_new_campaign(peirce: Peirce) -> None:
    for command in (
        ["effect", "--parameter", "temperature", "--from", "90", "--to", "120", "--direction", "raises"],
        ["contrast", "--parameter", "solvent", "--better", "DMAc", "--worse", "Xylene"],
        ["attainability", "--above", "16"],
    ):
        assert peirce("hypothesize", "screen", *command)[0] == 0
    _settle(peirce, {1: ("supported", 0.97, 4), 2: ("refuted", 0.03, 3)})

    code, out, err = peirce("knowledge", "export", "screen", "--out", "k.json")
    assert code == 0, err
    assert "wrote 2 hypotheses to k.json" in out
    knowledge = json.loads((peirce.directory / "k.json").read_text())
    assert knowledge["format"] == "peirce-knowledge" and knowledge["version"] == 1
    assert knowledge["campaign"] == "screen" and knowledge["objectives"][0]["name"] == "yield"
    assert [h["status"] for h in knowledge["hypotheses"]] == ["supported", "refuted"]
    assert knowledge["hypotheses"][0]["credence"] == 0.97 and knowledge["hypotheses"][0]["source"] == "person"
    assert peirce("knowledge", "export", "screen", "--all", "--out", "all.json")[0] == 0
    assert len(json.loads((peirce.directory / "all.json").read_text())["hypotheses"]) == 3

    # A new campaign on another space: pressure instead of temperature.
    space = [
        {"name": "pressure", "type": "discrete", "values": [1, 2]},
        {"name": "solvent", "type": "categorical", "levels": list(SOLVENT_EFFECT)},
    ]
    spec = _screen_spec("next", space=space, hypotheses={"source": "none", "knowledge": ["k.json"]})
    spec["lab"] = {"simulator": "lookup", "table": "pressure.csv"}
    _write_spec(peirce.directory / "next.yaml", spec)
    assert peirce("validate", "next.yaml")[0] == 0
    code, _, err = peirce("run", "next.yaml", "--engine", "inline")
    assert code == 0, err
    code, out, _ = peirce("hypotheses", "next", "--all", "--json")
    effect, contrast = json.loads(out)["hypotheses"]
    assert contrast["status"] == "open" and contrast["source"] == "person" and contrast["cycle"] is None
    assert contrast["rationale"] == "was refuted in campaign screen (credence 0.030, 3 results)"
    assert contrast["origin"]["campaign"] == "screen" and contrast["origin"]["status"] == "refuted"
    assert contrast["origin"]["credence"] == 0.03 and contrast["origin"]["evidence"] == 3
    assert contrast["origin"]["file"] == str((peirce.directory / "k.json").resolve())
    assert effect["status"] == "rejected" and "unknown parameter 'temperature'" in effect["reason"]
    assert effect["origin"]["status"] == "supported"
    code, out, _ = peirce("hypotheses", "next")
    assert "person, imported" in out and "1 proposal was rejected" in out

    # Into an existing campaign: the same claims are now duplicates there.
    code, out, err = peirce("knowledge", "import", "next", "all.json")
    assert code == 0, err
    assert "1 open, 2 rejected" in out  # the attainability claim is new; the other two are already in the ledger


BAD_KNOWLEDGE = [
    ("not json at all", "is not JSON"),
    (json.dumps({"format": "other", "version": 1}), 'is not a peirce knowledge file ("format" must be'),
    (json.dumps({"format": "peirce-knowledge", "version": 2, "campaign": "x", "hypotheses": []}), "version 2"),
    (
        json.dumps(
            {
                "format": "peirce-knowledge",
                "version": 1,
                "campaign": "x",
                "hypotheses": [{"claim": {"kind": "effect", "objective": "yield", "parameter": "t"}}],
            }
        ),
        "hypotheses[0].claim: from_value: required field is missing",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_KNOWLEDGE)
def test_a_malformed_knowledge_file_is_refused_when_the_spec_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    _write_screen(tmp_path)
    (tmp_path / "k.json").write_text(text, encoding="utf-8")
    _write_spec(tmp_path / "bad.yaml", _screen_spec("bad", hypotheses={"knowledge": ["k.json"]}))
    runner = Peirce(tmp_path, capsys)
    for command in (["validate", "bad.yaml"], ["run", "bad.yaml", "--engine", "inline"]):
        code, _, err = runner(*command)
        _one_error(code, err, "hypotheses.knowledge[0]: ")
        assert expected in err
    assert not (tmp_path / "peirce.db").exists() or runner.count(Campaign) == 0


def test_hypothesize_loads_no_torch(peirce: Peirce) -> None:
    """The command checks and writes a claim; it must stay quick, so it never loads the modelling stack."""
    code = (
        "import sys\n"
        "from orchestrator.cli.app import main\n"
        f"main(['hypothesize', 'screen', 'attainability', '--above', '16', '--db', {peirce.url!r}])\n"
        "print('torch loaded' if 'torch' in sys.modules else 'no torch')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=peirce.directory, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "hypothesis 1 added" in result.stdout and "no torch" in result.stdout
