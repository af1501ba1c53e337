"""Experiments: one attempt on the lab under the experiment's idempotency key, the retry policy, and a batch.

`run_attempt` is one attempt, written ahead: the experiment is `dispatched` in the database before the lab hears
of it, then `running`, then `completed`, `infeasible` or `failed` (the failure event says whether it will be
retried). Whether a failed attempt may be tried again is decided in one place, `RetryPolicy.may_retry`, which
both engines obey: the inline engine loops over attempts here (`run_experiment`), the Prefect engine declares the
same number of retries on its task and lets Prefect run the next attempt (`cycle.flow`). Every attempt is recorded
under the same idempotency key, with its attempt number.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from instruments.station import ManualStep, PersonEntry
from orchestrator.campaign.runs import LeaseLost
from orchestrator.campaign.spec import Budget
from orchestrator.cycle.context import CampaignContext, ExperimentOutcome, fence
from orchestrator.cycle.recovery import RECOVERY, WITHDRAWN
from orchestrator.lab.contract import ExperimentJournal, HandedToPerson, LabAbandoned, LabFailure, LabResult
from orchestrator.people.requests import answer, open_request, open_requests
from orchestrator.people.results import write_measurements
from orchestrator.people.steps import await_step
from orchestrator.records.events import ACTION_KINDS, ActionDetail
from orchestrator.store.artifacts import store_arrays
from orchestrator.store.models import Campaign, CampaignStatus, Experiment, ExperimentState, RequestKind
from orchestrator.store.records import add_event, move_experiment


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed experiment is tried again under its key, and how long to wait before the next try."""

    max_retries: int
    delay_s: float = 0.0  # a simulator's failure does not heal with time; a campaign spec has no delay to ask for

    @classmethod
    def of(cls, budget: Budget) -> RetryPolicy:
        return cls(max_retries=budget.max_retries)

    def may_retry(self, failure: LabFailure, attempt: int) -> bool:
        """Whether attempt number `attempt` (1 for the first), which failed with `failure`, may be tried again."""
        return failure.retryable and attempt <= self.max_retries


def run_attempt(ctx: CampaignContext, experiment_id: int) -> ExperimentOutcome:
    """One attempt at an approved (or failed, to retry) experiment; `will_retry` on the outcome of a failed attempt
    that the retry policy lets be tried again. A campaign asked to stop abandons the experiment instead."""
    policy = RetryPolicy.of(ctx.spec.budget)
    try:
        with ctx.db.session() as session:
            fence(session, ctx)  # first: the dispatch commits only under this process's lease
            experiment = session.get_one(Experiment, experiment_id)
            campaign = session.get_one(Campaign, ctx.campaign_id)
            if campaign.status == CampaignStatus.STOPPING:
                move_experiment(
                    session, experiment, ExperimentState.ABANDONED, detail={"reason": "campaign stop requested"}
                )
                return _outcome(experiment)
            # Written and committed before the lab hears of it: a crash from here on leaves the row in doubt.
            move_experiment(
                session,
                experiment,
                ExperimentState.DISPATCHED,
                detail={"key": experiment.idempotency_key},
                runner=ctx.runner,
            )
            key, parameters, attempt = experiment.idempotency_key, dict(experiment.parameters), experiment.attempts
    except IntegrityError as exc:
        # The schema's guard (one Dispatch row per attempt): another process sent this attempt. Never send it again.
        raise LeaseLost(
            f"experiment {experiment_id}: this attempt was already dispatched by another runner; stopping"
        ) from exc
    try:
        with ctx.db.session() as session:
            move_experiment(session, session.get_one(Experiment, experiment_id), ExperimentState.RUNNING)
        result = ctx.lab.run(parameters, key, journal(ctx, experiment_id, attempt))
    except HandedToPerson as handed:
        # The lab is a person: the experiment stays running, with a request open for its results.
        with ctx.db.session() as session:
            experiment = session.get_one(Experiment, experiment_id)
            open_request(session, experiment, RequestKind.RESULT, {"seq": experiment.seq, **handed.detail})
            return _outcome(experiment)
    except LabAbandoned as gone:
        # Not done, and no fact about the science (a stop while a person's step was awaited, a step a person could
        # not do): abandoned, never fed to the model, its requests to people withdrawn in the same transaction.
        with ctx.db.session() as session:
            experiment = session.get_one(Experiment, experiment_id)
            for request in open_requests(session, ctx.campaign_id, experiment_id=experiment_id):
                answer(session, request, by=RECOVERY, resolution=WITHDRAWN, note=str(gone))
            move_experiment(session, experiment, ExperimentState.ABANDONED, detail={"reason": str(gone)})
            return _outcome(experiment)
    except LabFailure as failure:
        will_retry = policy.may_retry(failure, attempt)
        with ctx.db.session() as session:
            experiment = session.get_one(Experiment, experiment_id)
            detail = {"reason": str(failure), "error": type(failure).__name__, "will_retry": will_retry}
            move_experiment(session, experiment, ExperimentState.FAILED, detail={**detail, **failure.detail})
            return _outcome(experiment, will_retry=will_retry)
    return _record_result(ctx, experiment_id, attempt, result)


