"""Results released on a schedule: an experiment of a lab whose work takes days (`lab.duration`) waits, running, with
a results request that holds what the lab will report and when (`ready_at`); once that time has passed, the runner
releases the results as if the lab had entered them, under the lab's name.

Released through the same conditional answer as a person's entry, so a person who entered real results first wins
and the scheduled ones are dropped. Whoever looks (the waiting runner, `peirce resume`) releases what is due; nobody
has to stay running until then.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.campaign.spec import CampaignSpec
from orchestrator.people.requests import AlreadyAnswered, answer, open_requests
from orchestrator.people.results import ENTERED, write_measurements
from orchestrator.store.models import Experiment, ExperimentState, PersonRequest, RequestKind, utcnow
from orchestrator.store.records import move_experiment

SOURCE = "lab-schedule"  # the `source` of a released result's `completed` event


def is_scheduled(request: PersonRequest) -> bool:
    """Whether `request` is a results request the lab will answer itself at its `ready_at`."""
    detail = request.detail or {}
    return request.kind == RequestKind.RESULT and "ready_at" in detail and "values" in detail


def ready_at(request: PersonRequest) -> datetime:
    """When the results of a scheduled request are due (UTC)."""
    at = datetime.fromisoformat(str(request.detail["ready_at"]))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def release_due(session: Session, campaign_id: int, spec: CampaignSpec, now: datetime | None = None) -> list[int]:
    """Release the results of every scheduled request of the campaign that is due at `now`, in the caller's
    transaction; returns the seqs released."""
    now = now or utcnow()
    released: list[int] = []
    for request in open_requests(session, campaign_id, [RequestKind.RESULT]):
        if not is_scheduled(request) or ready_at(request) > now:
            continue
        experiment = session.get_one(Experiment, request.experiment_id)
        if experiment.state != ExperimentState.RUNNING:
            continue  # nothing to release into; whoever moved it answered for it
        detail: dict[str, Any] = request.detail
        values = {str(name): float(value) for name, value in detail["values"].items()}
        by = str(detail.get("by") or "lab")
        try:
            answer(session, request, by=by, resolution=ENTERED, note=f"released at its time ({detail['ready_at']})")
        except AlreadyAnswered:
            continue  # a person answered it since the look above: theirs stands, nothing of the lab's is written
        write_measurements(session, experiment, values, spec)
        move_experiment(
            session, experiment, ExperimentState.COMPLETED, detail={"values": values, "by": by, "source": SOURCE}
        )
        released.append(experiment.seq)
    return released
