"""Approval rules: each kind parsed from the campaign file, bad rules refused at load with their field path, and each
kind evaluated against planned experiments (what it catches waits for a person, with the rule in words; what no rule
catches is approved by the policy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.campaign import runs
from orchestrator.campaign.approval import ApprovalRule, Condition, parse_condition
from orchestrator.campaign.spec import ApprovalPolicy, json_schema
from orchestrator.cycle.context import CampaignContext, load_context, open_campaign
from orchestrator.cycle.deduce import deduce
from orchestrator.cycle.recovery import start_cycle
from orchestrator.errors import SpecError
from orchestrator.people import acts
from orchestrator.people.approval import approval_reasons
from orchestrator.people.requests import open_requests
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Decision, Experiment, ExperimentState, Hypothesis, RequestKind
from planners.base import Observation, Plan, PlanningProblem, Prediction, Proposal
from planners.space import Point
from tests.campaigns import hartmann_spec, to_spec, write_spec
from tests.orchestrator.cli.helpers import invoke

# --- parsing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("temperature > 150", Condition("temperature", ">", 150.0)),
        ("temperature>=1e2", Condition("temperature", ">=", 100.0)),
        ("x1 != 0.5", Condition("x1", "!=", 0.5)),
        ("ligand == XPhos", Condition("ligand", "==", "XPhos")),
        ("ligand == 'Pd(OAc)2'", Condition("ligand", "==", "Pd(OAc)2")),
        ('ligand in [XPhos, "tBu XPhos"]', Condition("ligand", "in", ("XPhos", "tBu XPhos"))),
        ("solvent == '2'", Condition("solvent", "==", "2")),
    ],
)
def test_a_parameter_condition_is_parsed_without_eval(text: str, expected: Condition) -> None:
    assert parse_condition(text) == expected


def test_a_predicted_condition_reads_the_mean_or_the_standard_deviation() -> None:
    assert parse_condition("yield > 90", allow_field=True) == Condition("yield", ">", 90.0, "mean")
    assert parse_condition("yield.std > 10", allow_field=True) == Condition("yield", ">", 10.0, "std")
    assert parse_condition("yield.mean <= 5", allow_field=True) == Condition("yield", "<=", 5.0, "mean")


@pytest.mark.parametrize(
    ("condition", "value", "holds"),
    [
        (Condition("t", ">", 150.0), 150.0, False),
        (Condition("t", ">", 150.0), 150.5, True),
        (Condition("t", ">=", 150.0), 150.0, True),
        (Condition("t", "<", 150.0), 149.0, True),
        (Condition("t", "<=", 150.0), 151.0, False),
        (Condition("t", "==", 0.3), 0.1 + 0.2, True),  # floating point noise is not a difference
        (Condition("t", "!=", 0.3), 0.1 + 0.2, False),
        (Condition("t", ">", 1.0), None, False),
        (Condition("t", ">", 1.0), "2", False),
        (Condition("l", "==", "XPhos"), "XPhos", True),
        (Condition("l", "!=", "XPhos"), "XPhos", False),
        (Condition("l", "in", ("a", "b")), "b", True),
        (Condition("l", "in", ("a", "b")), "c", False),
        (Condition("s", "==", 2.0), "2", True),  # a level that looks like a number
    ],
)
def test_a_condition_holds_or_not(condition: Condition, value: Any, holds: bool) -> None:
    assert condition.holds(value) is holds


def _refusal(approval: Any, **overrides: Any) -> str:
    with pytest.raises(SpecError) as refused:
        to_spec(hartmann_spec(approval=approval, **overrides))
    return str(refused.value)


@pytest.mark.parametrize(
    ("approval", "message"),
    [
        (
            {"rules": [{"parameter": "x1 > 0.8"}, {"parameter": "tempx > 150"}]},
            "approval.rules[1].parameter: 'tempx' is not a parameter (parameters: x1, x2, x3, x4, x5, x6)",
        ),
        (
            {"rules": [{"parameter": "x1 >> 0.8"}]},
            "approval.rules[0].parameter: 'x1 >> 0.8' is not a condition such as 'temperature > 150' or "
            "'ligand in [a, b]'",
        ),
        ({"rules": [{"parameter": "x1 == high"}]}, "approval.rules[0].parameter: 'x1' is continuous: compare it"),
        ({"rules": [{"parameter": "x1.std > 1"}]}, "'.std' applies to predictions only"),
        ({"rules": [{"paramter": "x1 > 0.8"}]}, "approval.rules[0].paramter: unknown key"),
        ({"rules": [{"parameter": "x1 > 0.8", "first_use": "x2"}]}, "approval.rules[0]: a rule has exactly one key"),
        ({"rules": [{}]}, "approval.rules[0]: a rule has exactly one key"),
        ({"rules": [{"first_use": "x1"}]}, "approval.rules[0].first_use: 'x1' is continuous; a first use is of a"),
        ({"rules": [{"first_use": "colour"}]}, "approval.rules[0].first_use: 'colour' is not a parameter"),
        ({"rules": [{"predicted": "y > 3"}]}, "approval.rules[0].predicted: the random planner predicts nothing"),
        ({"rules": [{"tests_hypothesis": "oracle"}]}, "approval.rules[0].tests_hypothesis: Input should be 'llm'"),
        ({"rules": []}, "approval: policy `rules` needs at least one rule"),
        ({"policy": "batch", "rules": [{"parameter": "x1 > 0.8"}]}, "approval: rules are given but the policy is"),
        ({"rules": [{"parameter": "x1 > 0.8"}], "timeout": "soon"}, "approval.timeout: 'soon' is not a duration"),
    ],
)
def test_a_bad_rule_is_refused_at_load_with_its_field_path(approval: Any, message: str) -> None:
    assert message in _refusal(approval)


def test_a_predicted_rule_names_an_objective_of_the_campaign() -> None:
    refused = _refusal({"rules": [{"predicted": "yield > 3"}]}, planner={"kind": "bayesian"})
    assert refused == "approval.rules[0].predicted: 'yield' is not an objective (objectives: y)"


def test_rules_imply_their_policy_and_keep_their_timeout() -> None:
    spec, _ = to_spec(hartmann_spec(approval={"rules": [{"parameter": "x1 > 0.8"}], "timeout": "5m"}))
    assert spec.approval.policy == "rules"
    assert spec.approval.timeout == 300
    assert [rule.words() for rule in spec.approval.rules] == ["x1 > 0.8"]


# --- evaluation ------------------------------------------------------------------------------------------------


class ScriptedPlanner:
    """Proposes the points it is given, each with the prediction given beside it."""

    name = "scripted"

    def __init__(self, batches: Sequence[Sequence[tuple[Point, Mapping[str, Prediction]]]]) -> None:
        self.batches = [list(batch) for batch in batches]

    def config(self) -> dict[str, Any]:
        return {"kind": "scripted"}

    def propose(
        self,
        problem: PlanningProblem,
        observations: Sequence[Observation],
        pending: Sequence[Point],
        batch_size: int,
        seed: int,
        warm_start: Mapping[str, Any] | None = None,
    ) -> Plan:
        batch = self.batches.pop(0)
        return Plan([Proposal(parameters=dict(p), predicted=dict(pred)) for p, pred in batch])


def _screen(tmp_path: Path, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """A lookup campaign over a catalyst (categorical) and a temperature (discrete), yield maximised."""
    table = tmp_path / "screen.csv"
    rows = ["catalyst,temperature,yield"]
    rows += [f"{c},{t},{10 * i + t / 10}" for i, c in enumerate("ABC") for t in (60, 80, 100)]
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {
        "name": "screen",
        "space": [
            {"name": "catalyst", "type": "categorical", "levels": ["A", "B", "C"]},
            {"name": "temperature", "type": "discrete", "values": [60, 80, 100]},
        ],
        "objectives": [{"name": "yield", "direction": "maximize"}],
        "budget": {"experiments": 9, "batch_size": 3},
        "planner": {"kind": "bayesian", "seed": 0},
        "lab": {"simulator": "lookup", "table": str(table)},
        "approval": {"rules": rules},
    }


def _context(db: Database, data: dict[str, Any], planner: ScriptedPlanner) -> CampaignContext:
    spec, text = to_spec(data)
    campaign_id, _ = open_campaign(db, spec, text)
    lease = runs.claim(db, campaign_id)
    return load_context(db, campaign_id, planner=planner, runner=lease.runner)


def _waiting(db: Database, campaign_id: int) -> dict[int, list[str]]:
    """Experiment seq -> the reasons its approval request gives."""
    with db.session() as session:
        out = {}
        for request in open_requests(session, campaign_id, [RequestKind.APPROVAL]):
            out[session.get_one(Experiment, request.experiment_id).seq] = request.detail["reasons"]
        return out


def _states(db: Database, campaign_id: int) -> dict[int, str]:
    with db.session() as session:
        return dict(
            session.execute(select(Experiment.seq, Experiment.state).where(Experiment.campaign_id == campaign_id)).all()
        )


def _point(catalyst: str, temperature: float) -> Point:
    return {"catalyst": catalyst, "temperature": temperature}


def _predicted(mean: float, std: float) -> dict[str, Prediction]:
    return {"yield": Prediction(mean, std)}


def test_parameter_and_prediction_rules_catch_what_crosses_them_and_let_the_rest_through(
    sqlite_url: str, tmp_path: Path
) -> None:
    rules = [{"parameter": "temperature > 70"}, {"predicted": "yield > 20"}, {"predicted": "yield.std > 5"}]
    planner = ScriptedPlanner(
        [
            [
                (_point("A", 60), _predicted(12.0, 1.0)),  # routine: goes ahead
                (_point("A", 80), _predicted(12.0, 1.0)),  # too hot
                (_point("B", 60), _predicted(25.0, 1.0)),  # predicted high
                (_point("C", 60), _predicted(5.0, 8.0)),  # uncertain
                (_point("C", 100), {}),  # hot, and no prediction: two rules
            ]
        ]
    )
    db = open_database(sqlite_url)
    ctx = _context(db, _screen(tmp_path, rules), planner)
    ran = deduce(ctx, start_cycle(ctx), 5)
    assert _states(db, ctx.campaign_id) == {1: "approved", 2: "planned", 3: "planned", 4: "planned", 5: "planned"}
    assert len(ran) == 1
    assert _waiting(db, ctx.campaign_id) == {
        2: ["approval.rules[0]: temperature > 70 (proposed temperature = 80)"],
        3: ["approval.rules[1]: predicted yield > 20 (predicted yield 25 ± 1)"],
        4: ["approval.rules[2]: predicted yield.std > 5 (predicted yield 5 ± 8)"],
        5: [
            "approval.rules[0]: temperature > 70 (proposed temperature = 100)",
            "approval.rules[1]: predicted yield > 20: no prediction of yield for it (no model yet), so a person "
            "checks it",
            "approval.rules[2]: predicted yield.std > 5: no prediction of yield for it (no model yet), so a person "
            "checks it",
        ],
    }
    with db.session() as session:
        approved = session.scalar(
            select(Experiment).where(Experiment.campaign_id == ctx.campaign_id, Experiment.seq == 1)
        )
        assert approved is not None and approved.state == ExperimentState.APPROVED


def test_first_use_catches_a_level_no_approved_experiment_has_used(sqlite_url: str, tmp_path: Path) -> None:
    planner = ScriptedPlanner(
        [
            [(_point("A", 60), {}), (_point("A", 80), {})],
            [(_point("A", 100), {}), (_point("B", 60), {})],
        ]
    )
    db = open_database(sqlite_url)
    ctx = _context(db, _screen(tmp_path, [{"first_use": "catalyst"}]), planner)
    deduce(ctx, start_cycle(ctx), 2)
    # Nothing used A yet: both wait (the second is no less a first use while the first is only planned).
    first_use_of_a = ["approval.rules[0]: first use of catalyst = A in this campaign"]
    assert _waiting(db, ctx.campaign_id) == {1: first_use_of_a, 2: first_use_of_a}
    acts.approve(db, "screen", [1], by="Ada")
    acts.reject(db, "screen", 2, by="Ada", reason="one at a time")
    deduce(ctx, start_cycle(ctx), 2)
    # A has been approved once: a later A goes ahead; B is new.
    assert _states(db, ctx.campaign_id)[3] == "approved"
    assert _waiting(db, ctx.campaign_id) == {4: ["approval.rules[0]: first use of catalyst = B in this campaign"]}


def test_tests_hypothesis_reads_the_source_of_the_hypothesis_the_proposal_tests(
    sqlite_url: str, tmp_path: Path
) -> None:
    planner = ScriptedPlanner([[(_point("A", 60), {}), (_point("B", 60), {}), (_point("C", 60), {})]])
    db = open_database(sqlite_url)
    data = _screen(tmp_path, [{"parameter": "temperature > 90"}])
    ctx = _context(db, data, planner)
    deduce(ctx, start_cycle(ctx), 3)
    with db.session() as session:
        hypotheses = []
        for source in ("llm", "model"):
            row = Hypothesis(
                campaign_id=ctx.campaign_id,
                kind="contrast",
                statement=f"catalyst B beats A ({source})",
                claim={},
                source=source,
                status="open",
            )
            session.add(row)
            session.flush()
            hypotheses.append(row.id)
        decision = session.scalars(select(Decision).where(Decision.campaign_id == ctx.campaign_id)).one()
        proposals = [dict(p) for p in decision.proposals]
        proposals[0]["tests_hypothesis"], proposals[1]["tests_hypothesis"] = hypotheses
        decision.proposals = proposals

    def reasons(source: str) -> list[list[str]]:
        policy = ApprovalPolicy(policy="rules", rules=[ApprovalRule(tests_hypothesis=source)])  # type: ignore[arg-type]
        with db.session() as session:
            experiments = session.scalars(select(Experiment).order_by(Experiment.seq)).all()
            return [approval_reasons(session, policy, e) for e in experiments]

    llm, model = hypotheses
    assert reasons("llm") == [
        [f"approval.rules[0]: tests hypothesis #{llm} from llm: catalyst B beats A (llm)"],
        [],
        [],
    ]
    assert reasons("model") == [
        [],
        [f"approval.rules[0]: tests hypothesis #{model} from model: catalyst B beats A (model)"],
        [],
    ]
    assert reasons("person") == [[], [], []]
    assert [bool(r) for r in reasons("any")] == [True, True, False]  # the third tests nothing


# --- the file's tools ------------------------------------------------------------------------------------------

RULES = {
    "rules": [
        {"parameter": "x1 > 0.8"},
        {"tests_hypothesis": "llm"},
        {"predicted": "y.std > 0.5"},
    ],
    "timeout": "30m",
}


def test_validate_and_the_schema_accept_every_form_of_approval(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    forms: list[Any] = ["none", "batch", None, {"policy": "batch", "timeout": 600}, RULES]
    for form in forms:
        data = hartmann_spec(approval=form, planner={"kind": "bayesian"})
        assert [e.message for e in validator.iter_errors(data)] == [], form
        write_spec(tmp_path / "c.yaml", data)
        checked = invoke("validate", "c.yaml", cwd=tmp_path)
        assert checked.returncode == 0 and checked.stdout.startswith("ok h6"), checked.stderr
    # What the loader refuses for want of exactly one key, editors flag too.
    two_keys = hartmann_spec(approval={"rules": [{"parameter": "x1 > 0.8", "first_use": "x2"}]})
    assert list(validator.iter_errors(two_keys))
    assert "approval" in invoke("schema", cwd=tmp_path).stdout
