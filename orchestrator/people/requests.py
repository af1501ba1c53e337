"""Requests waiting for a person: opened with the work they stand for, answered once by a named person.

An answer is a conditional update (`WHERE resolved_at IS NULL`) whose row count decides: two people answering the
same request at once cannot both win, on SQLite or PostgreSQL alike; the one who lost is told who answered first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.errors import PeirceError, SpecError
from orchestrator.store.models import Experiment, PersonRequest, utcnow


class AlreadyAnswered(PeirceError):
    """Another person answered the request first (or it was answered before): nothing was written."""

    exit_code = 2


def check_person(by: str | None, field: str = "--by") -> str:
    """The name of the person acting, stripped; an empty or missing name is refused (acts must name someone)."""
    name = (by or "").strip()
    if not name:
        raise SpecError(field, "name the person acting (it is recorded with the act)")
    if len(name) > 128:
        raise SpecError(field, "at most 128 characters")
    return name


def open_request(
    session: Session, experiment: Experiment, kind: str, detail: dict[str, Any] | None = None
) -> PersonRequest:
    """A request about `experiment`, in the caller's transaction (so it commits with the state it waits in)."""
    request = PersonRequest(
        campaign_id=experiment.campaign_id, experiment_id=experiment.id, kind=kind, detail=dict(detail or {})
    )
    session.add(request)
    session.flush()
    return request


def open_requests(
    session: Session, campaign_id: int, kinds: Sequence[str] | None = None, experiment_id: int | None = None
) -> list[PersonRequest]:
    """Requests of the campaign not yet answered, oldest first (of some kinds, or about one experiment)."""
    query = select(PersonRequest).where(PersonRequest.campaign_id == campaign_id, PersonRequest.resolved_at.is_(None))
    if kinds is not None:
        query = query.where(PersonRequest.kind.in_(tuple(kinds)))
    if experiment_id is not None:
        query = query.where(PersonRequest.experiment_id == experiment_id)
    return list(session.scalars(query.order_by(PersonRequest.id)).all())


def answer(
    session: Session,
    request: PersonRequest,
    *,
    by: str,
    resolution: str,
    note: str | None = None,
    at: datetime | None = None,
) -> None:
    """Mark `request` answered by `by`, in the caller's transaction; raises AlreadyAnswered if someone was first.

    The caller writes what the answer does (the experiment's move, its events) in the same transaction, so a lost
    race rolls all of it back."""
    done = session.execute(
        update(PersonRequest)
        .where(PersonRequest.id == request.id, PersonRequest.resolved_at.is_(None))
        .values(resolved_at=at or utcnow(), resolved_by=by, resolution=resolution, note=note)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(request)
        raise AlreadyAnswered(
            f"{request.kind} request for experiment {_seq(session, request)} was already answered "
            f"({request.resolution}) by {request.resolved_by}"
        )
    session.refresh(request)


def _seq(session: Session, request: PersonRequest) -> str:
    if request.experiment_id is None:
        return "?"
    experiment = session.get(Experiment, request.experiment_id)
    return f"#{experiment.seq}" if experiment is not None else "?"
