"""Approving a batch in Prefect: the flow run pauses with a form showing the batch; an answer given there, or by the
CLI while it is paused, lets the campaign go on, and both are the same records as the CLI's acts.

The end-to-end test runs `peirce run --engine prefect` against a real Prefect server (started by the test, on
loopback) and answers through Prefect's client API, as the UI does; nothing of Prefect is mocked. The form's checks
and the acts it calls are tested without a server, on a campaign paused by the inline engine."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run
from prefect.input.actions import read_flow_run_input
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import select

from orchestrator.campaign import runs
from orchestrator.cycle.context import CampaignContext, load_context, open_campaign
from orchestrator.cycle.loop import InlineStages, run_loop
from orchestrator.cycle.prefect_input import (
    ApprovalForm,
    WaitingExperiment,
    carry_out,
    checked_answer,
    describe,
)
from orchestrator.errors import SpecError
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Campaign, Event, Experiment, PersonRequest
from tests.campaigns import EXAMPLES_DIR, hartmann_spec, to_spec, write_spec
from tests.orchestrator.cli.helpers import PEIRCE, invoke
from tests.prefect.test_server import prefect_env  # noqa: F401 (the real server's fixture)

RUN_DEADLINE_S = 300.0  # a runner on two shared cores: Prefect's start, two batches, four pauses


# --- the form, without a server -----------------------------------------------------------------------------------


def _form(**fields: str) -> ApprovalForm:
    return ApprovalForm(**{"by": "Grace", **fields})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"by": "  ", "approve": "all"}, "by: name the person acting"),
        ({"approve": "9"}, "approve: #9 does not wait for approval (waiting: #1, #2)"),
        ({"approve": "one"}, "approve: 'one' is not an experiment number"),
        ({"reject": "2"}, "note: say why the experiments are rejected"),
        ({"approve": "1, 2", "reject": "2", "note": "x"}, "reject: #2 is also to be approved; choose one"),
        ({}, "approve: say which experiments to approve"),
    ],
)
def test_a_bad_answer_is_refused_naming_the_field(fields: dict[str, str], message: str) -> None:
    with pytest.raises(SpecError) as refused:
        checked_answer(_form(**fields), [1, 2])
    assert str(refused.value).startswith(message)


def test_an_answer_reads_numbers_and_all() -> None:
    assert checked_answer(_form(approve="all", reject="#2", note="too hot"), [1, 2, 3]).approve == [1, 3]
    answer = checked_answer(_form(approve=" 3;1 ,1", note=" fine "), [1, 2, 3])
    assert (answer.by, answer.approve, answer.reject, answer.note) == ("Grace", [3, 1], [], "fine")
    assert checked_answer(_form(reject="all", note="no"), [1, 2]).reject == [1, 2]


def test_the_description_shows_the_batch_and_a_refusal() -> None:
    batch = [
        WaitingExperiment(1, {"x1": 0.123456, "solvent": "DMF"}, {"y": {"mean": -1.5, "std": 0.25}}, ["rule a"]),
        WaitingExperiment(2, {"x1": 0.5, "solvent": "a|b"}, {}, ["rule a", "rule b"]),
    ]
    text = describe("h6", batch, _at("2030-01-02T03:04:00"), refused="by: name the person acting")
    lines = text.splitlines()
    assert lines[0] == "**Your last answer was refused, and nothing was written:** by: name the person acting"
    assert "| # | x1 | solvent | predicted y | why it waits |" in lines
    assert "| 1 | 0.1235 | DMF | -1.5 ± 0.25 | rule a |" in lines
    assert "| 2 | 0.5 | a\\|b |  | rule a; rule b |" in lines
    assert "If nobody answers by 2030-01-02 03:04 UTC the campaign pauses" in text


def _at(iso: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(iso)


@pytest.fixture
def paused(tmp_path: Path) -> Iterator[tuple[Database, CampaignContext]]:
    """A campaign whose first batch (#1, #2) waits for approval, paused by the inline engine."""
    db = open_database(f"sqlite:///{tmp_path / 'c.db'}")
    spec, text = to_spec(hartmann_spec(budget={"experiments": 4, "batch_size": 2}, approval="batch"), EXAMPLES_DIR)
    campaign_id, _ = open_campaign(db, spec, text)
    runs.claim(db, campaign_id)
    ctx = load_context(db, campaign_id)
    run_loop(ctx, InlineStages(ctx))
    yield db, ctx
    db.dispose()


def test_the_form_answer_is_carried_out_by_the_clis_acts(paused: tuple[Database, CampaignContext]) -> None:
    db, ctx = paused
    carry_out(ctx, checked_answer(_form(approve="1", reject="2", note="too close to the edge"), [1, 2]))
    with db.session() as session:
        states = dict(session.execute(select(Experiment.seq, Experiment.state)).all())
        requests = session.scalars(select(PersonRequest).order_by(PersonRequest.id)).all()
        moves = session.scalars(select(Event).where(Event.to_state.in_(("approved", "rejected")))).all()
    assert states == {1: "approved", 2: "rejected"}
    assert [(r.resolved_by, r.resolution, r.note) for r in requests] == [
        ("Grace", "approved", "too close to the edge"),
        ("Grace", "rejected", "too close to the edge"),
    ]
    assert sorted((e.detail["seq"], e.detail["by"]) for e in moves) == [(1, "Grace"), (2, "Grace")]


# --- end to end, against a real Prefect server ------------------------------------------------------------------


def _next_pause(seen: set[str], runner: subprocess.Popen[str], out: Path) -> tuple[UUID, dict[str, str]]:
    """The flow run paused with a form not seen before (its description, written last, there): its id and keys."""
    deadline = time.monotonic() + RUN_DEADLINE_S
    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    while time.monotonic() < deadline:
        if runner.poll() is not None:
            pytest.fail(f"the runner ended ({runner.returncode}) before pausing:\n{out.read_text()[-3000:]}")
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=paused)
        for run in runs:
            keyset = run.state.state_details.run_input_keyset if run.state else None
            if keyset and keyset["response"] not in seen and read_flow_run_input(keyset["description"], run.id):
                seen.add(keyset["response"])
                return run.id, dict(keyset)
        time.sleep(0.5)
    pytest.fail(f"no new pause within {RUN_DEADLINE_S:.0f} s:\n{out.read_text()[-3000:]}")


