"""A manual step in a station protocol (`{manual: "Weigh the vial", outcome: mass_mg, unit: mg}`): the station hands
it to a person and waits; `peirce tell` enters the number from another process; the step is journalled as an action
of the instrument "person" naming who entered it, and the outcome formula uses the number. A stop while the station
waits, or a step a person could not do, ends the experiment abandoned with the reason, its request withdrawn."""

from __future__ import annotations

import math
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from instruments.station import ManualStep, PersonEntry
from orchestrator.campaign import runs
from orchestrator.campaign.spec import parse_spec
from orchestrator.cycle.context import CampaignContext, load_context, open_campaign
from orchestrator.cycle.loop import InlineStages, run_loop
from orchestrator.cycle.recovery import recover
from orchestrator.errors import SpecError
from orchestrator.lab.build import build_lab
from orchestrator.lab.contract import ExperimentJournal, LabAbandoned
from orchestrator.people.requests import open_requests
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Campaign, Event, Experiment, Measurement, PersonRequest, RequestKind
from tests.instruments.station_specs import EXAMPLE, station_yaml
from tests.orchestrator.cli.helpers import PEIRCE, invoke, one_error

WEIGHING = "    - {instrument: balance, action: weigh, save: {mass_g: mass}}\n"
BY_HAND = '    - {manual: "Weigh the vial ({volume} mL of A dosed)", outcome: mass_mg, unit: mg}\n'
POINT = {"volume": 2.0, "temperature": 100.0, "time": 20.0, "stirring": 400}


def manual_station_yaml(**knobs: Any) -> str:
    """The example station with the balance's weighing done by a person, the yield computed from their number."""
    text = station_yaml(**knobs)
    assert WEIGHING in text and "(mass - 11.482)" in text
    return text.replace(WEIGHING, BY_HAND).replace("(mass - 11.482)", "(mass_mg / 1000 - 11.482)")


def expected_yield(signal: float, mass_mg: float) -> float:
    """The example's yield formula, written out here: absorbance from the signal, product from the vial's mass."""
    return 100 * math.log10(5.0 / (signal - 0.0005)) / 20 * (mass_mg / 1000 - 11.482) / 0.87 / 0.5


def test_a_manual_step_is_checked_with_the_station() -> None:
    spec = parse_spec(manual_station_yaml(), base_dir=EXAMPLE.parent)
    assert spec.lab.protocol[8].outcome == "mass_mg"  # type: ignore[union-attr]
    unknown = manual_station_yaml().replace("({volume} mL", "({dose} mL")
    with pytest.raises(SpecError, match=r"lab.protocol\[8\].manual: '\{dose\}' is not a parameter"):
        parse_spec(unknown, base_dir=EXAMPLE.parent)
    unsaved = manual_station_yaml().replace("outcome: mass_mg", "outcome: mass_g")
    with pytest.raises(SpecError, match=r"lab.outcomes.yield: mass_mg is neither saved by a step nor a numeric"):
        parse_spec(unsaved, base_dir=EXAMPLE.parent)


class Recorder:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, detail: dict[str, Any]) -> None:
        self.entries.append((kind, detail))


def test_the_station_hands_the_step_to_the_person_it_is_given_and_uses_the_number() -> None:
    lab = build_lab(parse_spec(manual_station_yaml(), base_dir=EXAMPLE.parent))
    asked: list[tuple[int, str]] = []

    def person(index: int, step: ManualStep, text: str) -> PersonEntry:
        asked.append((index, text))
        return PersonEntry(13250.0, "Ada")

    try:
        journal = Recorder()
        result = lab.run(POINT, "station_test:1", ExperimentJournal(journal, person))
        assert asked == [(8, "Weigh the vial (2 mL of A dosed)")]
        started, done = [(kind, d) for kind, d in journal.entries if d.get("instrument") == "person"]
        assert started == (
            "action-started",
            {"step": 8, "instrument": "person", "action": asked[0][1], "args": {"outcome": "mass_mg", "unit": "mg"}},
        )
        assert done[0] == "action-done"
        assert (done[1]["step"], done[1]["result"], done[1]["by"]) == (8, {"mass_mg": 13250.0}, "Ada")
        signal = next(d["result"]["voltage_v"] for k, d in journal.entries if k == "action-done" and d["step"] == 9)
        assert result.values["yield"] == pytest.approx(expected_yield(signal, 13250.0), rel=1e-12)

        # With no person to ask (a plain journal), the step cannot be done: the experiment is given up, not failed.
        with pytest.raises(LabAbandoned, match="no person can be asked"):
            lab.run(POINT, "station_test:2", Recorder())
    finally:
        lab.close()


def _events(db: Database, kinds: tuple[str, ...]) -> list[tuple[int, str, dict[str, Any]]]:
    with db.session() as session:
        rows = session.execute(
            select(Experiment.seq, Event.kind, Event.detail)
            .join(Experiment, Experiment.id == Event.entity_id)
            .where(Event.entity == "experiment", Event.kind.in_(kinds))
            .order_by(Event.id)
        ).all()
    return [(seq, kind, detail or {}) for seq, kind, detail in rows]


