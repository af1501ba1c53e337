"""Who holds the lab's shared instruments, and who waits, read from the database.

The cycle writes an event of the experiment when it starts to wait for an instrument (`hold-waiting`), takes it
(`hold-taken`), gives it back (`hold-released`) or gives up waiting (`hold-timeout`), each naming the instrument
and its lab-wide hold (`instrument:<lab>:<name>`). What holds now is the last of these per experiment attempt,
for experiments still under way (dispatched or running): a runner that died holding an instrument leaves its
experiment in doubt, and its hold (a Prefect lease) lapses on its own; once recovery settles the experiment the
stale row no longer shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.campaign.runs import lease_alive
from orchestrator.store.models import Campaign, Event, Experiment, ExperimentState

HOLD_EVENTS = ("hold-waiting", "hold-taken", "hold-released", "hold-timeout")


def slot_name(lab: str, instrument: str) -> str:
    """The lab-wide hold on one instrument (a Prefect global concurrency limit of one slot)."""
    return f"instrument:{lab}:{instrument}"  # Prefect refuses / % & > < in a limit's name


@dataclass(frozen=True)
class Hold:
    """One experiment holding or waiting for one instrument."""

    slot: str
    instrument: str
    campaign: str
    seq: int
    attempt: int
    state: str  # "held" | "waiting"
    since: datetime
    experiment_id: int = 0
    event_id: int = 0  # the event that says so: its order is the order of asking
    runner_alive: bool = True  # whether the process that runs its campaign may still be running

    @property
    def who(self) -> str:
        return f"campaign {self.campaign} (experiment {self.seq})"


def current_holds(session: Session, slot: str | None = None) -> list[Hold]:
    """What holds and what waits now, oldest first; only `slot`'s when given."""
    query = (
        select(Event, Campaign.name, Experiment.seq, Campaign.runner, Campaign.heartbeat_at)
        .join(Experiment, Experiment.id == Event.entity_id)
        .join(Campaign, Campaign.id == Event.campaign_id)
        .where(
            Event.entity == "experiment",
            Event.kind.in_(HOLD_EVENTS),
            Experiment.state.in_(sorted(ExperimentState.IN_DOUBT)),
        )
        .order_by(Event.id)
    )
    if slot is not None:
        # In the database: every waiter asks this ten times a second, and the lab's other slots are not its business.
        query = query.where(Event.detail["slot"].as_string() == slot)
    rows = session.execute(query).all()
    last: dict[tuple[int, int, str], tuple[Event, str, int, bool]] = {}
    alive: dict[str | None, bool] = {}
    for event, campaign, seq, runner, heartbeat in rows:
        detail = event.detail or {}
        key = (int(event.entity_id or 0), int(detail.get("attempt", 0)), str(detail.get("slot")))
        if runner not in alive:
            alive[runner] = lease_alive(runner, heartbeat)
        last[key] = (event, campaign, seq, alive[runner])  # the latest: waiting since, held since, or done with it
    holds = []
    for (experiment_id, attempt, slot_), (event, campaign, seq, runner_alive) in last.items():
        if event.kind not in ("hold-waiting", "hold-taken"):
            continue
        detail = event.detail or {}
        holds.append(
            Hold(
                slot=slot_,
                instrument=str(detail.get("instrument", "")),
                campaign=campaign,
                seq=seq,
                attempt=attempt,
                state="held" if event.kind == "hold-taken" else "waiting",
                since=event.at,
                experiment_id=experiment_id,
                event_id=int(event.id),
                runner_alive=runner_alive,
            )
        )
    return sorted(holds, key=lambda h: (h.slot, h.state != "held", h.event_id))


def turn_to_take(session: Session, slot: str, experiment_id: int, attempt: int) -> bool:
    """Whether the attempt may take `slot` now: no live runner's experiment holds it, and no live runner's experiment
    began waiting for it before this one did (first come, first served, across the lab's processes: the order of
    the `hold-waiting` events in the lab's database). Experiments of a runner that died are passed over: their
    hold, if any, lapses in Prefect on its own, and recovery settles them."""
    mine: Hold | None = None
    for hold in current_holds(session, slot):
        if hold.experiment_id == experiment_id and hold.attempt == attempt:
            mine = hold
            continue
        if not hold.runner_alive:
            continue
        if hold.state == "held":
            return False
        if mine is None:
            return False  # an earlier waiter (holds come oldest first)
    return mine is not None
