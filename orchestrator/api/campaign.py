"""`peirce.Campaign`: a campaign driven from Python, one batch at a time.

    campaign = peirce.Campaign.create(SPEC_YAML, db="screen.db")
    batch = campaign.ask()                  # planned, written, handed out: a DataFrame, one row per experiment
    batch["yield"] = [measure(row) for _, row in batch.iterrows()]
    campaign.tell(batch, by="Ada Lovelace")  # recorded; once nothing of the cycle waits, the cycle is induced
    campaign.best(), campaign.hypotheses(), campaign.status()

`ask` plans exactly as the loop does (a cycle opened, abduction, deduction with its Decision, the approval policy)
and hands the batch to the caller, who is the lab (a manual lab's own instructions go with it); asking again before
telling returns the same experiments. `tell` enters results through the same function as `peirce record`, so each
result names who told it. Every act holds the campaign's runner lease while it writes (`acting`): a campaign that
`peirce run` or `peirce resume` is running is refused, and between acts the campaign waits for people, so
`peirce resume`, `peirce replay` and `peirce report` work on it as on any other.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sqlalchemy import func, select

from orchestrator.api.acting import VIA, Stopwatch, acting, open_cycle, refuse_if_run, unfinished
from orchestrator.api.entries import result_entries
from orchestrator.api.frames import best, handed_out
from orchestrator.campaign.spec import CampaignSpec, load_spec, parse_spec
from orchestrator.cycle.abduce import abduce
from orchestrator.cycle.context import CampaignContext, open_campaign
from orchestrator.cycle.deduce import deduce
from orchestrator.cycle.experiment import run_attempt
from orchestrator.cycle.induce import induce, open_experiments, spent_experiments
from orchestrator.cycle.loop import reason_to_stop
from orchestrator.cycle.recovery import finish_campaign, recover, start_cycle
from orchestrator.errors import SpecError
from orchestrator.lab.build import build_lab
from orchestrator.people.requests import check_person, open_requests
from orchestrator.people.results import enter_results
from orchestrator.people.waiting import waiting
from orchestrator.review.export import experiments_frame
from orchestrator.review.tables import hypotheses as hypothesis_table
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Campaign as CampaignRow
from orchestrator.store.models import CampaignStatus, Cycle, Experiment, ExperimentState
from orchestrator.store.queries import count_by_state
from orchestrator.store.records import find_campaign


class PeopleWaiting(UserWarning):
    """Experiments of the campaign wait for a person (an approval) and were not handed out, or the campaign has
    finished and nothing more is asked of it."""


@dataclass(frozen=True)
class CampaignState:
    """Where a campaign stands: its status and why, the budget spent, and what waits for people."""

    name: str
    status: str
    reason: str | None
    spent: int
    budget: int
    cycles: int
    by_state: dict[str, int]
    waiting: str  # in words, as `peirce status` and the loop's pause say it
    waiting_for: dict[str, list[int]] = field(default_factory=dict)  # request kind -> experiment seqs
    runner: str | None = None

    def __str__(self) -> str:
        states = ", ".join(f"{k} {v}" for k, v in sorted(self.by_state.items())) or "none"
        lines = [
            f"{self.name}: {self.status}" + (f" ({self.reason})" if self.reason else ""),
            f"  experiments: {self.spent}/{self.budget} spent; by state: {states}; cycles: {self.cycles}",
            f"  waiting: {self.waiting}",
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class TellReport:
    """What `tell` did: results entered, experiments that could not be run, entries already recorded (changed
    nothing); the cycle induced, if the results finished it, with the best so far and why the campaign stopped."""

    entered: list[int] = field(default_factory=list)
    not_run: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    induced_cycle: int | None = None
    best: dict[str, dict[str, Any]] = field(default_factory=dict)  # objective -> {value, seq}
    improved: bool = False
    hypotheses: list[str] = field(default_factory=list)  # hypotheses proposed or settled by the induction
    stop_reason: str | None = None

    def __str__(self) -> str:
        parts = [f"{len(seqs)} {what} ({_seqs(seqs)})" for what, seqs in self._counts() if seqs]
        lines = ["; ".join(parts) or "nothing told"]
        if self.induced_cycle is not None:
            shown = ", ".join(f"{k} = {v['value']:.4g} (#{v['seq']})" for k, v in self.best.items()) or "none yet"
            lines.append(f"cycle {self.induced_cycle} induced; best {shown}{' (improved)' if self.improved else ''}")
        lines += self.hypotheses
        if self.stop_reason:
            lines.append(f"campaign finished: {self.stop_reason}")
        return "\n".join(lines)

    def _counts(self) -> list[tuple[str, list[int]]]:
        return [("entered", self.entered), ("not run", self.not_run), ("unchanged", self.unchanged)]


class Campaign:
    """A campaign in a database, driven from Python. Make one with `Campaign.create` or `Campaign.open`."""

    def __init__(self, db: Database, campaign_id: int, name: str) -> None:
        self.db = db
        self.id = campaign_id
        self.name = name
        self._active = Stopwatch()

    # --- making one ---------------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls, spec: str | Path | dict[str, Any], db: str | Path | None = None, *, base_dir: Path | None = None
    ) -> Campaign:
        """The campaign of `spec` (a campaign file's path, its YAML text, or a dict), with the checks and records of
        `peirce run`: everything that can be wrong with the spec or its lab is refused (SpecError naming the field)
        before the database is touched; the same spec again reopens the stored campaign, another spec under the same
        name is refused. `db`: a database URL or a SQLite file's path (default: $PEIRCE_DB_URL, else ./peirce.db).
        Paths in YAML text or a dict are relative to `base_dir` (default: the current folder)."""
        parsed, text = _spec(spec, base_dir)
        build_lab(parsed)  # the lab's own checks (a lookup table's columns, a function's import) before any write
        opened = open_database(_url(db), create=True)
        try:
            campaign_id, _ = open_campaign(opened, parsed, text)
        except BaseException:
            opened.dispose()
            raise
        return cls(opened, campaign_id, parsed.name)

    @classmethod
    def open(cls, name: str, db: str | Path | None = None) -> Campaign:
        """The campaign `name` (or its numeric id) of an existing database (CampaignNotFound if it has none)."""
        opened = open_database(_url(db), create=False)
        try:
            with opened.session() as session:
                row = find_campaign(session, name)
                found = cls(opened, row.id, row.name)
        except BaseException:
            opened.dispose()
            raise
        return found

    def close(self) -> None:
        """Let go of the database (its connections; SQLite's write-ahead files go with the last)."""
        self.db.dispose()

    def __enter__(self) -> Campaign:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<peirce.Campaign {self.name!r} in {self.db.url}>"

    # --- acts ---------------------------------------------------------------------------------------------------

    def ask(self, n: int | None = None) -> pd.DataFrame:
        """The experiments to run now, one row each: `seq`, the cycle, the parameters, the predicted mean and std
        of each objective, the rationale and the hypothesis it tests. They are planned and written as the loop plans
        them and handed to you; their results are awaited (`tell`).

        Asking again before telling returns the experiments still waiting and plans nothing, unless `n` asks for
        more: then up to `n` in the cycle (waiting ones included), as the budget allows. `n` also sizes a new batch
        (default: the spec's `batch_size`). Experiments held for approval by the campaign's policy are not handed out
        (a PeopleWaiting warning says which; `peirce approve` lets them go, and the next `ask` hands them out).
        A campaign that another process runs (`peirce run`, `peirce resume`) is refused: CampaignConflict."""
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise SpecError("n", f"{n!r}: give a number of experiments, at least 1 (or None for the batch size)")
        refuse_if_run(self.db, self.id)  # even with nothing to do: what waits is that runner's to change
        if self._needs_act(n):
            with self._active.running(), acting(self.db, self.id) as ctx:
                self._plan_and_hand_out(ctx, n)
        return self._handed_out(warn=True)

    def tell(self, results: pd.DataFrame | list[dict[str, Any]], *, by: str) -> TellReport:
        """Record the results of experiments handed out: a DataFrame (or a list of mappings) with `seq`, one column
        per objective, and optionally `not_run` (why an experiment could not be run: it is abandoned, never fed to
        the model). `ask`'s frame with the outcome columns filled in will do. `by` names the person.

        Every row is checked before anything is written (SpecError naming the row and the field: an unknown seq,
        an unknown outcome, a value that is not a finite number, a seq given twice, a parameter other than the one
        handed out); telling the same results again changes nothing. Once nothing of the cycle waits, it is
        induced, as the loop does: best so far, hypotheses' credences, and whether the campaign stops."""
        person = check_person(by, "by")
        refuse_if_run(self.db, self.id)
        with self._active.running():
            with self.db.session() as session:
                spec = self._spec(session)
                planned = {
                    e.seq: dict(e.parameters)
                    for e in session.scalars(select(Experiment).where(Experiment.campaign_id == self.id))
                }
            entries = result_entries(results, spec, planned)
            entered = enter_results(self.db, self.id, entries, by=person, source=VIA)
        report = TellReport(entered=entered.entered, not_run=entered.not_run, unchanged=entered.unchanged)
        if not (entered.entered or entered.not_run) or self._finished():
            return report
        with self._active.running(), acting(self.db, self.id) as ctx:
            return self._induce_if_done(ctx, report)

    # --- reading ------------------------------------------------------------------------------------------------

    def status(self) -> CampaignState:
        """Its status (and why), the budget spent, experiments by state, and what waits for people."""
        with self.db.session() as session:
            row = session.get_one(CampaignRow, self.id)
            states = count_by_state(session, self.id)
            what = waiting(session, self.id)
            return CampaignState(
                name=row.name,
                status=row.status,
                reason=row.stop_reason,
                spent=sum(states.get(s, 0) for s in ExperimentState.SPENT),
                budget=int(row.spec["budget"]["experiments"]),
                cycles=session.scalar(select(func.count()).where(Cycle.campaign_id == self.id)) or 0,
                by_state=dict(states),
                waiting=what.describe(row.name),
                waiting_for={kind: list(seqs) for kind, seqs in what.by_kind.items()},
                runner=row.runner,
            )

    def best(self) -> pd.DataFrame:
        """The best result so far per objective: objective, value, unit, seq, and that experiment's parameters."""
        with self.db.session() as session:
            return best(session, self.id, self._spec(session))

    def hypotheses(self) -> pd.DataFrame:
        """The hypothesis ledger as it stands: one row per hypothesis, its status, credence and evidence."""
        return hypothesis_table(self.db, self.id)

    def experiments(self) -> pd.DataFrame:
        """Every experiment: seq, cycle, state, parameters, measured and predicted objectives, times (the table
        `peirce export` writes)."""
        return experiments_frame(self.db, self.name)

    def pending(self) -> pd.DataFrame:
        """The experiments handed out and still waiting for results (what `ask` returns, without acting)."""
        return self._handed_out(warn=False)

    # --- the acts' steps ----------------------------------------------------------------------------------------

    def _spec(self, session: Any) -> CampaignSpec:
        return CampaignSpec.model_validate(session.get_one(CampaignRow, self.id).spec)

    def _finished(self) -> bool:
        with self.db.session() as session:
            return session.get_one(CampaignRow, self.id).status == CampaignStatus.COMPLETED

    def _needs_act(self, n: int | None) -> bool:
        """Whether `ask` must act (a plain read). Not when the cycle's batch is out and waits for people and `n`
        asks for no more than the cycle has, nor when the campaign is completed: then nothing is written."""
        with self.db.session() as session:
            if session.get_one(CampaignRow, self.id).status == CampaignStatus.COMPLETED:
                return False
            cycle = open_cycle(session, self.id)
            if cycle is None or not cycle.experiments:
                return True
            left = unfinished(session, cycle.id)
            with_request = {r.experiment_id for r in open_requests(session, self.id)}
            if not left or any(e.id not in with_request for e in left):
                return True  # to be induced, handed out, or reconciled after an interruption
            if any(e.state == ExperimentState.FAILED for e in cycle.experiments):
                return True  # a failure the retry policy may try again (after `peirce run` was interrupted)
            return n is not None and n > len(left) and self._room(session) > 0

    def _room(self, session: Any) -> int:
        """Experiments the budget has left after those spent and those planned or under way."""
        budget = int(session.get_one(CampaignRow, self.id).spec["budget"]["experiments"])
        return max(0, budget - spent_experiments(session, self.id) - open_experiments(session, self.id))

    def _plan_and_hand_out(self, ctx: CampaignContext, n: int | None) -> None:
        """The loop's steps for one batch: continue the open cycle (plan it if it never was, hand out what is
        approved, induce it if nothing of it waits), else check the stop criteria and open, plan and hand out a
        new one; with `n`, plan more into the open cycle."""
        recovery = recover(ctx)
        cycle_id = recovery.cycle_id
        if cycle_id is not None:
            to_run = list(recovery.to_run)
            if recovery.needs_plan:
                abduce(ctx, cycle_id)
                to_run += deduce(ctx, cycle_id, self._size(ctx, n))
            _hand_out(ctx, to_run)
            with ctx.db.session() as session:
                left = len(unfinished(session, cycle_id))
                room = self._room(session)
            if not left:
                induce(ctx, cycle_id, self._active.take())
                cycle_id = None
            elif n is not None and min(n - left, room) > 0:
                _hand_out(ctx, deduce(ctx, cycle_id, min(n - left, room)))
        if cycle_id is not None:
            return
        reason = reason_to_stop(ctx)
        if reason is not None:
            finish_campaign(ctx, reason)
            return
        cycle_id = start_cycle(ctx)
        abduce(ctx, cycle_id)
        _hand_out(ctx, deduce(ctx, cycle_id, self._size(ctx, n)))

    def _size(self, ctx: CampaignContext, n: int | None) -> int:
        with ctx.db.session() as session:
            room = self._room(session)
        return min(ctx.spec.budget.batch_size if n is None else n, room)

    def _induce_if_done(self, ctx: CampaignContext, report: TellReport) -> TellReport:
        """After results were entered: induce the open cycle if nothing of it waits any more, and close the
        campaign if a stop criterion now holds (as the loop does before it opens the next cycle)."""
        with ctx.db.session() as session:
            cycle = open_cycle(session, ctx.campaign_id)
            if cycle is None or not cycle.experiments or unfinished(session, cycle.id):
                return report
            cycle_id = cycle.id
        cycle_report = induce(ctx, cycle_id, self._active.take())
        if cycle_report.stop_reason is not None:
            finish_campaign(ctx, cycle_report.stop_reason)
        return TellReport(
            entered=report.entered,
            not_run=report.not_run,
            unchanged=report.unchanged,
            induced_cycle=cycle_report.cycle,
            best=cycle_report.best,
            improved=cycle_report.improved,
            hypotheses=cycle_report.hypotheses,
            stop_reason=cycle_report.stop_reason,
        )

    def _handed_out(self, *, warn: bool) -> pd.DataFrame:
        with self.db.session() as session:
            row = session.get_one(CampaignRow, self.id)
            frame = handed_out(session, self.id, self._spec(session))
            what = waiting(session, self.id)
            status, reason = row.status, row.stop_reason
        if warn and status == CampaignStatus.COMPLETED:
            warnings.warn(f"campaign '{self.name}' is completed ({reason}); nothing more to ask", PeopleWaiting, 3)
        elif warn and what.approvals:
            held = what.describe(self.name) if not what.results else _approvals(what.approvals, self.name)
            warnings.warn(f"not handed out: {held}", PeopleWaiting, 3)
        return frame


def _hand_out(ctx: CampaignContext, experiment_ids: list[int]) -> None:
    """Each approved experiment to the lab, which hands it to a person: dispatched, running, a results request."""
    for experiment_id in experiment_ids:
        run_attempt(ctx, experiment_id)


def _approvals(seqs: list[int], name: str) -> str:
    shown = ", ".join(f"#{s}" for s in seqs)
    noun = "experiment waits" if len(seqs) == 1 else "experiments wait"
    return f"{len(seqs)} {noun} for approval ({shown}; `peirce pending {name}`)"


def _seqs(seqs: list[int]) -> str:
    return ", ".join(f"#{s}" for s in seqs)


def _url(db: str | Path | None) -> str | None:
    """A database URL from a URL or a SQLite file's path (None: the default every command uses)."""
    if db is None:
        return None
    if isinstance(db, str) and "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def _spec(spec: str | Path | dict[str, Any], base_dir: Path | None) -> tuple[CampaignSpec, str]:
    """The spec and its text, from a campaign file's path, YAML text, or a dict."""
    here = Path.cwd() if base_dir is None else Path(base_dir)
    if isinstance(spec, dict):
        text = yaml.safe_dump(spec, sort_keys=False)
        return parse_spec(text, base_dir=here, source="<dict>"), text
    if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec.strip() and ":" not in spec):
        return load_spec(Path(spec))
    if isinstance(spec, str):
        return parse_spec(spec, base_dir=here, source="<yaml>"), spec
    raise SpecError("spec", f"give a campaign file's path, its YAML text or a dict, not {type(spec).__name__}")
