"""Instruments shared lab-wide are connected only while an experiment holds them.

Two campaigns' stations (two `StationRuntime`s, as two runners would have) use one balance served over TCP by its
twin, which serves one client at a time as a serial device server does. The lab-wide hold here is a lock the two
share (the cycle's is a Prefect global concurrency slot; what matters to the station is only that it is exclusive).
Each experiment must open the port after taking the hold and close it before giving the hold back: a station that
kept its port open from its first experiment on would leave the other waiting at connect until its driver timed out.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from orchestrator.campaign.station import StationLab
from orchestrator.lab.station import StationRuntime
from simulators.twins.bench import Bench
from simulators.twins.mettler_sics import MettlerSicsTwin
from simulators.twins.server import FaultPlan, TwinServer

EXPERIMENTS_EACH = 3


class LabWideHold:
    """An exclusive hold on each instrument, recording who held it when (monotonic clock)."""

    def __init__(self) -> None:
        self.locks: dict[str, threading.Lock] = {}
        self.intervals: list[tuple[str, str, float, float]] = []
        self._guard = threading.Lock()

    def for_campaign(self, campaign: str) -> Any:
        @contextmanager
        def hold(instrument: str) -> Iterator[None]:
            with self._guard:
                lock = self.locks.setdefault(instrument, threading.Lock())
            with lock:
                taken = time.monotonic()
                try:
                    yield
                finally:
                    self.intervals.append((instrument, campaign, taken, time.monotonic()))

        return hold


def _station(port: str) -> StationLab:
    return StationLab.model_validate(
        {
            "station": "weighing",
            "shared": {"lab": "bench_lab", "hold_timeout_s": 30},
            "instruments": {"balance": {"driver": "mettler-sics", "port": port, "serial": {"timeout_s": 2.0}}},
            "protocol": [
                {"instrument": "balance", "action": "weigh", "save": {"mass_g": "mass"}},
                {"wait": 0.05, "unit": "s"},  # the balance stays held through the wait: a window for an overlap
                {"instrument": "balance", "action": "weigh", "save": {"mass_g": "again"}},
            ],
            "outcomes": {"drift": "again - mass + x"},
        }
    )


def test_two_campaigns_take_turns_on_a_one_client_instrument_and_each_opens_it_only_while_holding_it() -> None:
    server = TwinServer(MettlerSicsTwin(Bench(time_scale=1000.0, seed=1)), FaultPlan(rate=0.0), name="balance")
    port = server.start_tcp()
    hold = LabWideHold()
    runtimes = {name: StationRuntime(_station(port)) for name in ("a", "b")}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in runtimes}
    errors: list[BaseException] = []

    def campaign(name: str) -> None:
        try:
            for i in range(EXPERIMENTS_EACH):
                journal: list[tuple[str, dict[str, Any]]] = []

                def write(kind: str, detail: dict[str, Any], journal: list[Any] = journal) -> None:
                    journal.append((kind, detail))

                values = runtimes[name].run({"x": float(i)}, f"{name}-{i}", write, hold=hold.for_campaign(name))
                kinds = [kind for kind, _ in journal]
                # The port is opened (identity checked) inside the hold, once per experiment, before its first act.
                assert kinds.count("connect-done") == 1, kinds
                assert kinds.index("connect-done") < kinds.index("action-started"), kinds
                results[name].append(values)
        except BaseException as exc:  # reported by the main thread: an assertion in a thread would be lost
            errors.append(exc)

    threads = [threading.Thread(target=campaign, args=(name,)) for name in runtimes]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        assert {name: len(values) for name, values in results.items()} == {"a": 3, "b": 3}
        for name, values in results.items():
            # The outcome carries the experiment's own parameter: every result is the experiment's that asked.
            assert [round(v["drift"]) for v in values] == [0, 1, 2], (name, values)
        spans = sorted(hold.intervals, key=lambda span: span[2])
        assert len(spans) == 2 * EXPERIMENTS_EACH
        assert {campaign for _, campaign, _, _ in spans} == {"a", "b"}
        overlaps = [(p, q) for p, q in itertools.pairwise(spans) if q[2] < p[3]]
        assert not overlaps, overlaps
        served = len(server.log)
        for runtime in runtimes.values():
            runtime.close()
        # Closing a station whose instruments are shared sends nothing: no abort reaches an instrument another
        # campaign may be using by now.
        assert len(server.log) == served
    finally:
        for runtime in runtimes.values():
            runtime.close()
        server.stop()


class ReleaseRefused(Exception):
    """What a lab-wide hold raises when it cannot be given back (its server unreachable)."""


def test_a_hold_that_cannot_be_given_back_fails_once_and_leaves_the_station_usable() -> None:
    servers = [
        TwinServer(MettlerSicsTwin(Bench(time_scale=1000.0, seed=i)), FaultPlan(rate=0.0), name=f"balance-{i}")
        for i in range(2)
    ]
    ports = [server.start_tcp() for server in servers]
    station = StationLab.model_validate(
        {
            "station": "two_balances",
            "shared": {"lab": "bench_lab", "hold_timeout_s": 30},
            "instruments": {
                name: {"driver": "mettler-sics", "port": port, "serial": {"timeout_s": 2.0}}
                for name, port in zip(("first", "second"), ports, strict=True)
            },
            "protocol": [
                {"instrument": "first", "action": "weigh", "save": {"mass_g": "a"}},
                {"instrument": "second", "action": "weigh", "save": {"mass_g": "b"}},
            ],
            "outcomes": {"total": "a + b"},
        }
    )
    refuse = {"first"}

    @contextmanager
    def hold(instrument: str) -> Iterator[None]:
        yield
        if instrument in refuse:
            raise ReleaseRefused(f"{instrument}: the server did not answer")

    runtime = StationRuntime(station)
    try:
        journal: list[tuple[str, dict[str, Any]]] = []
        try:
            runtime.run({}, "e-1", lambda kind, detail: journal.append((kind, detail)), hold=hold)
        except ReleaseRefused as exc:
            assert "first" in str(exc)  # the hold's own error, not a second release of the station's reservation
        else:
            raise AssertionError("a hold that could not be given back went unsaid")
        refuse.clear()
        # Nothing stays reserved in this process: the next experiment takes both instruments.
        values = runtime.run({}, "e-2", lambda kind, detail: None, hold=hold)
        assert set(values) == {"total"}
    finally:
        runtime.close()
        for server in servers:
            server.stop()