def _description(run_id: UUID, keyset: dict[str, str]) -> str:
    return str(read_flow_run_input(keyset["description"], run_id))


def _requests(db: Database) -> list[PersonRequest]:
    with db.session() as session:
        return list(session.scalars(select(PersonRequest).order_by(PersonRequest.id)).all())


@pytest.mark.slow
def test_a_batch_is_approved_in_prefect_and_the_next_from_the_cli_while_paused(
    prefect_env: dict[str, str],  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    with temporary_settings(updates={PREFECT_API_URL: prefect_env["PREFECT_API_URL"]}):
        _approve_in_prefect_and_from_the_cli(prefect_env, tmp_path)


def _approve_in_prefect_and_from_the_cli(env: dict[str, str], tmp_path: Path) -> None:
    data = hartmann_spec(budget={"experiments": 4, "batch_size": 2}, approval={"policy": "batch", "timeout": "5m"})
    spec = write_spec(tmp_path / "c.yaml", data)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    out = tmp_path / "runner.out"
    with out.open("w") as sink:
        runner = subprocess.Popen(
            [PEIRCE, "run", str(spec), "--db", url, "--engine", "prefect"],
            cwd=tmp_path,
            env={key: value for key, value in env.items() if key != "PEIRCE_DB_URL"},
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    seen: set[str] = set()
    try:
        run_id, keyset = _next_pause(seen, runner, out)
        first = _description(run_id, keyset)
        assert "**h6**: 2 experiments wait for approval." in first
        assert "| # | x1 | x2 | x3 | x4 | x5 | x6 | why it waits |" in first
        assert "approval: batch (every batch waits for a person)" in first
        db = open_database(url)
        assert [r.detail["prefect_flow_run_id"] for r in _requests(db)] == [str(run_id)] * 2

        # Refused through the form: nothing written, and the flow pauses again, saying why.
        for answer, why in [
            ({"by": "  ", "approve": "all"}, "by: name the person acting"),
            ({"by": "Grace", "approve": "9"}, "approve: #9 does not wait for approval (waiting: #1, #2)"),
        ]:
            resume_flow_run(run_id, run_input=answer)
            run_id, keyset = _next_pause(seen, runner, out)
            assert _description(run_id, keyset).startswith(
                f"**Your last answer was refused, and nothing was written:** {why}"
            )
            assert [r.resolved_at for r in _requests(db)] == [None, None]

        resume_flow_run(run_id, run_input={"by": "Grace", "approve": "all", "note": "looks safe"})

        # The next batch pauses the flow again; a person answers it from a terminal instead.
        run_id, keyset = _next_pause(seen, runner, out)
        assert "| 3 |" in _description(run_id, keyset)
        approved = invoke("approve", "h6", "--all", "--by", "Ada", "--db", url, cwd=tmp_path)
        assert approved.returncode == 0, approved.stderr

        assert runner.wait(timeout=RUN_DEADLINE_S) == 0, out.read_text()[-3000:]
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=30)
    printed = out.read_text()
    assert "h6 finished: budget of 4 experiments spent" in printed, printed[-3000:]
    with db.session() as session:
        assert session.scalars(select(Campaign.status)).one() == "completed"
        moves = session.scalars(select(Event).where(Event.to_state == "approved").order_by(Event.id)).all()
    assert [(e.detail["seq"], e.detail["by"], e.detail.get("note")) for e in moves] == [
        (1, "Grace", "looks safe"),
        (2, "Grace", "looks safe"),
        (3, "Ada", None),
        (4, "Ada", None),
    ]
    assert [(r.resolved_by, r.resolution) for r in _requests(db)] == [("Grace", "approved")] * 2 + [
        ("Ada", "approved")
    ] * 2
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    assert state is not None and state.type == StateType.COMPLETED


@pytest.mark.slow
def test_at_the_approval_timeout_the_flow_run_ends_and_the_campaign_waits_for_resume(
    prefect_env: dict[str, str],  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    """The runner resumes its own paused flow run at the campaign's timeout: the run completes (it is not failed by
    Prefect's pause timeout), the campaign is left waiting, and `peirce resume` continues once people answered."""
    env = {key: value for key, value in prefect_env.items() if key != "PEIRCE_DB_URL"}
    data = hartmann_spec(budget={"experiments": 4, "batch_size": 2}, approval={"policy": "batch", "timeout": "4s"})
    spec = write_spec(tmp_path / "c.yaml", data)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    run = [PEIRCE, "run", str(spec), "--db", url, "--engine", "prefect"]
    ran = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_DEADLINE_S)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    lines = ran.stdout.splitlines()
    assert lines[:2] == [
        "h6 is waiting for people: 2 experiments wait for approval (#1, #2; `peirce pending h6`)",
        "continue with: peirce resume h6",
    ]
    db = open_database(url)
    [request, _] = _requests(db)
    api = {PREFECT_API_URL: prefect_env["PREFECT_API_URL"]}
    with temporary_settings(updates=api), get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(request.detail["prefect_flow_run_id"])).state
    assert state is not None and state.type == StateType.COMPLETED
    with db.session() as session:
        assert session.scalars(select(Campaign.status)).one() == "waiting"

    assert invoke("approve", "h6", "--all", "--by", "Ada", "--db", url, cwd=tmp_path).returncode == 0
    resumed = subprocess.run(
        [PEIRCE, "resume", "h6", "--db", url, "--engine", "prefect"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE_S,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "h6 is waiting for people: 2 experiments wait for approval (#3, #4; `peirce pending h6`)" in resumed.stdout
    with db.session() as session:
        states = dict(session.execute(select(Experiment.seq, Experiment.state)).all())
    assert states == {1: "completed", 2: "completed", 3: "planned", 4: "planned"}
