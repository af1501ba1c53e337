"""Approving a batch in Prefect's UI: under the Prefect engine, a cycle that waits for approval pauses its flow run
with a form (`ApprovalForm`) that shows the batch and takes the person's answer.

The form's description shows each experiment waiting (seq, parameters, predictions, why it waits); its fields take
the person's name (required), the experiments to approve (`all`, or their numbers) and to reject, and a note (the
reason of a rejection, required with one). An answer is carried out by the same acts as `peirce approve` and
`peirce reject` (`people.acts`), so it is the same record. An answer that is refused (no name, an experiment that
does not wait, a rejection without a reason) writes nothing: the flow pauses again, the new form saying why.

How an answer given elsewhere (`peirce approve` in a terminal, the Python API) lets the flow go on: while the flow
run is paused, a thread of the runner reads the database every `POLL_S` and, when what waits has changed (or a stop
was asked, the lease was lost, or the campaign's approval timeout passed), resumes the flow run itself through
Prefect's API with an empty form. The other way round (the CLI resuming the flow run) was weighed and not taken: the
CLI would need Prefect's API, which a person approving from another machine, or a runner on its own temporary
server (whose address only the runner knows), does not give it; and the database is the one thing every answer
reaches. Pausing for short spells and reading the database between them was not taken either: each spell would be
a new form, and a person half-way through one would find it gone. So one pause lasts the whole wait, and the
pause's own timeout (the wait plus a margin) is only a backstop: the runner resumes the flow run before it.

Each approval request of the cycle records the flow run that asks for it (`detail["prefect_flow_run_id"]`), written
before the flow pauses, so that a person or a tool finds the form from the request.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger
from pydantic import Field
from sqlalchemy import select

from orchestrator.cycle.context import CampaignContext
from orchestrator.errors import PeirceError, SpecError
from orchestrator.people import acts
from orchestrator.people.requests import check_person
from orchestrator.store.models import Experiment, PersonRequest, RequestKind

POLL_S = 1.0  # how often the paused flow run asks Prefect whether it was resumed, and the runner reads the database
PAUSE_MARGIN_S = 60  # Prefect's own pause timeout is the wait plus this: a backstop the runner never reaches
MIN_PAUSE_S = 2.0  # less time than this left: the runner just waits, with no form
FLOW_RUN_KEY = "prefect_flow_run_id"

_logger = logging.getLogger(__name__)


class ApprovalForm(RunInput):
    """What a person answers in Prefect's UI. The batch itself is in the form's description."""

    by: str = Field(title="Your name", description="Recorded with every answer (required).")
    approve: str = Field(
        default="", title="Approve", description="`all`, or the numbers of the experiments to approve: `1, 2`."
    )
    reject: str = Field(default="", title="Reject", description="The numbers of the experiments to reject: `3`.")
    note: str = Field(default="", title="Note", description="Why: recorded with the answer; required to reject.")

    def is_empty(self) -> bool:
        return not any(value.strip() for value in (self.by, self.approve, self.reject, self.note))


EMPTY_FORM: dict[str, str] = {"by": ""}  # what the runner resumes its own flow run with (see the module's doc)


@dataclass(frozen=True)
class Answer:
    """A form's answer, checked: who, which experiments to approve (or all) and to reject, the note."""

    by: str
    approve: list[int] | Literal["all"]
    reject: list[int]
    note: str | None


def checked_answer(form: ApprovalForm, waiting: list[int]) -> Answer:
    """The form's answer against the experiments waiting for approval; SpecError naming the field otherwise."""
    by = check_person(form.by, field="by")
    approve = _seqs(form.approve, "approve", waiting)
    reject = _seqs(form.reject, "reject", waiting)
    if approve == "all" and reject == "all":
        raise SpecError("reject", "an experiment cannot be both approved and rejected")
    rejected = waiting if reject == "all" else reject
    if approve == "all":
        approve = [seq for seq in waiting if seq not in rejected]
        if not approve and not rejected:
            raise SpecError("approve", "nothing waits for approval")
    both = sorted(set(approve) & set(rejected))
    if both:
        raise SpecError("reject", f"#{both[0]} is also to be approved; choose one")
    if not approve and not rejected:
        raise SpecError("approve", "say which experiments to approve (`all`, or their numbers) or to reject")
    note = form.note.strip() or None
    if rejected and note is None:
        raise SpecError("note", "say why the experiments are rejected (it is recorded with the rejection)")
    return Answer(by, approve, list(rejected), note)


