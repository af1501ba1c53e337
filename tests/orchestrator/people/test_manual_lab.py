"""A manual lab (`lab: {manual: {outcomes, instructions, wait}}`): checked at load with field paths, the work handed
out with its instructions filled in, and a runner that waits in its process for `wait` before it pauses — so
results entered meanwhile let it go on without a pause."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.campaign import runs
from orchestrator.campaign.spec import json_schema
from orchestrator.cycle.context import load_context, open_campaign
from orchestrator.cycle.loop import InlineStages, run_loop
from orchestrator.errors import SpecError
from orchestrator.lab.build import build_lab
from orchestrator.lab.contract import HandedToPerson
from orchestrator.people.requests import open_requests
from orchestrator.people.results import ResultEntry, enter_results
from orchestrator.store.database import open_database
from orchestrator.store.models import Event, Experiment, PersonRequest, RequestKind
from tests.campaigns import hartmann_spec, to_spec

MANUAL = {
    "manual": {
        "outcomes": {"y": "absorbance at 450 nm"},
        "instructions": "Mix {x1} mL of A with {x2} mL of B",
    }
}


def manual_spec(lab: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    data = hartmann_spec(**overrides)
    data["lab"] = lab if lab is not None else MANUAL
    return data


@pytest.mark.parametrize(
    ("lab", "expected"),
    [
        ({"manual": {"outcomes": {"yield": "HPLC"}}}, "lab.manual.outcomes.yield: 'yield' is not an objective"),
        ({"manual": {"instructions": "at {temp} °C"}}, "lab.manual.instructions: '{temp}' is not a parameter"),
        ({"manual": {"wait": "soon"}}, "lab.manual.wait: 'soon' is not a duration such as 3600, '90m' or '2h'"),
        ({"manual": {"wait": -1}}, "lab.manual.wait: Input should be greater than or equal to 0"),
        ({"manual": {"instruction": "typo"}}, "lab.manual.instruction: unknown key"),
        ({"manual": "yes"}, "lab.manual: Input should be a valid dictionary"),
    ],
)
def test_a_bad_manual_lab_is_refused_naming_the_field(lab: dict[str, Any], expected: str) -> None:
    with pytest.raises(SpecError) as refused:
        to_spec(manual_spec(lab))
    assert str(refused.value).startswith(expected)


def test_the_work_handed_out_has_its_instructions_filled_in() -> None:
    spec, _ = to_spec(manual_spec({"manual": {**MANUAL["manual"], "wait": "8h"}}))
    assert spec.lab.manual.wait == 8 * 3600  # type: ignore[union-attr]
    lab = build_lab(spec)
    with pytest.raises(HandedToPerson) as handed:
        lab.run({f"x{i}": 0.123456789 * i for i in range(1, 7)}, "h6:1")
    assert handed.value.detail == {
        "instructions": "Mix 0.123457 mL of A with 0.246914 mL of B",
        "outcomes": {"y": "absorbance at 450 nm"},
        "units": {"y": ""},
    }
    bare = build_lab(to_spec(manual_spec({"manual": {}}))[0])
    with pytest.raises(HandedToPerson) as plain:
        bare.run({"x1": 0.5, "x2": 1, "x3": 0.25, "x4": 0, "x5": 0, "x6": 0}, "h6:1")
    assert (
        plain.value.detail["instructions"]
        == "Run the experiment at x1 = 0.5, x2 = 1, x3 = 0.25, x4 = 0, x5 = 0, x6 = 0"
    )
    assert plain.value.detail["outcomes"] == {"y": ""}


def test_the_schema_for_editors_takes_a_wait_as_a_duration() -> None:
    wait = json_schema()["$defs"]["ManualSettings"]["properties"]["wait"]
    assert {"type": "number", "minimum": 0} in wait["anyOf"]
    assert any(option.get("type") == "string" for option in wait["anyOf"])


def test_results_entered_while_the_runner_waits_go_on_without_a_pause(tmp_path: Path) -> None:
    data = manual_spec({"manual": {**MANUAL["manual"], "wait": "10m"}}, budget={"experiments": 4, "batch_size": 2})
    db = open_database(f"sqlite:///{tmp_path / 'manual.db'}")
    spec, text = to_spec(data)
    campaign_id, _ = open_campaign(db, spec, text)
    lease = runs.claim(db, campaign_id)
    ctx = load_context(db, campaign_id)
    ctx.runner = lease.runner
    entered: list[int] = []

    def chemist() -> None:
        deadline = time.monotonic() + 60
        while len(entered) < 4 and time.monotonic() < deadline:
            with db.session() as session:
                seqs = [r.detail["seq"] for r in open_requests(session, campaign_id, [RequestKind.RESULT])]
            if seqs:
                enter_results(db, "h6", [ResultEntry(seq, {"y": -0.5 * seq}) for seq in seqs], by="Ada", source="test")
                entered.extend(seqs)
            time.sleep(0.05)

    person = threading.Thread(target=chemist)
    person.start()
    try:
        reason = run_loop(ctx, InlineStages(ctx))
    finally:
        person.join()
    assert reason == "budget of 4 experiments spent"
    assert sorted(entered) == [1, 2, 3, 4]
    with db.session() as session:
        statuses = session.scalars(
            select(Event.to_state).where(Event.entity == "campaign", Event.kind == "state").order_by(Event.id)
        ).all()
        assert "waiting" not in statuses  # it never paused: the results came within the wait
        handed = session.scalars(select(PersonRequest.detail).order_by(PersonRequest.id)).all()
        states = session.scalars(select(Experiment.state).order_by(Experiment.seq)).all()
    assert states == ["completed"] * 4
    assert [d["instructions"].startswith("Mix ") for d in handed] == [True] * 4
