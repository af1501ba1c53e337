"""What waits for people, item by item: each open request with its experiment's parameters and predictions, why a
person is asked (the rules that caught a proposal, the instructions of handed-out work) and since when.

Read-only: `peirce pending`, the Python API and a notification read the same items.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from orchestrator.store.database import Database
from orchestrator.store.models import Campaign, Experiment, PersonRequest
from orchestrator.store.records import find_campaign


@dataclass(frozen=True)
class PendingItem:
    """One request waiting for a person. `kind`: approval | result | step (`store.models.RequestKind`)."""

    campaign: str
    campaign_status: str
    kind: str
    seq: int | None
    state: str | None  # the experiment's state
    parameters: dict[str, Any]
    original_parameters: dict[str, Any] | None
    predicted: dict[str, Any] | None
    reasons: list[str]
    detail: dict[str, Any]
    since: datetime

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"] = self.since.isoformat()
        return out


def pending_items(db: Database, campaign_ref: str | int | None = None) -> list[PendingItem]:
    """The open requests of one campaign (or of every campaign in the database), by campaign then seq."""
    with db.session() as session:
        query = (
            select(PersonRequest, Campaign, Experiment)
            .join(Campaign, Campaign.id == PersonRequest.campaign_id)
            .outerjoin(Experiment, Experiment.id == PersonRequest.experiment_id)
            .where(PersonRequest.resolved_at.is_(None))
            .order_by(Campaign.id, Experiment.seq, PersonRequest.id)
        )
        if campaign_ref is not None:
            query = query.where(Campaign.id == find_campaign(session, campaign_ref).id)
        items = []
        for request, campaign, experiment in session.execute(query).all():
            detail = dict(request.detail or {})
            items.append(
                PendingItem(
                    campaign=campaign.name,
                    campaign_status=campaign.status,
                    kind=request.kind,
                    seq=experiment.seq if experiment is not None else detail.get("seq"),
                    state=experiment.state if experiment is not None else None,
                    parameters=dict(experiment.parameters) if experiment is not None else {},
                    original_parameters=experiment.original_parameters if experiment is not None else None,
                    predicted=experiment.predicted if experiment is not None else None,
                    reasons=[str(r) for r in detail.pop("reasons", [])],
                    detail=detail,
                    since=request.created_at,
                )
            )
        return items
