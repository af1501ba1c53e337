"""What a campaign (or one cycle of it) waits for people to do, and how long its runner waits before it pauses.

Read from the open requests alone, so the same words come out of `peirce status`, the loop's pause and a
notification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.campaign.spec import CampaignSpec, ManualLab, PythonLab
from orchestrator.people.scheduled import is_scheduled, ready_at
from orchestrator.store.models import Experiment, PersonRequest, RequestKind, utcnow

SCHEDULED = "scheduled"  # results the lab itself releases at their time (`people.scheduled`), not a person's work

_WHAT = {
    RequestKind.APPROVAL: ("wait for approval", "peirce pending {name}"),
    RequestKind.RESULT: ("wait for results entered by hand", "peirce next {name}"),
    RequestKind.STEP: ("wait for a manual step", "peirce pending {name}"),
}


@dataclass(frozen=True)
class Waiting:
    """Experiments (by seq) with a request open, by the kind of request."""

    by_kind: dict[str, list[int]] = field(default_factory=dict)
    # When the first and the last of the scheduled results are due (UTC), if any wait.
    due: tuple[datetime, datetime] | None = None

    def __bool__(self) -> bool:
        return any(self.by_kind.values())

    @property
    def approvals(self) -> list[int]:
        return self.by_kind.get(RequestKind.APPROVAL, [])

    @property
    def results(self) -> list[int]:
        return self.by_kind.get(RequestKind.RESULT, [])

    @property
    def scheduled(self) -> list[int]:
        return self.by_kind.get(SCHEDULED, [])

    def describe(self, campaign: str) -> str:
        """One line: what waits, which experiments, and the command that shows it."""
        parts = []
        for kind, seqs in self.by_kind.items():
            if not seqs:
                continue
            if kind == SCHEDULED and self.due is not None:
                noun = "experiment runs" if len(seqs) == 1 else "experiments run"
                shown = ", ".join(f"#{seq}" for seq in seqs[:8]) + (" …" if len(seqs) > 8 else "")
                parts.append(
                    f"{len(seqs)} {noun} in the lab until {self.due[1]:%Y-%m-%d %H:%M:%S} UTC ({shown}; "
                    f"`peirce resume {campaign}` after that takes their results)"
                )
                continue
            what, command = _WHAT.get(kind, (f"wait for {kind}", "peirce pending {name}"))
            shown = ", ".join(f"#{seq}" for seq in seqs[:8]) + (" …" if len(seqs) > 8 else "")
            noun = "experiment" if len(seqs) == 1 else "experiments"
            verb = what if len(seqs) > 1 else what.replace("wait ", "waits ", 1)
            parts.append(f"{len(seqs)} {noun} {verb} ({shown}; `{command.format(name=campaign)}`)")
        return "; ".join(parts) or "nothing waits for people"


def waiting(session: Session, campaign_id: int, cycle_id: int | None = None) -> Waiting:
    """The open requests of the campaign (of one cycle, when given), by kind, as experiment seqs."""
    query = (
        select(PersonRequest, Experiment.seq)
        .join(Experiment, Experiment.id == PersonRequest.experiment_id)
        .where(PersonRequest.campaign_id == campaign_id, PersonRequest.resolved_at.is_(None))
        .order_by(Experiment.seq)
    )
    if cycle_id is not None:
        query = query.where(Experiment.cycle_id == cycle_id)
    by_kind: dict[str, list[int]] = {}
    times: list[datetime] = []
    for request, seq in session.execute(query).all():
        kind = request.kind
        if is_scheduled(request):
            kind = SCHEDULED
            times.append(ready_at(request))
        by_kind.setdefault(kind, []).append(seq)
    return Waiting(by_kind, (min(times), max(times)) if times else None)


def wait_limit_s(spec: CampaignSpec, what: Waiting, now: datetime | None = None) -> float:
    """How long a runner waits in its process for people before it pauses the campaign: the approval policy's
    timeout while approvals wait, a manual lab's `wait` while results entered by hand do, a function lab's
    `duration.wait` while its scheduled results are not yet due (the longest of these when several wait). Zero
    (the default) pauses at once: waiting for a person, or for a culture that takes weeks, holds no process.

    Scheduled results are waited for only when the first of them is due within the lab's `wait`, and no longer
    than until the last is due: a runner never sits out a limit that nothing can end."""
    limit = 0.0
    if what.approvals:
        limit = max(limit, spec.approval.timeout)
    if what.results and isinstance(spec.lab, ManualLab):
        limit = max(limit, spec.lab.manual.wait)
    if what.due is not None and isinstance(spec.lab, PythonLab) and spec.lab.duration is not None:
        now = now or utcnow()
        first, last = ((at - now).total_seconds() for at in what.due)
        if first <= spec.lab.duration.wait:
            # A little past the last one's time, so the look that finds it due comes before the limit.
            limit = max(limit, min(spec.lab.duration.wait, max(0.0, last) + 1.0))
    return limit
