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
10:02:11"). Prefect's slots are polled, not queued: waiters take a free slot in roughly the order they asked,
not strictly first come, first served. Every wait, hold and release is an event of the experiment, so
`peirce holds` says who holds what and who waits, across the lab's campaigns.

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

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

from instruments.station import HoldInstrument, HoldTimeout, Journal
from orchestrator.campaign.holds import current_holds, slot_name
from orchestrator.campaign.station import SharedInstruments
from orchestrator.store.database import Database

# How long a hold outlives a runner that died holding it (Prefect renews the lease while the hold lasts).
LEASE_S = 60.0


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

    def for_attempt(self, write: Journal) -> HoldInstrument:
        """The hold callback of one attempt at an experiment, journalling through `write`."""

        def hold(instrument: str) -> Any:
            return self._hold(instrument, write)

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
    def _hold(self, instrument: str, write: Journal) -> Iterator[None]:
        slot = slot_name(self.lab, instrument)
        self.ensure_limit(slot)
        where = {"instrument": instrument, "slot": slot}
        write("hold-waiting", where)
        started = time.monotonic()
        stack = ExitStack()
        try:
            stack.enter_context(
                concurrency(slot, occupy=1, timeout_seconds=self.timeout_s, lease_duration=self.lease_s, strict=True)
            )
        except TimeoutError:
            holder = self.holder(slot)
            reason = f"waited {self.timeout_s:g} s for {instrument}, {holder}"
            write("hold-timeout", {**where, "message": reason})
            raise HoldTimeout(reason, instrument=instrument) from None
        with stack:
            taken = time.monotonic()
            write("hold-taken", {**where, "waited_s": round(taken - started, 3)})
            try:
                yield
            finally:
                write("hold-released", {**where, "held_s": round(time.monotonic() - taken, 3)})

    def holder(self, slot: str) -> str:
        """Who holds the slot now, in words, from the database."""
        with self.db.session() as session:
            held = [h for h in current_holds(session, slot) if h.state == "held"]
        if not held:
            return "held by nobody peirce knows of (another program, or a runner that died and whose lease runs on)"
        first = held[0]
        return f"held by {first.who} since {first.since:%H:%M:%S}"
