"""Which planned experiments wait for a person before they run, by the campaign's approval policy.

`none`: every planned experiment is approved by the policy at once (and the approval is logged as the policy's).
`batch`: every planned experiment waits for a person.
`rules` (`campaign.approval`): an experiment waits when a rule catches it; one that no rule catches is approved by
`policy:rules`. What each rule looks at:
- `parameter`: the proposed value of the parameter it names;
- `tests_hypothesis`: the hypothesis the proposal was chosen to test (the decision's proposal record names it) and
  that hypothesis's source in the ledger;
- `first_use`: whether an experiment of the campaign that was ever approved (approved, dispatched, running,
  completed, failed, infeasible, or abandoned after it was sent) used the same value;
- `predicted`: the planner's prediction for the proposal. A proposal without a prediction of that objective (the
  Bayesian planner's space-filling batches, before it has a model) is caught: a rule on what the model expects
  cannot vouch for a proposal the model has not seen, so a person looks at it.

The reasons a proposal waits, in words and with the values that made each rule catch it, are recorded with its
request, so `peirce pending` and the events say why a person was asked.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from orchestrator.campaign.approval import ApprovalRule
from orchestrator.campaign.spec import ApprovalPolicy
from orchestrator.people.requests import open_request
from orchestrator.store.models import Decision, Experiment, ExperimentState, Hypothesis, RequestKind
from orchestrator.store.records import move_experiment

BATCH_REASON = "approval: batch (every batch waits for a person)"

# An experiment in one of these states was approved at some time (an abandoned one only if it was sent: see
# `_used_values`).
_APPROVED_ONCE = (
    ExperimentState.APPROVED,
    ExperimentState.DISPATCHED,
    ExperimentState.RUNNING,
    ExperimentState.COMPLETED,
    ExperimentState.FAILED,
    ExperimentState.INFEASIBLE,
)


def approval_reasons(session: Session, policy: ApprovalPolicy, experiment: Experiment) -> list[str]:
    """Why `experiment` must wait for a person under `policy`, one line per rule that caught it (empty: it goes
    ahead)."""
    if policy.policy == "batch":
        return [BATCH_REASON]
    if policy.policy != "rules":
        return []
    reasons = []
    for index, rule in enumerate(policy.rules):
        caught = _caught(session, rule, experiment)
        if caught is not None:
            reasons.append(f"approval.rules[{index}]: {caught}")
    return reasons


def apply_policy(session: Session, policy: ApprovalPolicy, experiments: list[Experiment]) -> list[Experiment]:
    """In the caller's transaction (the one that plans them): approve by policy the experiments no rule holds back,
    open an approval request for each of the others. Returns the experiments approved, ready to run."""
    approved: list[Experiment] = []
    for experiment in experiments:
        reasons = approval_reasons(session, policy, experiment)
        if reasons:
            detail = {"seq": experiment.seq, "policy": policy.policy, "reasons": reasons}
            open_request(session, experiment, RequestKind.APPROVAL, detail)
            continue
        move_experiment(session, experiment, ExperimentState.APPROVED, detail={"by": f"policy:{policy.policy}"})
        approved.append(experiment)
    return approved


def _caught(session: Session, rule: ApprovalRule, experiment: Experiment) -> str | None:
    """The rule in words with what made it catch `experiment`, or None when it lets it through."""
    if rule.parameter is not None:
        condition = rule.condition
        value = experiment.parameters.get(condition.name)
        if not condition.holds(value):
            return None
        return f"{rule.words()} (proposed {condition.name} = {_shown(value)})"
    if rule.tests_hypothesis is not None:
        hypothesis = _tested_hypothesis(session, experiment)
        if hypothesis is None or rule.tests_hypothesis not in ("any", hypothesis.source):
            return None
        return f"tests hypothesis #{hypothesis.id} from {hypothesis.source}: {hypothesis.statement}"
    if rule.first_use is not None:
        value = experiment.parameters.get(rule.first_use)
        if value in _used_values(session, experiment, rule.first_use):
            return None
        return f"first use of {rule.first_use} = {value} in this campaign"
    condition = rule.condition
    prediction = (experiment.predicted or {}).get(condition.name)
    if not isinstance(prediction, dict) or prediction.get(condition.field) is None:
        return f"{rule.words()}: no prediction of {condition.name} for it (no model yet), so a person checks it"
    if not condition.holds(prediction[condition.field]):
        return None
    shown = f"{prediction['mean']:.4g} ± {prediction.get('std', 0.0):.2g}" if "mean" in prediction else "?"
    return f"{rule.words()} (predicted {condition.name} {shown})"


def _tested_hypothesis(session: Session, experiment: Experiment) -> Hypothesis | None:
    """The hypothesis `experiment` was chosen to test, as its decision's proposal record names it."""
    if experiment.decision_id is None:
        return None
    proposals = session.scalar(select(Decision.proposals).where(Decision.id == experiment.decision_id)) or []
    first_seq = session.scalar(select(func.min(Experiment.seq)).where(Experiment.decision_id == experiment.decision_id))
    index = experiment.seq - (first_seq if first_seq is not None else experiment.seq)
    if not 0 <= index < len(proposals) or not isinstance(proposals[index], dict):
        return None
    tested = proposals[index].get("tests_hypothesis")
    return session.get(Hypothesis, tested) if isinstance(tested, int) else None


def _used_values(session: Session, experiment: Experiment, name: str) -> set[Any]:
    """The values of parameter `name` in the other experiments of the campaign that were ever approved."""
    rows = session.scalars(
        select(Experiment.parameters).where(
            Experiment.campaign_id == experiment.campaign_id,
            Experiment.id != experiment.id,
            or_(
                Experiment.state.in_(_APPROVED_ONCE),
                (Experiment.state == ExperimentState.ABANDONED) & (Experiment.attempts > 0),
            ),
        )
    ).all()
    return {parameters.get(name) for parameters in rows}


def _shown(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
