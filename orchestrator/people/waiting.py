"""What a campaign (or one cycle of it) waits for people to do, and how long its runner waits before it pauses.

Read from the open requests alone, so the same words come out of `peirce status`, the loop's pause and a
notification.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.campaign.spec import CampaignSpec, ManualLab
from orchestrator.store.models import Experiment, PersonRequest, RequestKind

_WHAT = {
    RequestKind.APPROVAL: ("wait for approval", "peirce pending {name}"),
    RequestKind.RESULT: ("wait for results entered by hand", "peirce next {name}"),
    RequestKind.STEP: ("wait for a manual step", "peirce pending {name}"),
}


@dataclass(frozen=True)
class Waiting:
    """Experiments (by seq) with a request open, by the kind of request."""

    by_kind: dict[str, list[int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.by_kind.values())

    @property
    def approvals(self) -> list[int]:
        return self.by_kind.get(RequestKind.APPROVAL, [])

    @property
    def results(self) -> list[int]:
        return self.by_kind.get(RequestKind.RESULT, [])

    def describe(self, campaign: str) -> str:
        """One line: what waits, which experiments, and the command that shows it."""
        parts = []
        for kind, seqs in self.by_kind.items():
            if not seqs:
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
        select(PersonRequest.kind, Experiment.seq)
        .join(Experiment, Experiment.id == PersonRequest.experiment_id)
        .where(PersonRequest.campaign_id == campaign_id, PersonRequest.resolved_at.is_(None))
        .order_by(Experiment.seq)
    )
    if cycle_id is not None:
        query = query.where(Experiment.cycle_id == cycle_id)
    by_kind: dict[str, list[int]] = {}
    for kind, seq in session.execute(query).all():
        by_kind.setdefault(kind, []).append(seq)
    return Waiting(by_kind)


def wait_limit_s(spec: CampaignSpec, what: Waiting) -> float:
    """How long a runner waits in its process for people before it pauses the campaign: the approval policy's
    timeout while approvals wait, a manual lab's `wait` while results entered by hand do (the longer of the two
    when both wait). Zero (the default) pauses at once: waiting for a person holds no process."""
    limit = 0.0
    if what.approvals:
        limit = max(limit, spec.approval.timeout)
    if what.results and isinstance(spec.lab, ManualLab):
        limit = max(limit, spec.lab.manual.wait)
    return limit
