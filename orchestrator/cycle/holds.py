"""Lab-wide holds on shared instruments: a Prefect global concurrency limit of one slot per instrument.

A campaign whose station names a lab file shares the lab's instruments with the lab's other campaigns, in other
processes and on other computers. An experiment holds an instrument from the first of its consecutive protocol
steps on it to the last (the station's own rule, `instruments.station`), so its sample is never left on an
instrument another experiment is using; it holds one instrument at a time, so no two experiments can each hold
what the other waits for (no deadlock, and no need to order holds). The hold is the slot of the global
concurrency limit `instrument:<lab>:<name>` (limit 1, created when missing), taken with Prefect's
`concurrency(..., strict=True)` under a lease that Prefect renews while the hold lasts and that lapses on its
own if the process dies.

Waiting is bounded by the lab file's `holds.timeout_s`; past it the experiment fails, retryable, with one reason
naming the instrument and who holds it ("waited 30 s for hotplate, held by campaign B (experiment 4) since
10:02:11"). Prefect's slots are polled, not queued, so the order is kept by the lab's journal: first come, first
served, each waiter asking Prefect only at its turn (`campaign.holds.turn_to_take`). Every wait, hold and release
is an event of the experiment, so `peirce holds` says who holds what and who waits, across the lab's campaigns.

A Prefect server restarting (an upgrade, a crash) is waited out, not failed on: a hold that cannot reach the
server asks again every few seconds within the same `holds.timeout_s` (journalled once as
`hold-server-unreachable`), and a slot that cannot be given back is left to lapse with its lease
(`hold-release-failed`): what the experiment measured stands either way.

Holds need a Prefect server every campaign of the lab talks to (PREFECT_API_URL). The inline engine, and the
Prefect engine on its temporary in-process server, take none: a campaign there has its instruments to itself
(the station still keeps its own experiments apart), and `peirce run` says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

from instruments.station import HoldInstrument, HoldTimeout, Journal
from orchestrator.campaign.holds import current_holds, slot_name, turn_to_take
from orchestrator.campaign.station import SharedInstruments
from orchestrator.store.database import Database

# How long a hold outlives a runner that died holding it (Prefect renews the lease while the hold lasts).
LEASE_S = 60.0
# How often a hold asks again while the Prefect server cannot be reached.
SERVER_RETRY_S = 2.0
# How often a waiting experiment reads the lab's journal for its turn, and how long one try at Prefect's slot lasts.
TURN_POLL_S = 0.1
TRY_S = 2.0


def shared_holds(db: Database, shared: SharedInstruments) -> PrefectHolds | None:
    """Holds on the lab's Prefect server (PREFECT_API_URL); None without one: a temporary in-process server is this
    process's alone, and holds there would keep no other campaign away."""
    return PrefectHolds(db, shared) if PREFECT_API_URL.value() else None


class PrefectHolds:
    """The holds of one campaign's experiments on the lab's shared instruments."""

    def __init__(self, db: Database, shared: SharedInstruments, lease_s: float = LEASE_S) -> None:
        self.db = db
        self.lab = shared.lab
        self.timeout_s = shared.hold_timeout_s
        self.lease_s = lease_s
        self._created: set[str] = set()
        self._lock = threading.Lock()

    def for_attempt(self, write: Journal, experiment_id: int, attempt: int) -> HoldInstrument:
        """The hold callback of one attempt at an experiment, journalling through `write`."""

        def hold(instrument: str) -> Any:
            return self._hold(instrument, write, (experiment_id, attempt))

        return hold

    def ensure_limit(self, slot: str) -> None:
        """Create the instrument's limit (one slot) unless it exists; two runners creating it at once both succeed."""
        with self._lock:
            if slot in self._created:
                return
            with get_client(sync_client=True) as client:
                try:
                    client.read_global_concurrency_limit_by_name(slot)
                except ObjectNotFound:
                    with suppress(ObjectAlreadyExists):  # another runner created it meanwhile
                        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=slot, limit=1))
            self._created.add(slot)

    @contextmanager
    def _hold(self, instrument: str, write: Journal, asker: tuple[int, int]) -> Iterator[None]:
        slot = slot_name(self.lab, instrument)
        where = {"instrument": instrument, "slot": slot}
        write("hold-waiting", where)
        started = time.monotonic()
        stack = self._take(slot, instrument, where, write, started, asker)
        taken = time.monotonic()
        write("hold-taken", {**where, "waited_s": round(taken - started, 3)})
        try:
            yield
        finally:
            # Written before the slot is given back, so the journal's interval lies inside the slot's.
            write("hold-released", {**where, "held_s": round(time.monotonic() - taken, 3)})
            try:
                stack.close()
            except Exception as exc:  # what the experiment did stands; an unreleased slot lapses with its lease
                write(
                    "hold-release-failed",
                    {**where, "message": f"{_said(exc)}; the hold lapses within {self.lease_s:g} s"},
                )

    def _take(
        self, slot: str, instrument: str, where: dict[str, str], write: Journal, started: float, asker: tuple[int, int]
    ) -> ExitStack:
        """The slot, taken in turn: first come, first served by the lab's journal (`turn_to_take`: Prefect's slots
        are polled, not queued, so whoever asked again first would win), asking Prefect only at this attempt's
        turn. Waits while another holds it, and while the server cannot be reached (restarting, or a network
        fault), both within `holds.timeout_s` of `started`; past it the experiment fails, retryable, with one reason.
        Nothing has been sent to the instrument yet."""
        unreachable: str | None = None
        while True:
            left = self.timeout_s - (time.monotonic() - started)
            if left <= 0:
                reason = f"waited {self.timeout_s:g} s for {instrument}, {self.holder(slot)}"
                break
            if not self._my_turn(slot, asker):
                time.sleep(min(TURN_POLL_S, left))
                continue
            stack = ExitStack()
            try:
                self.ensure_limit(slot)
                # A short try: the journal said the slot is free, so Prefect answers at once unless a holder the
                # journal does not show (a dead runner, whose lease runs on) still has it.
                stack.enter_context(
                    concurrency(
                        slot, occupy=1, timeout_seconds=min(left, TRY_S), lease_duration=self.lease_s, strict=True
                    )
                )
                return stack
            except TimeoutError:
                continue
            except Exception as exc:
                if not _unreachable(exc):
                    raise
                if unreachable is None:
                    unreachable = _said(exc)
                    write("hold-server-unreachable", {**where, "message": unreachable})
                if left > SERVER_RETRY_S:
                    time.sleep(SERVER_RETRY_S)
                    continue
                reason = (
                    f"waited {self.timeout_s:g} s for {instrument}: the Prefect server did not answer ({unreachable})"
                )
                break
        write("hold-timeout", {**where, "message": reason})
        raise HoldTimeout(reason, instrument=instrument)

    def _my_turn(self, slot: str, asker: tuple[int, int]) -> bool:
        with self.db.session() as session:
            return turn_to_take(session, slot, *asker)

    def holder(self, slot: str) -> str:
        """Who holds the slot now, in words, from the database."""
        with self.db.session() as session:
            held = [h for h in current_holds(session, slot) if h.state == "held"]
        if not held:
            return "held by nobody peirce knows of (another program, or a runner that died and whose lease runs on)"
        first = held[0]
        return f"held by {first.who} since {first.since:%H:%M:%S}"


def _unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the Prefect server could not answer now (down, restarting, overloaded: 503 under a lab's
    load), rather than that it refused the request. Prefect wraps what its client met in an error of its own
    (`ConcurrencySlotAcquisitionError`), so the chain of causes is read."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain is a few links long; the bound only guards against a cycle
        if seen is None:
            return False
        if isinstance(seen, httpx.TransportError):
            return True
        if isinstance(seen, httpx.HTTPStatusError):
            return seen.response.status_code >= 500
        seen = seen.__cause__ or seen.__context__
    return False


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
