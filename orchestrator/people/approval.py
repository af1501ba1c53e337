"""Which planned experiments wait for a person before they run, by the campaign's approval policy.

`none`: every planned experiment is approved by the policy at once (and the approval is logged as the policy's).
`batch`: every planned experiment waits for a person. The reasons a proposal waits are recorded with its request,
so `peirce pending` can say what caught it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from orchestrator.campaign.spec import ApprovalPolicy
from orchestrator.people.requests import open_request
from orchestrator.store.models import Experiment, ExperimentState, RequestKind
from orchestrator.store.records import move_experiment


def approval_reasons(policy: ApprovalPolicy, experiment: Experiment) -> list[str]:
    """Why `experiment` must wait for a person under `policy` (empty: it goes ahead)."""
    if policy.policy == "batch":
        return ["approval: batch (every batch waits for a person)"]
    return []


def apply_policy(session: Session, policy: ApprovalPolicy, experiments: list[Experiment]) -> list[Experiment]:
    """In the caller's transaction (the one that plans them): approve by policy the experiments no rule holds back,
    open an approval request for each of the others. Returns the experiments approved, ready to run."""
    approved: list[Experiment] = []
    for experiment in experiments:
        reasons = approval_reasons(policy, experiment)
        if reasons:
            open_request(session, experiment, RequestKind.APPROVAL, _request_detail(experiment, reasons))
            continue
        move_experiment(session, experiment, ExperimentState.APPROVED, detail={"by": f"policy:{policy.policy}"})
        approved.append(experiment)
    return approved


def _request_detail(experiment: Experiment, reasons: list[str]) -> dict[str, Any]:
    return {"reasons": reasons, "seq": experiment.seq}