def _seqs(text: str, field: str, waiting: list[int]) -> list[int] | Literal["all"]:
    words = [word for word in re.split(r"[\s,;]+", text.strip()) if word]
    if [word.lower() for word in words] == ["all"]:
        return "all"
    seqs: list[int] = []
    for word in words:
        digits = word.removeprefix("#")
        if not digits.isdigit():
            raise SpecError(field, f"'{word[:20]}' is not an experiment number (give numbers such as `1, 2`, or all)")
        seq = int(digits)
        if seq not in waiting:
            shown = ", ".join(f"#{s}" for s in waiting) or "none"
            raise SpecError(field, f"#{seq} does not wait for approval (waiting: {shown})")
        if seq not in seqs:
            seqs.append(seq)
    return seqs


def carry_out(ctx: CampaignContext, answer: Answer) -> None:
    """The person's answer, by the same acts as the CLI's: the approvals in one transaction, then each rejection."""
    if answer.approve:
        acts.approve(ctx.db, ctx.campaign_id, answer.approve, answer.by, answer.note)
    for seq in answer.reject:
        acts.reject(ctx.db, ctx.campaign_id, seq, answer.by, answer.note)


# --- what the form shows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingExperiment:
    """An experiment of the cycle waiting for approval, as the form shows it."""

    seq: int
    parameters: dict[str, Any]
    predicted: dict[str, Any]
    reasons: list[str] = field(default_factory=list)


def waiting_for_approval(ctx: CampaignContext, cycle_id: int) -> list[WaitingExperiment]:
    with ctx.db.session() as session:
        rows = session.execute(
            select(PersonRequest, Experiment)
            .join(Experiment, Experiment.id == PersonRequest.experiment_id)
            .where(
                PersonRequest.campaign_id == ctx.campaign_id,
                PersonRequest.kind == RequestKind.APPROVAL,
                PersonRequest.resolved_at.is_(None),
                Experiment.cycle_id == cycle_id,
            )
            .order_by(Experiment.seq)
        ).all()
        return [
            WaitingExperiment(
                e.seq, dict(e.parameters), dict(e.predicted or {}), list((r.detail or {}).get("reasons", []))
            )
            for r, e in rows
        ]


def describe(name: str, batch: list[WaitingExperiment], deadline: datetime, refused: str | None = None) -> str:
    """The form's description (Markdown): what waits, how to answer, and why the last answer was refused."""
    lines = []
    if refused:
        lines += [f"**Your last answer was refused, and nothing was written:** {_cell(refused)}", ""]
    noun = "experiment waits" if len(batch) == 1 else "experiments wait"
    lines += [
        f"**{name}**: {len(batch)} {noun} for approval. Answer here, or in a terminal: "
        f"`peirce approve {name} SEQ… --by NAME` (or `--all`), `peirce reject {name} SEQ --by NAME --reason …`.",
        "",
        f"If nobody answers by {deadline:%Y-%m-%d %H:%M} UTC the campaign pauses; answer, then `peirce resume {name}`.",
        "",
    ]
    parameters = list(dict.fromkeys(k for w in batch for k in w.parameters))
    outcomes = list(dict.fromkeys(k for w in batch for k in w.predicted))
    header = ["#", *parameters, *(f"predicted {o}" for o in outcomes), "why it waits"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for w in batch:
        cells = [str(w.seq), *(_value(w.parameters.get(p)) for p in parameters)]
        cells += [_prediction(w.predicted.get(o)) for o in outcomes]
        cells.append(_cell("; ".join(w.reasons)))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Fields: **by**, your name (required); **approve**, `all` or numbers (`1, 2`); **reject**, numbers; "
        "**note**, why (required to reject).",
    ]
    return "\n".join(lines)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _cell("" if value is None else str(value))


