"""The Prefect flow: the same loop, with each stage a Prefect task and each experiment a task of its own.

Prefect adds observability (flow and task runs in its UI), concurrency for the experiments of a batch (a thread
pool as wide as the lab allows), retries of failed experiments, and the ability to run on a Prefect server with
workers. The database URL reaches the flow through $PEIRCE_DB_URL, never as a flow parameter, so a password never
lands in Prefect's records.

Retries: an experiment task runs one attempt (`run_attempt`). When the shared retry policy says a failed attempt
may be tried again, the task raises `AttemptFailed` and Prefect runs the task again after the policy's delay; the
task declares the campaign's `budget.max_retries` retries, and only `AttemptFailed` is retried, so a bug is never
run twice. Each attempt is recorded under the experiment's idempotency key with its attempt number.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from types import FrameType
from typing import Any, cast

from prefect import Task, flow, get_client, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import FlowRunContext
from prefect.exceptions import TerminationSignal
from prefect.futures import PrefectFuture
from prefect.states import Cancelled, State
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from sqlalchemy import select

from orchestrator.campaign import runs
from orchestrator.cycle.abduce import abduce
from orchestrator.cycle.context import CampaignContext, ExperimentOutcome, load_context
from orchestrator.cycle.deduce import deduce
from orchestrator.cycle.experiment import RetryPolicy, run_attempt
from orchestrator.cycle.induce import induce
from orchestrator.cycle.loop import run_loop
from orchestrator.cycle.prefect_artifacts import publish_cycle
from orchestrator.cycle.prefect_input import PrefectWait
from orchestrator.cycle.prefect_server import ensure_temporary_server
from orchestrator.cycle.progress import CycleReport, report_lines
from orchestrator.cycle.release import release_failed
from orchestrator.cycle.takeover import crash_dead_run
from orchestrator.cycle.waiting import PausedForPeople, await_people
from orchestrator.errors import CampaignConflict, PeirceError
from orchestrator.people.waiting import waiting
from orchestrator.store.database import URL_ENV, Database, open_database
from orchestrator.store.models import Campaign, Cycle, Experiment
from orchestrator.store.records import add_event

_TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


class AttemptFailed(Exception):
    """An experiment's attempt failed and the retry policy lets it be tried again: Prefect retries the task."""

    def __init__(self, outcome: ExperimentOutcome) -> None:
        super().__init__(f"experiment {outcome.seq}: {outcome.error}")
        self.outcome = outcome


