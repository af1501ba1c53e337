"""Waiting for people inside a cycle: until they answer, up to the campaign's limit, then the campaign pauses.

A cycle whose experiments wait for a person (an approval, results entered by hand) cannot be induced until they are
answered. The runner waits in its process for as long as the policy allows (`people.waiting.wait_limit_s`; zero by
default), running each experiment as soon as it is approved and releasing results a lab scheduled for a time now
past (an experiment that takes weeks of lab time); at the limit it pauses the campaign (status
`waiting`, the reason stated, its lease freed) and ends. Nothing is lost: `peirce resume` continues the same cycle
once the people have answered. Waiting never approves anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select

from orchestrator.cycle.context import CampaignContext, fence
from orchestrator.people.notify import notify_waiting
from orchestrator.people.scheduled import release_due
from orchestrator.people.waiting import Waiting, wait_limit_s, waiting
from orchestrator.store.models import Campaign, CampaignStatus, Experiment, ExperimentState

POLL_S = 0.25  # how often a waiting runner reads the database for answers
WAITING_FOR_PEOPLE = "waiting for people"  # how the reason of a pause begins


class PausedForPeople(Exception):
    """The runner waited as long as the campaign allows; the campaign pauses with `reason` (what waits)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# How a runner spends the time until it looks again: `wait(left_s, changed)` returns when `left_s` seconds have
# passed, or sooner: when `changed()` says the people's side moved (an answer, a stop, a lost lease; it looks at the
# database), or when it has something to look at itself (Prefect's form: `cycle.prefect_input`).
Wait = Callable[[float, Callable[[], bool]], None]


def await_people(
    ctx: CampaignContext, cycle_id: int, poll_s: float = POLL_S, wait: Wait | None = None
) -> list[int] | None:
    """Wait until the people answer the requests of cycle `cycle_id`.

    Returns the experiments of the cycle approved and ready to run (as soon as there are any), or [] when nothing
    waits any more; None when the campaign was asked to stop while people were awaited. Raises PausedForPeople
    when the limit passes first. Fenced at every look: a runner that lost its lease stops waiting. The campaign's
    webhooks are told about requests they have not heard of (`people.notify`) whenever what waits changes.
    `wait` is how the time between looks is spent (default: sleep `poll_s` at a time)."""
    deadline: float | None = None
    told: Waiting | None = None
    while True:
        ready, what, stopping, limit = _look(ctx, cycle_id)
        if ready or not what:
            return ready
        if stopping:
            return None
        if what != told:
            notify_waiting(ctx.db, ctx.campaign_id, ctx.spec)
            told = what
        now = time.monotonic()
        if deadline is None:
            deadline = now + limit
        if now >= deadline:
            raise PausedForPeople(f"{WAITING_FOR_PEOPLE}: {what.describe(ctx.name)}")

        def changed(seen: Waiting = what) -> bool:
            ready, what, stopping, _ = _look(ctx, cycle_id)
            return bool(ready) or what != seen or stopping

        if wait is None:
            time.sleep(min(poll_s, deadline - now))
        else:
            wait(deadline - now, changed)


def _look(ctx: CampaignContext, cycle_id: int) -> tuple[list[int], Waiting, bool, float]:
    """(approved experiments of the cycle ready to run, what waits, whether a stop was asked, the wait's limit).
    Results a lab scheduled for a time now past are released first (`people.scheduled`)."""
    with ctx.db.session() as session:
        fence(session, ctx)
        release_due(session, ctx.campaign_id, ctx.spec)
        what = waiting(session, ctx.campaign_id, cycle_id)
        ready = list(
            session.scalars(
                select(Experiment.id)
                .where(Experiment.cycle_id == cycle_id, Experiment.state == ExperimentState.APPROVED)
                .order_by(Experiment.seq)
            ).all()
        )
        stopping = session.get_one(Campaign, ctx.campaign_id).status == CampaignStatus.STOPPING
        return ready, what, stopping, wait_limit_s(ctx.spec, what)