def _prediction(predicted: Any) -> str:
    if not isinstance(predicted, dict) or predicted.get("mean") is None:
        return ""
    std = predicted.get("std")
    return f"{predicted['mean']:.4g}" + (f" ± {std:.2g}" if std is not None else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# --- the wait ----------------------------------------------------------------------------------------------------


class PrefectWait:
    """`cycle.waiting.Wait` for a flow run: the time until the next look is spent paused with the approval form.

    Outside a flow run, when no approval waits (results entered by hand), or with little time left, it sleeps as
    the inline engine does."""

    def __init__(self, ctx: CampaignContext, cycle_id: int, poll_s: float = POLL_S) -> None:
        self.ctx = ctx
        self.cycle_id = cycle_id
        self.poll_s = poll_s
        self.refused: str | None = None  # why the last answer was refused: shown on the next form

    def __call__(self, left_s: float, changed: Callable[[], bool]) -> None:
        context = FlowRunContext.get()
        batch = waiting_for_approval(self.ctx, self.cycle_id)
        if context is None or context.flow_run is None or not batch or left_s < MIN_PAUSE_S:
            time.sleep(min(self.poll_s, left_s))
            return
        run_id = context.flow_run.id
        self._record_flow_run(run_id)
        deadline = datetime.now(UTC) + timedelta(seconds=left_s)
        form = ApprovalForm.with_initial_data(description=describe(self.ctx.name, batch, deadline, self.refused))
        woken = threading.Event()
        done = threading.Event()
        watcher = threading.Thread(
            target=self._watch,
            args=(run_id, time.monotonic() + left_s, changed, woken, done),
            name=f"peirce-approval-{self.ctx.name}",
            daemon=True,
        )
        watcher.start()
        try:
            answered: ApprovalForm | None = pause_flow_run(
                wait_for_input=form,
                timeout=math.ceil(left_s) + PAUSE_MARGIN_S,
                poll_interval=max(1, round(self.poll_s)),
            )
        except FlowPauseTimeout:
            answered = None  # the runner could not resume its flow run in time; the loop's deadline has passed
        finally:
            done.set()
            watcher.join()
        if answered is None or (woken.is_set() and answered.is_empty()):
            return
        self.refused = self._answer(answered)

    def _answer(self, form: ApprovalForm) -> str | None:
        """Carry out a person's answer; returns why it was refused (nothing written), or None."""
        waiting = [w.seq for w in waiting_for_approval(self.ctx, self.cycle_id)]
        try:
            answer = checked_answer(form, waiting)
        except SpecError as exc:
            return self._refuse(str(exc))
        try:
            carry_out(self.ctx, answer)
        except PeirceError as exc:  # answered meanwhile by someone else (AlreadyAnswered), or refused by the act
            return self._refuse(f"{exc} (approvals carried out before it stand)")
        return None

    def _refuse(self, why: str) -> str:
        get_run_logger().warning("approval form refused: %s", why)
        return why

    def _record_flow_run(self, run_id: UUID) -> None:
        """Write the flow run asking for approval into the cycle's open approval requests (before it pauses)."""
        with self.ctx.db.session() as session:
            for request in session.scalars(
                select(PersonRequest)
                .join(Experiment, Experiment.id == PersonRequest.experiment_id)
                .where(
                    PersonRequest.campaign_id == self.ctx.campaign_id,
                    PersonRequest.kind == RequestKind.APPROVAL,
                    PersonRequest.resolved_at.is_(None),
                    Experiment.cycle_id == self.cycle_id,
                )
            ):
                if (request.detail or {}).get(FLOW_RUN_KEY) != str(run_id):
                    request.detail = {**(request.detail or {}), FLOW_RUN_KEY: str(run_id)}

    def _watch(
        self,
        run_id: UUID,
        deadline: float,
        changed: Callable[[], bool],
        woken: threading.Event,
        done: threading.Event,
    ) -> None:
        """While the flow run is paused: resume it when the database says something changed or the time is up."""
        while not done.wait(self.poll_s):
            if not woken.is_set():
                try:
                    wake = time.monotonic() >= deadline or changed()
                except Exception:  # a lost lease, a database that stopped answering: the flow looks, and says so
                    wake = True
                if not wake:
                    continue
                woken.set()
            try:
                resume_flow_run(run_id, run_input=EMPTY_FORM)
                return
            except (NotPausedError, ObjectNotFound):
                continue  # not paused yet (or resumed by a person meanwhile): try again until the flow goes on
            except Exception as exc:  # Prefect's API refused or failed: the pause's own timeout is the backstop
                _logger.warning("could not resume flow run %s: %s", run_id, type(exc).__name__)
                continue
