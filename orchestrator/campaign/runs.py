"""Starting, resuming and stopping campaigns: the campaign row's life, and the lease that keeps one runner.

Only one process runs a campaign at a time. It writes its identity (`host:pid`) and a heartbeat on the campaign;
another `peirce run` or `resume` is refused while that process lives (same host) or its heartbeat is fresh
(another host). A runner killed outright leaves a lease nobody holds, which the next `resume` takes over.

Three guards keep it to one runner:
- the claim is a compare-and-swap on the campaign's runner (see `claim`), so of two simultaneous claims exactly one
  wins;
- a heartbeat thread keeps the lease fresh through any step, however long (`Lease`), and stale detection never
  takes over a lease whose process is alive;
- every write that starts an act (a cycle, a decision, a dispatch, the campaign's end) first fences: a conditional
  update of the heartbeat that matches only while this process still holds the lease (`hold`). A runner that lost
  its lease stops with one line (`LeaseLost`) instead of acting.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, Update, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.campaign.related import check_related
from orchestrator.campaign.spec import CampaignSpec
from orchestrator.errors import CampaignConflict, PeirceError
from orchestrator.records.events import EventKind
from orchestrator.store.database import Database
from orchestrator.store.models import Campaign, CampaignStatus, Event, utcnow
from orchestrator.store.records import add_event, find_campaign, set_campaign_status

HEARTBEAT_INTERVAL_S = 30.0
# Ten heartbeats missed: a runner on another host whose heartbeat is this old has died or lost the database.
HEARTBEAT_STALE_AFTER = timedelta(minutes=5)
FINISHED = (CampaignStatus.COMPLETED, CampaignStatus.STOPPED, CampaignStatus.FAILED)
STOPPED_BY_REQUEST = "stopped by request"

Clock = Callable[[], datetime]


class LeaseLost(PeirceError):
    """Another process took this campaign's lease: this runner stops before its next act, and leaves the campaign
    to the runner that holds it (it neither finishes nor fails it)."""

    exit_code = 1


def runner_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


SeedLedger = Callable[[Session, int, CampaignSpec], None]


def create_or_reopen(
    db: Database, spec: CampaignSpec, spec_text: str, seed_ledger: SeedLedger | None = None
) -> tuple[int, Literal["created", "reopened"]]:
    """The campaign of this spec: a new row, or the existing one when its stored spec is the same.

    `seed_ledger` writes what a new campaign starts knowing (knowledge files) in the same transaction; the ledger
    room supplies it (`orchestrator.cycle.context.open_campaign`), since the campaign room sits below the ledger.
    Two `peirce run` of the same new spec at once both try to create it: the one whose insert the unique name
    refuses reopens the other's row.
    """
    try:
        return _create_or_reopen(db, spec, spec_text, seed_ledger)
    except IntegrityError:
        return _create_or_reopen(db, spec, spec_text, seed_ledger)


def _same_spec_read_today(existing: Campaign, spec: CampaignSpec) -> bool:
    """Whether the stored spec, read by today's model, is `spec`. A campaign stored before a setting existed
    (`approval.timeout`, `notify`) has another hash for the same file, since the stored JSON lacks the new field;
    read today, the field takes its default, as the file's does."""
    try:
        return CampaignSpec.model_validate(existing.spec).content_hash() == spec.content_hash()
    except ValueError:  # pydantic's ValidationError: stored under a model that has since changed incompatibly
        return False


def _stored_spec(existing: Campaign) -> CampaignSpec | None:
    try:
        return CampaignSpec.model_validate(existing.spec)
    except ValueError:  # stored under a model that has since changed incompatibly
        return None


def _move_instruments(
    session: Session, existing: Campaign, stored: CampaignSpec, spec: CampaignSpec, spec_text: str
) -> None:
    """The campaign file differs from the stored one only in where instruments are reached (a port, serial
    settings: the lab moved an instrument, or the lab file gives another computer's device server). That is not
    another campaign: the stored spec takes the new places, recorded as an event with what moved from where, so
    the campaign continues on the instruments where they are now."""
    before, after = stored.placement(), spec.placement()
    moved = {
        name: {"from": before.get(name), "to": place} for name, place in after.items() if before.get(name) != place
    }
    existing.spec = spec.model_dump(mode="json")
    existing.spec_text = spec_text
    existing.spec_hash = spec.content_hash()
    session.add(existing)
    add_event(session, existing.id, "campaign", existing.id, EventKind.INSTRUMENTS_MOVED, detail={"moved": moved})


