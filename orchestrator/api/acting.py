"""How the Python API acts on a campaign: under the campaign's runner lease, for the length of one act.

An act (`ask` planning and handing out a batch, `tell` inducing a finished cycle) claims the lease as `peirce run`
does (`campaign.runs.claim`: a campaign another live process runs is refused), fences every write on it, and gives
it back when the act ends: the campaign is left `waiting` for people (what waits is the reason, as when the loop
pauses), or completed when a stop criterion holds. Between acts no process holds the campaign, so `peirce resume`,
`peirce record` or another notebook may take it up.

When the notebook is the lab, each experiment handed out goes `dispatched` -> `running` with a request open for its
results, exactly as when a lab raises `HandedToPerson` (`cycle.experiment`); a manual lab's own adapter does the same
with its instructions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from instruments.station import Journal
from orchestrator.campaign import runs
from orchestrator.campaign.spec import CampaignSpec, LookupLab, ManualLab
from orchestrator.cycle.context import CampaignContext, load_context
from orchestrator.cycle.observations import PENDING_STATES
from orchestrator.cycle.recovery import pause_for_people
from orchestrator.cycle.waiting import WAITING_FOR_PEOPLE
from orchestrator.errors import CampaignConflict
from orchestrator.lab.build import build_lab
from orchestrator.lab.contract import HandedToPerson, Lab, LabResult
from orchestrator.people.notify import notify_waiting
from orchestrator.people.waiting import waiting
from orchestrator.store.database import Database
from orchestrator.store.models import Campaign, Cycle, Experiment

VIA = "python-api"  # the source results told through the API are recorded with, and what a request says


class CallerLab:
    """The notebook (or script) as the lab: each experiment is handed to the caller of `ask`, who runs it and
    `tell`s its results. The candidates are those of the campaign's own lab (a lookup table's points), if any."""

    max_concurrency = 16  # handing out is instant

    def __init__(self, outcomes: Mapping[str, str], candidates: list[dict[str, Any]] | None = None) -> None:
        self.outcomes = dict(outcomes)  # objective -> unit
        self.candidates = candidates

    def run(self, parameters: Mapping[str, Any], key: str, journal: Journal | None = None) -> LabResult:
        raise HandedToPerson({"via": VIA, "outcomes": dict(self.outcomes)})

    def close(self) -> None:
        return None


def lab_for(spec: CampaignSpec) -> Lab:
    """The lab an act hands experiments to: a manual lab's own (with its instructions), else the caller."""
    if isinstance(spec.lab, ManualLab):
        return build_lab(spec)
    candidates = build_lab(spec).candidates if isinstance(spec.lab, LookupLab) else None
    return CallerLab({o.name: o.unit for o in spec.objectives}, candidates)


def refuse_if_run(db: Database, campaign_id: int) -> None:
    """Refuse (CampaignConflict) a campaign that another live process runs (`peirce run` or `resume`, another
    notebook in the middle of an act). A plain read: nothing is written."""
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        runner, name, heartbeat = campaign.runner, campaign.name, campaign.heartbeat_at
    if runner and runner != runs.runner_identity() and runs.lease_alive(runner, heartbeat):
        raise CampaignConflict(
            f"campaign '{name}' is being run by {runner} (`peirce run` or `peirce resume`); the Python API acts on it "
            "once that runner has stopped or paused for people"
        )


@contextmanager
def acting(db: Database, campaign_id: int) -> Iterator[CampaignContext]:
    """The campaign's context for one act, under its runner lease (claimed here, heartbeat beating, every stage
    fenced on it). At the end the lease is given back: the campaign pauses for people with what waits as its reason,
    unless the act finished it. An act that raised leaves the campaign failed with the error (interrupted: stopped),
    as a runner's crash does; the next act continues from what the database says."""
    refuse_if_run(db, campaign_id)
    with db.session() as session:
        spec = CampaignSpec.model_validate(session.get_one(Campaign, campaign_id).spec)
    ctx = load_context(db, campaign_id, lab=lab_for(spec))
    lease = runs.claim(db, campaign_id)
    ctx = replace(ctx, runner=lease.runner)
    try:
        with lease:
            yield ctx
            _give_back(ctx)
    except runs.LeaseLost:
        raise  # the campaign is another runner's now: nothing of it is ours to change
    except KeyboardInterrupt:
        runs.release_after_signal(db, campaign_id, lease.runner, "stopped by an interrupt of the Python API")
        raise
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        runs.release_after_error(db, campaign_id, message, runner=lease.runner)
        raise
    finally:
        ctx.lab.close()


def _give_back(ctx: CampaignContext) -> None:
    """Free the lease: the campaign waits for people (what waits, or the next `ask`), unless the act finished it;
    webhooks hear of requests they were not told about."""
    with ctx.db.session() as session:
        campaign = session.get_one(Campaign, ctx.campaign_id)
        if campaign.runner != ctx.runner:
            return  # finished (`finish_campaign` freed it)
        what = waiting(session, ctx.campaign_id)
    if what:
        reason = f"{WAITING_FOR_PEOPLE}: {what.describe(ctx.name)}"
    else:
        reason = f"{WAITING_FOR_PEOPLE}: the next batch (`Campaign.ask` in Python, or `peirce resume {ctx.name}`)"
    pause_for_people(ctx, reason)
    if what:
        notify_waiting(ctx.db, ctx.campaign_id, ctx.spec)  # the campaign's webhooks, as when the loop pauses


def open_cycle(session: Any, campaign_id: int) -> Cycle | None:
    """The campaign's unfinished cycle, if any (there is at most one)."""
    return session.scalar(
        select(Cycle)
        .where(Cycle.campaign_id == campaign_id, Cycle.stage != "done")
        .order_by(Cycle.index.desc())
        .limit(1)
    )


def unfinished(session: Any, cycle_id: int) -> list[Experiment]:
    """The cycle's experiments still planned or under way (waiting for approval, for results, or to be handed out)."""
    return list(
        session.scalars(
            select(Experiment)
            .where(Experiment.cycle_id == cycle_id, Experiment.state.in_(PENDING_STATES))
            .order_by(Experiment.seq)
        ).all()
    )


class Stopwatch:
    """The time the platform spends acting on a cycle (planning, recording), added to the campaign's active time
    when the cycle is induced; the time a person spends measuring between `ask` and `tell` is not the platform's."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def running(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds
