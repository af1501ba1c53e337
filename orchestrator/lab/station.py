"""The lab of a station campaign: its drivers (found by entry point), its protocol, and, in twin mode, the
device twins and the bench they share. Building it checks everything against the drivers' declared skills and
connects nothing; the first experiment connects (starting the twins first when the campaign runs on twins), and
`close()` brings every instrument to its safe state and closes the ports.

`StationRuntime` speaks the instruments' language (measurements, `InstrumentError`); `StationAdapter` puts it
behind the lab contract, so an instrument's failure reaches the cycle as a `LabFailure` and its measurements as a
`LabResult`, the same words a simulator's do. Instruments from a lab file are shared with the lab's other
campaigns: each experiment holds one lab-wide while it uses it, through `ExperimentJournal.hold`. A manual step of
the protocol is handed to a person through the journal the cycle gives (`ExperimentJournal.ask_person`); a step
not done ends the experiment as `LabAbandoned`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from instruments.contract import Driver
from instruments.errors import InstrumentError
from instruments.limits import SafetyLimits
from instruments.registry import load_driver
from instruments.station import (
    ActionStep,
    AnalysisStep,
    AskPerson,
    HoldInstrument,
    Journal,
    ManualStep,
    ProtocolStepError,
    Station,
    Step,
    StepNotDone,
    WaitStep,
)
from orchestrator.campaign.station import AnalysisStepSpec, ManualStepSpec, StationLab, StepSpec, WaitStepSpec
from orchestrator.errors import SpecError
from orchestrator.lab.contract import ExperimentJournal, LabAbandoned, LabFailure, LabResult
from simulators.twins.bench import Bench
from simulators.twins.registry import load_twin
from simulators.twins.server import FaultPlan, TwinServer


class InstrumentFailure(LabFailure):
    """An instrument error as the cycle sees it: retryable or not, with its fault kind and instrument (recorded
    with the failure event, so every fault a campaign meets is in the events of the experiment it hit)."""

    def __init__(self, error: InstrumentError) -> None:
        self.kind = error.kind
        self.instrument = error.instrument
        self.limit = getattr(error, "limit", None)
        detail = {"fault": self.kind, "instrument": self.instrument, **({"limit": self.limit} if self.limit else {})}
        super().__init__(str(error), retryable=error.retryable, detail=detail)


def _step(step: StepSpec) -> Step:
    if isinstance(step, WaitStepSpec):
        return WaitStep(step.wait, step.unit)
    if isinstance(step, ManualStepSpec):
        return ManualStep(step.manual, step.outcome, step.unit)
    if isinstance(step, AnalysisStepSpec):
        return AnalysisStep(step.analyse, dict(step.input), dict(step.args), dict(step.save))
    return ActionStep(step.instrument, step.action, dict(step.args), dict(step.save))


class StationRuntime:
    def __init__(self, lab: StationLab) -> None:
        self.spec = lab
        self.protocol: list[Step] = [_step(step) for step in lab.protocol]
        self.driver_classes: dict[str, type[Driver]] = {}
        for name, instrument in lab.instruments.items():
            try:
                self.driver_classes[name] = load_driver(instrument.driver)
            except InstrumentError as exc:
                raise SpecError(f"lab.instruments.{name}.driver", exc.message) from None
            try:
                self.driver_classes[name].serial.with_overrides(dict(instrument.serial))
            except (KeyError, TypeError) as exc:
                raise SpecError(f"lab.instruments.{name}.serial", f"unknown line setting {exc}") from None
        # Checked now against unconnected drivers, so a protocol error is a SpecError before anything starts.
        try:
            Station(self._make_drivers({n: "loop://" for n in lab.instruments}), self.protocol, lab.outcomes)
        except ProtocolStepError as exc:
            raise SpecError(f"lab.{exc.field}", exc.reason) from None
        except InstrumentError as exc:
            raise SpecError("lab.protocol", exc.message) from None
        if lab.twins is not None:
            for name, instrument in lab.instruments.items():
                try:
                    load_twin(instrument.driver)
                except KeyError as exc:
                    raise SpecError(f"lab.instruments.{name}.driver", str(exc.args[0])) from None
        self.station: Station | None = None
        self.servers: list[Any] = []
        self.bench: Any = None
        self._lock = threading.Lock()
        self._connected: set[str] = set()
        self.shared_ports = False  # set by the first experiment run under lab-wide holds

    def _make_drivers(self, ports: Mapping[str, str], line: Mapping[str, Any] | None = None) -> dict[str, Driver]:
        return {
            name: self.driver_classes[name](
                ports[name],
                instrument=name,
                limits=SafetyLimits.from_mapping({k: v.model_dump() for k, v in instrument.limits.items()}),
                settings={**instrument.serial, **(line or {})},
            )
            for name, instrument in self.spec.instruments.items()
        }

    # --- lifetime ---------------------------------------------------------------------------------------------------

    def start(self, journal: Journal | None = None, *, connect: bool = True) -> Station:
        """Start the twins (in twin mode, once) and connect every driver (unless `connect` is false: instruments
        shared lab-wide are connected by the hold, see `_connect_while_held`). An experiment that finds the station
        unconnected (first use, or a connection that failed) connects it; a failure is that experiment's error."""
        with self._lock:
            if self.station is None:
                on_arrive, time_scale, line = None, 1.0, None
                if self.spec.twins is not None:
                    ports, on_arrive, time_scale = self._start_twins()
                    if self.spec.twins.transport == "pty":
                        # A pty carries bytes, not bits: character size and parity mean nothing there, and some
                        # kernels refuse 7-bit or parity settings on one. 7E1 devices are exercised over TCP.
                        line = {"bytesize": 8, "parity": "N"}
                else:
                    ports = {name: str(instrument.port) for name, instrument in self.spec.instruments.items()}
                self.station = Station(
                    self._make_drivers(ports, line),
                    self.protocol,
                    self.spec.outcomes,
                    on_arrive=on_arrive,
                    time_scale=time_scale,
                )
            for name in self.station.drivers if connect else ():
                if name not in self._connected:
                    # A connect that failed half-way (a fault during set-up) is done again from the start, by the
                    # next experiment, whose journal then holds it.
                    self.station.connect([name], journal)
                    self._connected.add(name)
            return self.station

    def _start_twins(self) -> tuple[dict[str, str], Any, float]:

        settings = self.spec.twins
        assert settings is not None
        self.bench = Bench(time_scale=settings.time_scale, seed=settings.seed)
        ports = {}
        for i, (name, instrument) in enumerate(self.spec.instruments.items()):
            twin = load_twin(instrument.driver)(self.bench, instrument=name, **instrument.twin)
            line = self.driver_classes[name].serial.with_overrides(dict(instrument.serial))
            # A late answer comes after the driver's timeout but inside its resync grace, as a slow device's does.
            faults = FaultPlan(
                rate=settings.faults.rate,
                kinds=tuple(settings.faults.kinds),
                seed=settings.seed * 1000 + i,
                late_s=line.timeout_s + line.grace_s / 2,
            )
            server = TwinServer(twin, faults, name=name)
            ports[name] = server.start_pty() if settings.transport == "pty" else server.start_tcp()
            self.servers.append(server)
        return ports, self.bench.place, settings.time_scale

    def run(
        self,
        parameters: Mapping[str, Any],
        key: str,
        journal: Journal | None = None,
        ask_person: AskPerson | None = None,
        hold: HoldInstrument | None = None,
    ) -> dict[str, float]:
        """Run the protocol for one experiment; its outcomes by name. Raises `InstrumentError`."""
        if hold is None:
            return dict(self.start(journal).run(parameters, key, journal, ask_person))
        # Shared with the lab's other campaigns: a port is open only while this experiment holds its instrument
        # lab-wide. A serial port is opened by one process at a time, a serial device server (and a TCP twin) serves
        # one client at a time: a campaign that kept its ports open would keep every other campaign out.
        self.shared_ports = True
        station = self.start(journal, connect=False)
        return dict(station.run(parameters, key, journal, ask_person, self._connect_while_held(station, hold, journal)))

    def _connect_while_held(self, station: Station, hold: HoldInstrument, journal: Journal | None) -> HoldInstrument:
        """The lab-wide hold, with the instrument's port opened (and its identity checked) once it is held, and
        closed before it is given back. A failure after the port opened is handled by the station while the
        instrument is still held (it brings it to its safe state first)."""

        @contextmanager
        def held(instrument: str) -> Iterator[None]:
            driver = station.drivers[instrument]
            with hold(instrument):
                try:
                    station.connect([instrument], journal)
                    yield
                finally:
                    driver.close()

        return held

    def close(self) -> None:
        with self._lock:
            if self.station is not None:
                if self.shared_ports:
                    # Ports of shared instruments are closed already, at each hold's end; an abort now would open
                    # one again and reach an instrument another campaign may be using.
                    for driver in self.station.drivers.values():
                        driver.close()
                else:
                    self.station.close()
                self.station = None
                self._connected.clear()
            for server in self.servers:
                server.stop()  # stopped twins keep their records (requests served, faults injected)

    @property
    def injected_faults(self) -> list[Any]:
        """Faults the twins injected (twin mode), with the instrument they hit."""
        return [(server.name, fault) for server in self.servers for fault in server.injected]


class StationAdapter:
    """A station as a lab: the runtime's measurements as a `LabResult`, its instrument errors as `LabFailure`."""

    candidates: list[dict[str, Any]] | None = None  # a station can run any point of the space its limits allow

    def __init__(self, station: StationRuntime, max_concurrency: int) -> None:
        self.station = station
        self.max_concurrency = max_concurrency

    def run(self, parameters: Mapping[str, Any], key: str, journal: Journal | None = None) -> LabResult:
        # A manual step reaches a person through the journal the cycle hands in (it knows the database; the
        # station does not): the station is given that callback, and waits on it.
        ask_person = journal.ask_person if isinstance(journal, ExperimentJournal) else None
        # Instruments shared with other campaigns are held lab-wide through the hold the cycle hands in (it knows
        # the Prefect server; the station does not).
        hold = journal.hold if isinstance(journal, ExperimentJournal) else None
        try:
            return LabResult(values=self.station.run(parameters, key, journal, ask_person, hold))
        except StepNotDone as exc:
            raise LabAbandoned(exc.message) from None
        except InstrumentError as exc:
            raise InstrumentFailure(exc) from None

    def close(self) -> None:
        self.station.close()