def _retry_only_failed_attempts(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect asks this before a retry: only an attempt the retry policy allows again is retried."""
    try:
        state.result()
    except AttemptFailed:
        return True
    except BaseException:
        return False
    return False


@task(name="abduce", **_TASK_OPTIONS)
def abduce_task(ctx: CampaignContext, cycle_id: int) -> list[int]:
    return abduce(ctx, cycle_id)


@task(name="deduce", **_TASK_OPTIONS)
def deduce_task(ctx: CampaignContext, cycle_id: int, batch_size: int) -> list[int]:
    return deduce(ctx, cycle_id, batch_size)


@task(
    name="experiment",
    retry_condition_fn=_retry_only_failed_attempts,
    **_TASK_OPTIONS,
)
def experiment_task(ctx: CampaignContext, experiment_id: int) -> ExperimentOutcome:
    outcome = run_attempt(ctx, experiment_id)
    if outcome.will_retry:
        raise AttemptFailed(outcome)
    return outcome


@task(name="induce", **_TASK_OPTIONS)
def induce_task(ctx: CampaignContext, cycle_id: int, cycle_seconds: float) -> CycleReport:
    return induce(ctx, cycle_id, cycle_seconds)


def _quoted(ctx: CampaignContext) -> CampaignContext:
    """The context as a task argument: `quote` keeps Prefect from walking the context object's contents, and
    Prefect unwraps it before the task runs, so the task receives the context itself."""
    return cast(CampaignContext, quote(ctx))


class PrefectStages:
    """The loop's stages as Prefect tasks, named for what a scientist sees in Prefect's UI: the flow run after the
    campaign, task runs `abduce-c<cycle>`, `deduce-c<cycle>`, `experiment-<seq>` and `induce-c<cycle>`. The cycle's
    lines the terminal shows go to the flow run's logs, and each induced cycle publishes its artifacts
    (`prefect_artifacts`)."""

    def __init__(self, ctx: CampaignContext) -> None:
        self.ctx = ctx
        self._ctx_arg = _quoted(ctx)
        policy = RetryPolicy.of(ctx.spec.budget)
        # The campaign's retries declared on the task; the policy still decides each one (see AttemptFailed).
        self.experiment = experiment_task.with_options(retries=policy.max_retries, retry_delay_seconds=policy.delay_s)
        _name_flow_run(ctx.name)

    @property
    def _log(self) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
        """The logger of the flow run the stages are called in (its lines are the run's logs in Prefect)."""
        return get_run_logger()

    def abduce(self, cycle_id: int) -> list[int]:
        return abduce_task.with_options(task_run_name=f"abduce-c{self._index(cycle_id)}")(self._ctx_arg, cycle_id)

    def deduce(self, cycle_id: int, batch_size: int) -> list[int]:
        index = self._index(cycle_id)
        planned = deduce_task.with_options(task_run_name=f"deduce-c{index}")(self._ctx_arg, cycle_id, batch_size)
        seqs = self._seqs(planned)
        self._log.info("cycle %d: %d experiments planned (%s)", index, len(seqs), _listed(seqs.values()))
        return planned

    def run_experiments(self, experiment_ids: Sequence[int]) -> list[ExperimentOutcome]:
        seqs = self._seqs(experiment_ids)
        # At most the lab's max_concurrency at once, however the flow run was started: a worker's flow run has
        # Prefect's default task runner, which knows nothing of the lab (`peirce run` sizes its own the same way).
        pool: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=self.ctx.lab.max_concurrency)
        with pool as runner:
            futures = [
                runner.submit(
                    self.experiment.with_options(task_run_name=f"experiment-{seqs[i]}"),
                    parameters={"ctx": self._ctx_arg, "experiment_id": i},
                )
                for i in experiment_ids
            ]
            return [f.result() for f in futures]

    def wait_for_people(self, cycle_id: int) -> list[int] | None:
        with self.ctx.db.session() as session:
            what = waiting(session, self.ctx.campaign_id, cycle_id)
        if what:
            self._log.info("cycle %d: %s", self._index(cycle_id), what.describe(self.ctx.name))
        try:
            # Paused with Prefect's approval form while a batch waits for approval (cycle.prefect_input).
            return await_people(self.ctx, cycle_id, wait=PrefectWait(self.ctx, cycle_id))
        except PausedForPeople as paused:
            with self.ctx.db.session() as session:
                command = runs.continue_command(session, session.get_one(Campaign, self.ctx.campaign_id))
            self._log.info("%s is %s; continue with: %s", self.ctx.name, paused.reason, command)
            raise

    def induce(self, cycle_id: int, cycle_seconds: float) -> CycleReport:
        name = f"induce-c{self._index(cycle_id)}"
        report = induce_task.with_options(task_run_name=name)(self._ctx_arg, cycle_id, cycle_seconds)
        for line in report_lines(report):
            level = logging.WARNING if line.startswith("  planner warning:") else logging.INFO
            self._log.log(level, "%s", line)
        if report.stop_reason:
            self._log.info("%s stops: %s", self.ctx.name, report.stop_reason)
        try:
            publish_cycle(self.ctx, cycle_id, report)
        except Exception as exc:  # what the UI shows never stops the science: said in the run's logs instead
            self._log.warning("cycle %d: artifacts not published: %s: %s", report.cycle, type(exc).__name__, exc)
        return report

    def _index(self, cycle_id: int) -> int:
        with self.ctx.db.session() as session:
            return session.get_one(Cycle, cycle_id).index

    def _seqs(self, experiment_ids: Sequence[int]) -> dict[int, int]:
        """Experiment id -> seq (the number a scientist knows an experiment by)."""
        with self.ctx.db.session() as session:
            rows = session.execute(select(Experiment.id, Experiment.seq).where(Experiment.id.in_(experiment_ids)))
            return {int(id_): int(seq) for id_, seq in rows.all()}


def _listed(seqs: Any) -> str:
    return ", ".join(f"#{seq}" for seq in sorted(seqs)) or "none"


def _name_flow_run(campaign: str) -> None:
    """Name the flow run after the campaign when it was started under another name (a deployment's run, which a
    worker started under a name Prefect made up); `run_with_prefect` names its runs so already."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.name == campaign:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(context.flow_run.id, name=campaign)
    except Exception as exc:  # a name is for people; the campaign runs without it
        get_run_logger().warning("flow run not renamed to %s: %s: %s", campaign, type(exc).__name__, exc)


_SignalHandler = Callable[[int, FrameType | None], Any] | int | None

# The runner's own SIGTERM handler (stop at the next safe point), when the flow runs inside `peirce run`/`resume`.
# Prefect's engine swaps in a handler that ends the flow run at once; a run started by `peirce` wants the same stop
# as Ctrl-C and `peirce stop`, so the flow puts the runner's handler back for as long as its loop runs. A flow run
# started by a Prefect worker has none set here and keeps Prefect's handler: there SIGTERM is Prefect's cancel.
_runner_sigterm: _SignalHandler = None


@contextmanager
def _runner_sigterm_handler() -> Iterator[None]:
    handler = _runner_sigterm
    if handler is None or not callable(handler):
        yield
        return
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: signals are Prefect's there
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@flow(name="peirce-campaign")
def campaign_flow(campaign_id: int) -> str | State[Any]:
    """Run campaign `campaign_id` of the database named by $PEIRCE_DB_URL to its end; returns the stop reason.

    One runner per campaign however the flow run was started: inside `peirce run`/`resume` the process already
    holds the campaign's lease; a flow run a worker started takes it here (`_run_leased`), and ends `Cancelled`,
    saying who runs the campaign, when another process holds it."""
    db = open_database(os.environ.get(URL_ENV))
    try:
        if _held_by_this_process(db, campaign_id):
            ctx = load_context(db, campaign_id)
            with _runner_sigterm_handler():
                return run_loop(ctx, PrefectStages(ctx))
        return _run_leased(db, campaign_id)
    finally:
        db.dispose()


def _held_by_this_process(db: Database, campaign_id: int) -> bool:
    with db.session() as session:
        return session.get_one(Campaign, campaign_id).runner == runs.runner_identity()


def _run_leased(db: Database, campaign_id: int) -> str | State[Any]:
    """A flow run started by a worker (a deployment's run): claim the lease (atomic; refused while another process
    holds it), keep it fresh on the heartbeat thread for the whole loop, and free it however the loop ends, as
    `peirce run` does: finished or paused by the loop itself, failed (`release_failed`), stopped when Prefect ends
    the run (its cancel is SIGTERM to this process) with what was in flight left for `peirce resume` to reconcile."""
    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    flow_run_id = str(flow_run.id) if flow_run is not None else None
    # Recorded with the claim: the run a later runner sets to Crashed should this one die, and the work pool that
    # the campaign is continued on (`runs.continue_command`).
    note = {"flow_run_id": flow_run_id, "work_pool": flow_run.work_pool_name if flow_run is not None else None}
    try:
        lease = runs.claim(db, campaign_id, note=note)
    except CampaignConflict as exc:
        message = f"campaign {str(exc).removeprefix('CAMPAIGN: ')}"
        with db.session() as session:
            add_event(
                session,
                campaign_id,
                "campaign",
                campaign_id,
                "run-refused",
                detail={"flow_run_id": flow_run_id, "reason": message},
            )
        return Cancelled(message=message)
    if lease.took_over_from:
        crash_dead_run(db, campaign_id, lease.took_over_from, flow_run_id, get_run_logger())
    try:
        with lease:
            ctx = replace(load_context(db, campaign_id), runner=lease.runner)
            return run_loop(ctx, PrefectStages(ctx))
    except TerminationSignal as exc:
        runs.release_after_signal(db, campaign_id, lease.runner, f"stopped by signal {signal.Signals(exc.signal).name}")
        raise
    except PeirceError:
        raise  # a lost lease among them: the campaign is the other runner's now, neither failed nor finished
    except Exception as exc:
        release_failed(db, campaign_id, exc, lease.runner)
        raise
    finally:
        # Whatever else ended the run (a cancel that reached the flow another way): the campaign is left stopped and
        # resumable, never marked as run by a process that has gone. A no-op once the lease was given back.
        with suppress(Exception):  # the database gone: the next `peirce resume` takes the dead runner's lease over
            runs.release_after_signal(db, campaign_id, lease.runner, "stopped: its flow run ended")


def run_with_prefect(db_url: str, campaign_id: int, campaign_name: str, max_workers: int) -> str:
    """Run the campaign's flow on Prefect: on the server PREFECT_API_URL names, else on a temporary server that
    dies with this process (see `prefect_server`). The flow disposes of its database engine before it returns; the
    temporary server stops only at this process's exit, after Prefect's workers have drained."""
    global _runner_sigterm
    os.environ[URL_ENV] = db_url
    _runner_sigterm = signal.getsignal(signal.SIGTERM)
    ensure_temporary_server()
    # Prefect types a task runner as invariant in its future type, so its own thread-pool runner does not type as
    # the `TaskRunner[PrefectFuture]` that `with_options` asks for; it is one at run time.
    runner = cast(TaskRunner[PrefectFuture[Any]], ThreadPoolTaskRunner(max_workers=max_workers))
    configured = campaign_flow.with_options(
        task_runner=runner,
        flow_run_name=f"{campaign_name}",
    )
    # A str: this process holds the lease (`_drive` took it), so the flow never ends refused with a state.
    with _run_logs_to_prefect():
        return cast(str, configured(campaign_id=campaign_id))


# The loggers of flow and task runs (`get_run_logger`), whose records Prefect's API handler sends to the run's logs.
_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


@contextmanager
def _run_logs_to_prefect() -> Iterator[None]:
    """The run's logs reach Prefect's API even where the terminal is kept quiet of Prefect.

    `peirce run` sets Prefect's log level to CRITICAL (`cli.campaigns.quiet_prefect`): its own lines would bury
    the progress lines. The run loggers inherit that level and would drop the cycle lines meant for the run's
    logs, so while the flow runs they take INFO and stop passing records on to the terminal's handler; they keep
    their own, Prefect's API handler. Where Prefect logs INFO already (a worker's run, a script), nothing changes."""
    saved = [(logger, logger.level, logger.propagate) for logger in map(logging.getLogger, _RUN_LOGGERS)]
    for logger, _, _ in saved:
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
            logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.setLevel(level)
            logger.propagate = propagate