def _record_result(ctx: CampaignContext, experiment_id: int, attempt: int, result: LabResult) -> ExperimentOutcome:
    with ctx.db.session() as session:
        experiment = session.get_one(Experiment, experiment_id)
        if result.infeasible:
            move_experiment(session, experiment, ExperimentState.INFEASIBLE, detail={"reason": result.reason})
            return _outcome(experiment)
        values = {name: float(value) for name, value in result.values.items()}
        write_measurements(session, experiment, values, ctx.spec)
        move_experiment(session, experiment, ExperimentState.COMPLETED, detail={"values": values})
        return _outcome(experiment, values)


def run_experiment(ctx: CampaignContext, experiment_id: int) -> ExperimentOutcome:
    """Run one experiment to its end on the inline engine: attempts under the same key while the policy allows."""
    policy = RetryPolicy.of(ctx.spec.budget)
    while True:
        outcome = run_attempt(ctx, experiment_id)
        if not outcome.will_retry:
            return outcome
        if policy.delay_s:
            time.sleep(policy.delay_s)


def run_experiments(ctx: CampaignContext, experiment_ids: Sequence[int]) -> list[ExperimentOutcome]:
    """Run a batch concurrently, at most `lab.max_concurrency` at a time (the Prefect flow maps tasks instead)."""
    if not experiment_ids:
        return []
    with ThreadPoolExecutor(max_workers=min(len(experiment_ids), ctx.lab.max_concurrency)) as pool:
        return list(pool.map(lambda i: run_experiment(ctx, i), experiment_ids))


def journal(ctx: CampaignContext, experiment_id: int, attempt: int) -> ExperimentJournal:
    """Where a station writes each action as it happens: an Event of the experiment, committed at once, so the
    database says what was about to be sent before it is sent (and what came back, with the bytes). It also hands a
    manual step to a person and waits for the entry (`people.steps.await_step`), fenced like every act."""

    def write(kind: str, detail: dict[str, Any]) -> None:
        if kind in ACTION_KINDS:
            _check_action(kind, detail)
        with ctx.db.session() as session:
            # Arrays an action returned (spectra) are stored as the experiment's data products, in this transaction.
            detail = store_arrays(detail, ctx.db.artifacts, session)
            add_event(
                session, ctx.campaign_id, "experiment", experiment_id, kind, detail={"attempt": attempt, **detail}
            )

    def ask_person(index: int, step: ManualStep, text: str) -> PersonEntry:
        return await_step(
            ctx.db, experiment_id, index, step, text, attempt=attempt, check=lambda session: fence(session, ctx)
        )

    hold = ctx.holds.for_attempt(write, experiment_id, attempt) if ctx.holds is not None else None
    return ExperimentJournal(write, ask_person, hold, attempt)


def _check_action(kind: str, detail: dict[str, Any]) -> None:
    """Refuse, as the writer's error, an action's detail that `peirce status`, the report and the export could not
    read back (a Python-function lab writes what it likes: an unknown key once made every later `status` fail)."""
    try:
        ActionDetail.model_validate(detail)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "detail"
        said = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        known = ", ".join(ActionDetail.model_fields)
        raise ValueError(f"journal: the detail of {kind} has {said} '{where}' (an action's keys: {known})") from None


def _outcome(
    experiment: Experiment, values: dict[str, float] | None = None, *, will_retry: bool = False
) -> ExperimentOutcome:
    return ExperimentOutcome(
        experiment.id, experiment.seq, experiment.state, values or {}, experiment.error, will_retry
    )
