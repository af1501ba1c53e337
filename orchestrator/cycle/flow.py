"""The Prefect flow: the same loop, with each stage a Prefect task and each experiment a task of its own.

Prefect adds observability (flow and task runs in its UI), concurrency for the experiments of a batch (a thread
pool as wide as the lab allows) and the ability to run on a Prefect server with workers. The database URL reaches
the flow through $PEIRCE_DB_URL, never as a flow parameter, so a password never lands in Prefect's records.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from orchestrator.cycle import stages
from orchestrator.cycle.loop import run_loop
from orchestrator.cycle.progress import CycleReport
from orchestrator.cycle.stages import CampaignContext, ExperimentOutcome
from orchestrator.store.database import URL_ENV, open_database

_TASK_OPTIONS = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="abduce", **_TASK_OPTIONS)
def abduce_task(ctx: CampaignContext, cycle_id: int) -> list[int]:
    return stages.abduce(ctx, cycle_id)


@task(name="deduce", **_TASK_OPTIONS)
def deduce_task(ctx: CampaignContext, cycle_id: int, batch_size: int) -> list[int]:
    return stages.deduce(ctx, cycle_id, batch_size)


@task(name="experiment", task_run_name="experiment-{experiment_id}", **_TASK_OPTIONS)
def experiment_task(ctx: CampaignContext, experiment_id: int) -> ExperimentOutcome:
    return stages.run_experiment(ctx, experiment_id)


@task(name="induce", **_TASK_OPTIONS)
def induce_task(ctx: CampaignContext, cycle_id: int, cycle_seconds: float) -> CycleReport:
    return stages.induce(ctx, cycle_id, cycle_seconds)


class PrefectStages:
    """The loop's stages as Prefect tasks. `quote` keeps Prefect from walking the context object's contents."""

    def __init__(self, ctx: CampaignContext) -> None:
        self.ctx = ctx

    def abduce(self, cycle_id: int) -> list[int]:
        return abduce_task(quote(self.ctx), cycle_id)

    def deduce(self, cycle_id: int, batch_size: int) -> list[int]:
        return deduce_task(quote(self.ctx), cycle_id, batch_size)

    def run_experiments(self, experiment_ids: Sequence[int]) -> list[ExperimentOutcome]:
        futures = [experiment_task.submit(quote(self.ctx), i) for i in experiment_ids]
        return [f.result() for f in futures]

    def induce(self, cycle_id: int, cycle_seconds: float) -> CycleReport:
        return induce_task(quote(self.ctx), cycle_id, cycle_seconds)


@flow(name="peirce-campaign")
def campaign_flow(campaign_id: int) -> str:
    """Run campaign `campaign_id` of the database named by $PEIRCE_DB_URL to its end; returns the stop reason."""
    db = open_database(os.environ.get(URL_ENV))
    try:
        ctx = stages.load_context(db, campaign_id)
        return run_loop(ctx, PrefectStages(ctx))
    finally:
        db.dispose()


def run_with_prefect(db_url: str, campaign_id: int, campaign_name: str, max_workers: int) -> str:
    os.environ[URL_ENV] = db_url
    configured = campaign_flow.with_options(
        task_runner=ThreadPoolTaskRunner(max_workers=max_workers),
        flow_run_name=f"{campaign_name}",
    )
    return configured(campaign_id=campaign_id)
