"""The research loop, written once: cycles of abduce → deduce → run experiments → induce until a stop reason.

The loop is handed a `StageRunner`: `InlineStages` calls the stage functions directly (tests, scripts), the
Prefect flow hands in task-wrapped stages. Either way the loop reads like the process it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from orchestrator.campaign.runs import STOPPED_BY_REQUEST
from orchestrator.cycle.abduce import abduce
from orchestrator.cycle.context import CampaignContext, ExperimentOutcome
from orchestrator.cycle.deduce import deduce
from orchestrator.cycle.experiment import run_experiments
from orchestrator.cycle.induce import induce, stop_reason
from orchestrator.cycle.progress import CycleReport, publish
from orchestrator.cycle.recovery import finish_campaign, next_batch_size, pause_for_people, recover, start_cycle
from orchestrator.cycle.waiting import PausedForPeople, await_people
from orchestrator.store.models import Campaign


class StageRunner(Protocol):
    def abduce(self, cycle_id: int) -> list[int]: ...
    def deduce(self, cycle_id: int, batch_size: int) -> list[int]: ...
    def run_experiments(self, experiment_ids: Sequence[int]) -> list[ExperimentOutcome]: ...
    def wait_for_people(self, cycle_id: int) -> list[int] | None: ...
    def induce(self, cycle_id: int, cycle_seconds: float) -> CycleReport: ...


class InlineStages:
    """Stages called as plain functions in this thread (experiments on a thread pool, each retried here as the
    retry policy allows)."""

    def __init__(self, ctx: CampaignContext) -> None:
        self.ctx = ctx

    def abduce(self, cycle_id: int) -> list[int]:
        return abduce(self.ctx, cycle_id)

    def deduce(self, cycle_id: int, batch_size: int) -> list[int]:
        return deduce(self.ctx, cycle_id, batch_size)

    def run_experiments(self, experiment_ids: Sequence[int]) -> list[ExperimentOutcome]:
        return run_experiments(self.ctx, experiment_ids)

    def wait_for_people(self, cycle_id: int) -> list[int] | None:
        return await_people(self.ctx, cycle_id)

    def induce(self, cycle_id: int, cycle_seconds: float) -> CycleReport:
        return induce(self.ctx, cycle_id, cycle_seconds)


def run_loop(ctx: CampaignContext, stages: StageRunner) -> str:
    """Run cycles until a stop reason holds; returns that reason. Continues an interrupted cycle first.

    A cycle waiting for people pauses the campaign at the limit its spec allows (`cycle.waiting`): the reason is
    returned, the campaign is left `waiting` and its lease freed. The lab is closed at the end however the loop ends
    (instruments to their safe state, ports closed)."""
    try:
        return _cycles(ctx, stages)
    except PausedForPeople as paused:
        pause_for_people(ctx, paused.reason)
        return paused.reason
    finally:
        ctx.lab.close()


def _cycles(ctx: CampaignContext, stages: StageRunner) -> str:
    recovery = recover(ctx)
    if recovery.cycle_id is not None:
        _run_cycle(ctx, stages, recovery.cycle_id, plan=recovery.needs_plan, to_run=recovery.to_run)
    while True:
        reason = reason_to_stop(ctx)
        if reason is not None:
            finish_campaign(ctx, reason)
            return reason
        _run_cycle(ctx, stages, start_cycle(ctx), plan=True, to_run=[])


def reason_to_stop(ctx: CampaignContext) -> str | None:
    """Why the campaign ends before opening another cycle, or None to open one (the loop and the Python API's
    `ask` both ask this between cycles)."""
    with ctx.db.session() as session:
        reason = stop_reason(session, ctx)
        if reason == STOPPED_BY_REQUEST:
            # Who asked is on the campaign: a person (`peirce stop`) or a signal ("stopped by signal SIGTERM").
            reason = session.get_one(Campaign, ctx.campaign_id).stop_reason or reason
    if reason is None and next_batch_size(ctx) == 0:
        reason = "budget committed to experiments already planned"  # cannot happen after recovery; be explicit
    return reason


def _run_cycle(ctx: CampaignContext, stages: StageRunner, cycle_id: int, plan: bool, to_run: list[int]) -> None:
    started = ctx.clock()
    if plan:
        stages.abduce(cycle_id)
        to_run = to_run + stages.deduce(cycle_id, next_batch_size(ctx))
    stages.run_experiments(to_run)
    # Experiments waiting for people (an approval, results by hand) keep the cycle open: each approved one runs as
    # soon as it is approved; the cycle is induced once nothing of it waits.
    while ready := stages.wait_for_people(cycle_id):
        stages.run_experiments(ready)
    if ready is None:
        return  # a stop was asked while people were awaited: the cycle stays open for the next resume
    publish(stages.induce(cycle_id, (ctx.clock() - started).total_seconds()))