def _create_or_reopen(
    db: Database, spec: CampaignSpec, spec_text: str, seed_ledger: SeedLedger | None
) -> tuple[int, Literal["created", "reopened"]]:
    with db.session() as session:
        # Related campaigns are checked here, where the database is: a refusal writes nothing.
        check_related(session, spec)
        existing = session.scalar(select(Campaign).where(Campaign.name == spec.name))
        if existing is not None:
            if existing.spec_hash != spec.content_hash() and not _same_spec_read_today(existing, spec):
                stored = _stored_spec(existing)
                if stored is None or stored.hash_without_placement() != spec.hash_without_placement():
                    raise CampaignConflict(
                        f"name: campaign '{spec.name}' already exists with a different spec; "
                        f"rename the new one, or `peirce resume {spec.name}` to continue the stored one"
                    )
                _move_instruments(session, existing, stored, spec, spec_text)
            return existing.id, "reopened"
        campaign = Campaign(
            name=spec.name,
            goal=spec.goal,
            status=CampaignStatus.CREATED,
            spec=spec.model_dump(mode="json"),
            spec_text=spec_text,
            spec_hash=spec.content_hash(),
        )
        session.add(campaign)
        session.flush()
        add_event(
            session,
            campaign.id,
            "campaign",
            campaign.id,
            "created",
            to_state=CampaignStatus.CREATED,
            detail={"spec_hash": campaign.spec_hash},
        )
        # Knowledge from earlier campaigns enters the ledger with the campaign, in the same transaction.
        if seed_ledger is not None:
            seed_ledger(session, campaign.id, spec)
        return campaign.id, "created"


def claim(
    db: Database,
    campaign_id: int,
    *,
    interval_s: float = HEARTBEAT_INTERVAL_S,
    clock: Clock = utcnow,
    note: dict[str, Any] | None = None,
) -> Lease:
    """Take the runner lease and mark the campaign running; refuse if another live process holds it. `note` goes
    into the event that records the claim (a flow run's id, so that a later runner knows whose run it replaced).

    Returns the lease, whose heartbeat is not yet beating: `Lease.start` (or `with lease:`) starts it. Its
    `took_over_from` names the dead runner whose lease it took, if any.

    Why a compare-and-swap and `BEGIN IMMEDIATE` both: the claim reads the lease, decides, and writes. SQLite
    ignores `SELECT … FOR UPDATE`, and pysqlite starts a transaction only at the first write, so two processes
    could both read the lease as free. `BEGIN IMMEDIATE` takes SQLite's write lock before the read, so claims on
    one file are serialised and the second reads what the first wrote. PostgreSQL has no `BEGIN IMMEDIATE`; there
    the row lock of `FOR UPDATE` serialises. Under both, the write itself is conditional on the runner that was read
    (`UPDATE … WHERE runner IS NOT DISTINCT FROM :seen`) and its row count decides, so the claim stays correct
    whatever the isolation the connection runs at: a claim that lost the race matches no row and is refused. (A
    runner's identity is never reused while it could matter: `host:pid` of a live process is unique, and a pid is
    reused only after its process died, when taking its lease over is right anyway.)
    """
    me = runner_identity()
    now = clock()
    # First a plain read, which takes no lock: a campaign a live runner holds is refused at once, without queueing
    # for the write lock that runner keeps taking. Only a lease that looks free is claimed, and read again under it.
    with db.session() as session:
        _refuse_unless_free(session.get_one(Campaign, campaign_id), me, now)
    with db.session() as session:
        _serialise_writers(session)
        campaign = session.get_one(Campaign, campaign_id, with_for_update=True, populate_existing=True)
        _refuse_unless_free(campaign, me, now)
        seen_runner = campaign.runner
        taken_over = campaign.runner if campaign.runner and campaign.runner != me else None
        won = _rows_updated(
            session,
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.runner.is_not_distinct_from(seen_runner))
            .values(runner=me, heartbeat_at=now),
        )
        if won != 1:
            session.rollback()
            holder = session.scalar(select(Campaign.runner).where(Campaign.id == campaign_id))
            raise CampaignConflict(f"CAMPAIGN: '{campaign.name}' is being run by {holder or 'another process'}")
        session.refresh(campaign)
        if campaign.status != CampaignStatus.RUNNING:
            campaign.stop_reason = None
            set_campaign_status(
                session,
                campaign,
                CampaignStatus.RUNNING,
                detail={"runner": me, **({"took_over_from": taken_over} if taken_over else {}), **(note or {})},
            )
        elif taken_over:
            add_event(
                session,
                campaign.id,
                "campaign",
                campaign.id,
                "runner-replaced",
                detail={"runner": me, "took_over_from": taken_over, **(note or {})},
            )
    lease = Lease(db, campaign_id, me, interval_s=interval_s, clock=clock)
    lease.took_over_from = taken_over
    return lease


def refuse_unless_free(db: Database, campaign_id: int) -> None:
    """Refuse (`CampaignConflict`) a campaign that is completed or run by a live process, reading only: a check
    before work is handed elsewhere (`peirce submit`); the runner's own `claim` is what decides."""
    with db.session() as session:
        _refuse_unless_free(session.get_one(Campaign, campaign_id), runner_identity(), utcnow())


def _refuse_unless_free(campaign: Campaign, me: str, now: datetime) -> None:
    # A stopped or failed campaign may go on (after a person's stop, or once the cause of a failure is fixed).
    if campaign.status == CampaignStatus.COMPLETED:
        raise CampaignConflict(
            f"CAMPAIGN: '{campaign.name}' is already completed ({campaign.stop_reason}); nothing to resume"
        )
    if campaign.runner and campaign.runner != me and lease_alive(campaign.runner, campaign.heartbeat_at, now):
        raise CampaignConflict(f"CAMPAIGN: '{campaign.name}' is being run by {campaign.runner}")


def _serialise_writers(session: Session) -> None:
    """On SQLite, take the write lock now, before the transaction reads anything (see `claim`)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def hold(session: Session, campaign_id: int, runner: str, now: datetime | None = None) -> None:
    """The fence: in the caller's transaction, refresh the heartbeat if `runner` still holds the lease, else raise
    `LeaseLost`. Called first in every transaction that starts an act, so the act and the proof that this process
    may act commit together (a conditional update: its row count, not an earlier read, decides)."""
    held = _rows_updated(
        session,
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.runner == runner)
        .values(heartbeat_at=now or utcnow()),
    )
    if held != 1:
        holder = session.scalar(select(Campaign.runner).where(Campaign.id == campaign_id))
        raise lease_lost(holder)


def _rows_updated(session: Session, statement: Update) -> int:
    """Run a conditional UPDATE; the number of rows it matched is the answer (1: the condition held)."""
    result = cast(CursorResult[Any], session.execute(statement.execution_options(synchronize_session=False)))
    return result.rowcount


def lease_lost(holder: str | None) -> LeaseLost:
    return LeaseLost(f"lease lost to {holder or 'no runner (the campaign was closed)'}; stopping")


class Lease:
    """This process's hold on a campaign: a daemon thread writes the heartbeat every `interval_s` seconds (with its
    own database sessions), so a step of any length (a furnace ramp, a wait for a person) keeps the lease fresh.

    The thread also carries a stop asked for by a signal into the database (`request_stop`): a signal handler
    must not write to the database itself, since the main thread may be inside a transaction at that moment."""

    def __init__(
        self,
        db: Database,
        campaign_id: int,
        runner: str,
        *,
        interval_s: float = HEARTBEAT_INTERVAL_S,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.campaign_id = campaign_id
        self.runner = runner
        self.interval_s = interval_s
        self.clock = clock
        self.lost_to: str | None = None  # set once a heartbeat found the lease in another's hands
        self.took_over_from: str | None = None  # the dead runner whose lease `claim` took, if it took one
        self.beats = 0
        self._stop_reason: str | None = None
        self._stop_written = False
        self._after_stop_written: Callable[[], None] | None = None
        self._wake = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lost(self) -> bool:
        return self.lost_to is not None

    def start(self) -> Lease:
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat_until_done, name="peirce-heartbeat", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the heartbeat (at release: the loop has finished, failed or lost the lease)."""
        self._done.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.interval_s))
            self._thread = None

    def __enter__(self) -> Lease:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def request_stop(self, reason: str, then: Callable[[], None] | None = None) -> None:
        """Ask the campaign to stop at its next safe point; the heartbeat thread writes it at once, then calls
        `then` (on that thread: a signal handler that printed could break an import the main thread was in)."""
        self._stop_reason = reason
        self._after_stop_written = then
        self._wake.set()

    def beat(self) -> bool:
        """One heartbeat (and a pending stop, if any); False once the lease is lost. A database that cannot be
        written for a moment costs one beat, not the lease: the next beat tries again."""
        try:
            with self.db.session() as session:
                hold(session, self.campaign_id, self.runner, self.clock())
                if self._stop_reason is not None and not self._stop_written:
                    campaign = session.get_one(Campaign, self.campaign_id)
                    if campaign.status == CampaignStatus.RUNNING:
                        set_campaign_status(session, campaign, CampaignStatus.STOPPING, reason=self._stop_reason)
                    self._stop_written = True
            if self._after_stop_written is not None:
                after, self._after_stop_written = self._after_stop_written, None
                after()
        except LeaseLost as exc:
            self.lost_to = str(exc)
            return False
        except Exception:  # whatever a write raised: the database locked, unwritable, gone
            # The loop meets the same fault at its next write and says so in one line; this thread never prints a
            # traceback of its own, and tries again at the next beat.
            return True
        self.beats += 1
        return True

    def _beat_until_done(self) -> None:
        while not self._done.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._done.is_set() or not self.beat():
                return

    @contextmanager
    def stop_on_signals(self, announce: Callable[[str], None]) -> Iterator[None]:
        """While inside, SIGTERM and SIGINT stop the campaign at its next safe point, as `peirce stop` does
        (experiments now running finish), and `announce` says so in one line; a second SIGINT interrupts at once.

        Call from the main thread (Python runs signal handlers there). The handler only records the signal: the
        heartbeat thread writes the stop and then announces it, since a handler runs between any two bytecodes of
        the main thread, an import half done among them. The Prefect engine swaps in its own SIGTERM handler while
        a flow runs; the flow puts this one back around its loop (`cycle/flow.py`), and a SIGTERM that lands in
        Prefect's handler outside it ends the flow run, which the CLI turns into the same stop
        (`release_after_signal`)."""
        received: list[str] = []

        def handle(signum: int, _frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if received and signum == signal.SIGINT:
                raise KeyboardInterrupt
            if not received:
                line = f"{name} received: stopping after the experiments now running"
                self.request_stop(f"stopped by signal {name}", then=lambda: announce(line))
            received.append(name)

        previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def release_after_error(db: Database, campaign_id: int, message: str, runner: str | None = None) -> None:
    """The loop raised: record why, mark the campaign failed, and free the lease. With `runner` given, only while
    that runner still holds it: a runner that lost its lease leaves the campaign to the one that holds it."""
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        if runner is not None and campaign.runner != runner:
            return
        set_campaign_status(session, campaign, CampaignStatus.FAILED, reason=message)
        campaign.runner = None


def release_after_signal(db: Database, campaign_id: int, runner: str, reason: str) -> None:
    """An engine ended its run at once on a signal (Prefect ends its flow run on SIGTERM): the campaign is stopped
    with `reason`, its lease freed, while `runner` still holds it. Experiments sent and not finished stay in doubt
    for the next `peirce resume` to reconcile, as after a kill."""
    with db.session() as session:
        campaign = session.get_one(Campaign, campaign_id)
        if campaign.runner != runner:
            return
        set_campaign_status(session, campaign, CampaignStatus.STOPPED, reason=reason)
        campaign.runner = None


def request_stop(db: Database, ref: str) -> str:
    """Ask a campaign to stop at its next safe point (experiments already running finish)."""
    with db.session() as session:
        campaign = find_campaign(session, ref)
        if campaign.status in FINISHED:
            return f"'{campaign.name}' is already {campaign.status}"
        if campaign.status == CampaignStatus.CREATED or not (
            campaign.runner and lease_alive(campaign.runner, campaign.heartbeat_at)
        ):
            set_campaign_status(session, campaign, CampaignStatus.STOPPED, reason=STOPPED_BY_REQUEST)
            campaign.runner = None
            return f"'{campaign.name}' stopped (no runner was active)"
        set_campaign_status(session, campaign, CampaignStatus.STOPPING, reason=STOPPED_BY_REQUEST)
        return f"'{campaign.name}' will stop after the experiments now running (runner {campaign.runner})"


@dataclass(frozen=True)
class RunnerState:
    """Who holds a campaign's lease, when it last said so, and whether it is alive (for `peirce status`)."""

    runner: str | None
    heartbeat_at: datetime | None
    alive: bool


def runner_state(session: Session, campaign: Campaign, now: datetime | None = None) -> RunnerState:
    runner, heartbeat = campaign.runner, _aware(campaign.heartbeat_at)
    return RunnerState(runner, heartbeat, bool(runner) and lease_alive(runner, heartbeat, now))


def lease_alive(runner: str | None, heartbeat_at: datetime | None, now: datetime | None = None) -> bool:
    """Whether the process holding a lease may still be running the campaign.

    On this host the process table answers: a live pid is a live runner however old its heartbeat (it may be in a
    long step), a dead one is gone however fresh. On another host only the heartbeat can answer: fresh is live.
    """
    host, _, pid = (runner or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _zombie(int(pid))
    heartbeat = _aware(heartbeat_at)
    if heartbeat is None:
        return False
    return (now or utcnow()) - heartbeat < HEARTBEAT_STALE_AFTER


def _zombie(pid: int) -> bool:
    """Whether `pid` has died and only waits to be reaped: a runner killed outright whose parent died with it (a
    worker and its flow run, on a lost computer) stays a zombie until init reaps it, and where init does not reap,
    for ever; signal 0 still finds it. Linux's /proc says so; elsewhere a live pid counts as alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The command name, in parentheses, may hold spaces: the state is the first field after its closing one.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; we always write UTC.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def last_claim(session: Session, campaign_id: int, runner: str | None = None) -> dict[str, Any] | None:
    """The detail of the last event that recorded a claim of the campaign (by `runner`, when given): it names the
    runner, and a worker's flow run adds its flow run id and work pool (see `claim`)."""
    details = session.scalars(
        select(Event.detail)
        .where(
            Event.campaign_id == campaign_id,
            Event.entity == "campaign",
            # Only claims: the event of a crashed flow run also names a runner, the dead one.
            Event.kind.in_([EventKind.STATE, EventKind.RUNNER_REPLACED]),
        )
        .order_by(Event.id.desc())
        .limit(_CLAIMS_LOOKED_BACK)
    )
    for detail in details:
        if detail and "runner" in detail and (runner is None or detail["runner"] == runner):
            return dict(detail)
    return None


def continue_command(session: Session, campaign: Campaign) -> str:
    """The command that continues `campaign` where it last ran: on a work pool's workers when a worker's flow run
    last claimed it (`peirce submit NAME --pool POOL`: a `peirce resume` would run it wherever it is typed, away
    from the instruments), else `peirce resume NAME`."""
    pool = (last_claim(session, campaign.id) or {}).get("work_pool")
    return f"peirce submit {campaign.name} --pool {pool}" if pool else f"peirce resume {campaign.name}"


_CLAIMS_LOOKED_BACK = 500  # campaign events searched back for the last claim: far more than one run writes
