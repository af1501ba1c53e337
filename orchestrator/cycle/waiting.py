"""Waiting for people inside a cycle: until they answer, up to the campaign's limit, then the campaign pauses.

A cycle whose experiments wait for a person (an approval, results entered by hand) cannot be induced until they are
answered. The runner waits in its process for as long as the policy allows (`people.waiting.wait_limit_s`; zero by
default), running each experiment as soon as it is approved; at the limit it pauses the campaign (status
`waiting`, the reason stated, its lease freed) and ends. Nothing is lost: `peirce resume` continues the same cycle
once the people have answered. Waiting never approves anything.
"""

from __future__ import annotations

import time

from sqlalchemy import select

from orchestrator.cycle.context import CampaignContext, fence
from orchestrator.people.waiting import wait_limit_s, waiting
from orchestrator.store.models import Campaign, CampaignStatus, Experiment, ExperimentState

POLL_S = 0.25  # how often a waiting runner reads the database for answers
WAITING_FOR_PEOPLE = "waiting for people"  # how the reason of a pause begins


class PausedForPeople(Exception):
    """The runner waited as long as the campaign allows; the campaign pauses with `reason` (what waits)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def await_people(ctx: CampaignContext, cycle_id: int, poll_s: float = POLL_S) -> list[int] | None:
    """Wait until the people answer the requests of cycle `cycle_id`.

    Returns the experiments of the cycle approved and ready to run (as soon as there are any), or [] when nothing
    waits any more; None when the campaign was asked to stop while people were awaited. Raises PausedForPeople
    when the limit passes first. Fenced at every look: a runner that lost its lease stops waiting."""
    deadline: float | None = None
    while True:
        with ctx.db.session() as session:
            fence(session, ctx)
            what = waiting(session, ctx.campaign_id, cycle_id)
            ready = list(
                session.scalars(
                    select(Experiment.id)
                    .where(Experiment.cycle_id == cycle_id, Experiment.state == ExperimentState.APPROVED)
                    .order_by(Experiment.seq)
                ).all()
            )
            if ready or not what:
                return ready
            if session.get_one(Campaign, ctx.campaign_id).status == CampaignStatus.STOPPING:
                return None
            limit = wait_limit_s(ctx.spec, what)
        now = time.monotonic()
        if deadline is None:
            deadline = now + limit
        if now >= deadline:
            raise PausedForPeople(f"{WAITING_FOR_PEOPLE}: {what.describe(ctx.name)}")
        time.sleep(min(poll_s, deadline - now))