def _wait_for_steps(db: Database, campaign: str, count: int, timeout: float = 120) -> list[PersonRequest]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as session:
            found = session.scalar(select(Campaign.id).where(Campaign.name == campaign))
            requests = open_requests(session, found, [RequestKind.STEP]) if found else []
            if len(requests) >= count:
                session.expunge_all()
                return requests
        time.sleep(0.1)
    raise AssertionError(f"no {count} manual steps waited within {timeout} s")


@pytest.mark.slow
def test_a_run_waits_for_the_weighing_entered_from_another_terminal(tmp_path: Path) -> None:
    spec = tmp_path / "station.yaml"
    spec.write_text(manual_station_yaml(name="by_hand", experiments=2, batch_size=2), encoding="utf-8")
    db_url = f"sqlite:///{tmp_path / 'station.db'}"
    db = open_database(db_url)  # made here, so this test reads it while the runner works
    runner = subprocess.Popen(
        [PEIRCE, "run", str(spec), "--db", db_url, "--engine", "inline"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    masses = {1: 13105.0, 2: 13380.5}
    try:
        waiting = _wait_for_steps(db, "by_hand", 2)
        assert sorted(r.detail["seq"] for r in waiting) == [1, 2]
        shown = invoke("next", "by_hand", "--db", db_url, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        for request in waiting:
            seq, text = request.detail["seq"], request.detail["instructions"]
            assert (
                f"manual step waiting: #{seq} step 8: {text}; enter mass_mg (in mg) with: "
                f"peirce tell by_hand {seq} mass_mg=VALUE --by NAME"
            ) in shown.stdout
        for seq, mass in masses.items():
            told = invoke("tell", "by_hand", str(seq), f"mass_mg={mass}", "--by", "Ada", "--db", db_url, cwd=tmp_path)
            assert told.returncode == 0, told.stderr
            assert told.stdout.splitlines()[0] == (
                f"entered mass_mg = {mass} for the manual step of #{seq} (by Ada); the station goes on"
            )
        out, err = runner.communicate(timeout=180)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, err
    assert "by_hand finished: budget of 2 experiments spent" in out

    journal = _events(db, ("action-started", "action-done", "step-entered"))
    for seq, mass in masses.items():
        mine = [(kind, d) for s, kind, d in journal if s == seq and d.get("instrument", "person") == "person"]
        started, entered, done = mine
        assert started[0] == "action-started" and started[1]["action"].startswith("Weigh the vial (")
        assert entered == ("step-entered", {**entered[1], "value": mass, "by": "Ada", "source": "peirce tell"})
        assert done[0] == "action-done" and (done[1]["result"], done[1]["by"]) == ({"mass_mg": mass}, "Ada")
        signal = next(
            d["result"]["voltage_v"] for s, k, d in journal if (s, k) == (seq, "action-done") and d.get("step") == 9
        )
        with db.session() as session:
            measured = session.scalar(
                select(Measurement.value).join(Experiment).where(Experiment.seq == seq, Measurement.name == "yield")
            )
        assert measured == pytest.approx(expected_yield(signal, mass), rel=1e-12)
    with db.session() as session:
        answered = session.execute(select(PersonRequest.resolution, PersonRequest.resolved_by)).all()
    assert answered == [("entered", "Ada"), ("entered", "Ada")]
    db.dispose()


def _start(tmp_path: Path, name: str, experiments: int) -> tuple[Database, CampaignContext]:
    text = manual_station_yaml(name=name, experiments=experiments, batch_size=1)
    db = open_database(f"sqlite:///{tmp_path / 'station.db'}")
    campaign_id, _ = open_campaign(db, parse_spec(text, base_dir=EXAMPLE.parent), text)
    lease = runs.claim(db, campaign_id)
    ctx = load_context(db, campaign_id)
    ctx.runner = lease.runner
    return db, ctx


def _run_in_thread(ctx: CampaignContext) -> tuple[threading.Thread, list[str]]:
    reasons: list[str] = []
    thread = threading.Thread(target=lambda: reasons.append(run_loop(ctx, InlineStages(ctx))))
    thread.start()
    return thread, reasons


@pytest.mark.slow
def test_a_stop_while_the_station_waits_for_a_person_abandons_the_experiment(tmp_path: Path) -> None:
    db, ctx = _start(tmp_path, "stopped_by_hand", experiments=2)
    thread, reasons = _run_in_thread(ctx)
    try:
        (request,) = _wait_for_steps(db, "stopped_by_hand", 1)
        stopped = invoke("stop", "stopped_by_hand", "--db", f"sqlite:///{tmp_path / 'station.db'}", cwd=tmp_path)
        assert stopped.returncode == 0, stopped.stderr
    finally:
        thread.join(timeout=120)
    assert reasons == ["stopped by request"]
    with db.session() as session:
        experiment = session.get_one(Experiment, request.experiment_id)
        withdrawn = session.get_one(PersonRequest, request.id)
        campaign = session.get_one(Campaign, ctx.campaign_id)
        assert (experiment.seq, experiment.state) == (1, "abandoned")
        volume = f"{experiment.parameters['volume']:g}"
        assert experiment.error == (
            f"stopped by request while step 8 (Weigh the vial ({volume} mL of A dosed)) waited for a person"
        )
        assert (withdrawn.resolution, withdrawn.resolved_by) == ("withdrawn", "peirce")
        assert campaign.status == "stopped"
        assert session.scalars(select(Experiment.seq)).all() == [1]  # nothing planned after the stop
    failed = [d for _, kind, d in _events(db, ("action-failed",))]
    assert [(d["instrument"], d["error"]) for d in failed] == [("person", "not-done")]
    db.dispose()


@pytest.mark.slow
def test_a_step_the_person_could_not_do_abandons_the_experiment_and_the_campaign_goes_on(tmp_path: Path) -> None:
    db, ctx = _start(tmp_path, "vial_cracked", experiments=1)
    url = f"sqlite:///{tmp_path / 'station.db'}"
    thread, reasons = _run_in_thread(ctx)
    try:
        (first,) = _wait_for_steps(db, "vial_cracked", 1)
        told = invoke(
            "tell", "vial_cracked", "1", "--not-run", "vial cracked", "--by", "Ada", "--db", url, cwd=tmp_path
        )
        assert told.stdout.splitlines() == [
            "the manual step of #1 was not done (vial cracked); the experiment ends abandoned"
        ], told.stderr
        # The campaign plans again (an abandoned experiment is not spent): the next one is weighed.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _open_step_of(db, 2):
            time.sleep(0.1)
        entered = invoke("tell", "vial_cracked", "2", "mass_mg=13200", "--by", "Ada", "--db", url, cwd=tmp_path)
        assert entered.returncode == 0, entered.stderr
    finally:
        thread.join(timeout=120)
    assert reasons == ["budget of 1 experiments spent"]
    with db.session() as session:
        states = session.execute(select(Experiment.seq, Experiment.state, Experiment.error)).all()
        answered = session.get_one(PersonRequest, first.id)
        assert (answered.resolution, answered.resolved_by, answered.note) == ("not-run", "Ada", "vial cracked")
    assert states[1][:2] == (2, "completed")
    assert states[0][:2] == (1, "abandoned")
    assert states[0][2].startswith("step 8 (Weigh the vial (") and states[0][2].endswith(
        "not done: vial cracked (not-run by Ada)"
    )
    db.dispose()


def _open_step_of(db: Database, seq: int) -> bool:
    with db.session() as session:
        return bool(
            session.scalar(
                select(PersonRequest.id)
                .join(Experiment, Experiment.id == PersonRequest.experiment_id)
                .where(Experiment.seq == seq, PersonRequest.resolved_at.is_(None))
            )
        )


@pytest.mark.slow
def test_a_runner_killed_while_a_person_weighs_leaves_the_experiment_abandoned_and_the_step_withdrawn(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "station.yaml"
    spec.write_text(manual_station_yaml(name="killed", experiments=2, batch_size=1), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'station.db'}"
    db = open_database(url)
    runner = subprocess.Popen(
        [PEIRCE, "run", str(spec), "--db", url, "--engine", "inline"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        (request,) = _wait_for_steps(db, "killed", 1)
    finally:
        runner.kill()
        runner.communicate(timeout=60)

    # The next runner (here its first act, recovery) finds the protocol gone with the process that ran it.
    with db.session() as session:
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.name == "killed"))
    lease = runs.claim(db, campaign_id)
    ctx = load_context(db, campaign_id)
    ctx.runner = lease.runner
    recover(ctx)
    with db.session() as session:
        experiment = session.get_one(Experiment, request.experiment_id)
        withdrawn = session.get_one(PersonRequest, request.id)
        volume = f"{experiment.parameters['volume']:g}"
        assert (experiment.state, experiment.error) == (
            "abandoned",
            f"interrupted while step 8 (Weigh the vial ({volume} mL of A dosed)) waited for a person",
        )
        assert (withdrawn.resolution, withdrawn.resolved_by) == ("withdrawn", "peirce")
    late = invoke("tell", "killed", "1", "mass_mg=13000", "--by", "Ada", "--db", url, cwd=tmp_path)
    one_error(late, "SEQ: experiment #1 has no manual step waiting (the last one was withdrawn by peirce)")
    status = invoke("status", "killed", "--db", url, cwd=tmp_path)
    assert "unconfirmed" not in status.stdout  # nothing was sent to an instrument and left unconfirmed
    db.dispose()
