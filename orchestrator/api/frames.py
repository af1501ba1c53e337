"""The tables the Python API answers with: the experiments handed out and waiting for results (`ask`), and the
best result per objective (`best`). Read-only."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.campaign.spec import CampaignSpec
from orchestrator.people.requests import open_requests
from orchestrator.store.models import Cycle, Decision, Experiment, RequestKind
from orchestrator.store.queries import best_so_far, declared_order


def asked_columns(spec: CampaignSpec, with_instructions: bool = False) -> list[str]:
    """`seq`, the cycle, the parameters, the predicted mean and std of each objective, the rationale, and the
    hypothesis the experiment was chosen to test (if any); a manual lab's instructions last."""
    columns = ["seq", "cycle", *(p.name for p in spec.space)]
    columns += [f"{o.name}_predicted_{m}" for o in spec.objectives for m in ("mean", "std")]
    columns += ["rationale", "tests_hypothesis"]
    return [*columns, "instructions"] if with_instructions else columns


def handed_out(session: Session, campaign_id: int, spec: CampaignSpec) -> pd.DataFrame:
    """One row per experiment waiting for its results (a results request open), in campaign order."""
    requests = {r.experiment_id: r for r in open_requests(session, campaign_id, [RequestKind.RESULT])}
    experiments = (
        session.scalars(select(Experiment).where(Experiment.id.in_(list(requests))).order_by(Experiment.seq)).all()
        if requests
        else []
    )
    rows = []
    for experiment in experiments:
        proposal = _proposal(session, experiment)
        predicted = experiment.predicted or {}
        row: dict[str, Any] = {"seq": experiment.seq, "cycle": session.get_one(Cycle, experiment.cycle_id).index}
        row.update({p.name: experiment.parameters.get(p.name) for p in spec.space})
        for objective in spec.objectives:
            guess = predicted.get(objective.name) or {}
            row[f"{objective.name}_predicted_mean"] = guess.get("mean")
            row[f"{objective.name}_predicted_std"] = guess.get("std")
        row["rationale"] = proposal.get("rationale") or ""
        row["tests_hypothesis"] = proposal.get("tests_hypothesis")
        instructions = (requests[experiment.id].detail or {}).get("instructions")
        if instructions:
            row["instructions"] = instructions
        rows.append(row)
    with_instructions = any("instructions" in row for row in rows)
    frame = pd.DataFrame(rows, columns=asked_columns(spec, with_instructions))
    predictions = {f"{o.name}_predicted_{m}": "float64" for o in spec.objectives for m in ("mean", "std")}
    return frame.astype({**predictions, "tests_hypothesis": "Int64"})  # no prediction yet: NaN, no test: <NA>


def _proposal(session: Session, experiment: Experiment) -> dict[str, Any]:
    """The decision's record of the proposal this experiment was planned from (its rationale, the test it is)."""
    if experiment.decision_id is None:
        return {}
    decision = session.get_one(Decision, experiment.decision_id)
    first = session.scalar(select(func.min(Experiment.seq)).where(Experiment.decision_id == decision.id))
    offset = experiment.seq - (first or experiment.seq)
    proposals = decision.proposals or []
    return dict(proposals[offset]) if 0 <= offset < len(proposals) else {}


def best(session: Session, campaign_id: int, spec: CampaignSpec) -> pd.DataFrame:
    """The best result so far per objective (in its direction): objective, value, unit, seq, then the parameters
    of that experiment. Every completed result counts, told in a cycle still open included."""
    found = best_so_far(session, campaign_id, spec.objectives)
    parameters = [p.name for p in spec.space]
    units = {o.name: o.unit for o in spec.objectives}
    rows = []
    for name, entry in found.items():
        experiment = session.scalar(
            select(Experiment).where(Experiment.campaign_id == campaign_id, Experiment.seq == entry["seq"])
        )
        point = declared_order(experiment.parameters, parameters) if experiment is not None else {}
        rows.append({"objective": name, "value": entry["value"], "unit": units[name], "seq": entry["seq"], **point})
    return pd.DataFrame(rows, columns=["objective", "value", "unit", "seq", *parameters])
