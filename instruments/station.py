"""A station: instruments on their ports, and a protocol that turns one planned experiment into actions.

The protocol is data, not code (as Bluesky's plans are): a list of steps, each an action on a named instrument
with arguments in which `{parameter}` is replaced by the experiment's value, a wait, or a manual step that a person
does (weigh the precipitate) and whose number they enter. Measurements the actions return, and the numbers people
enter, are saved under names, and the station's outcome formulas turn them into objective values. The station
reaches people only through the `ask_person` callback its caller gives it (instruments know nothing of databases).

Reservations: an experiment holds one instrument at a time, from its first step there through the consecutive
steps (and waits) on it, and releases it when its next step needs another instrument. So two experiments never
use one instrument at once, while different instruments work for different experiments in parallel; and since
no experiment ever waits for a second instrument while holding one, there is no deadlock. Where other
processes share the instruments (campaigns of one lab), the caller gives a `hold` callback: the station takes the
lab-wide hold on an instrument right after its own reservation and gives it back with it, so the same rule holds
across processes and computers (one instrument at a time, hence no deadlock between two instruments either).

Journal: before an action is sent the station writes `action-started` through the journal callback (the
orchestrator commits it to the database), then `action-done` or `action-failed` with the result or the typed
error and the transcript slice of exactly that action. A failure brings the instrument the experiment holds to
its safe state (pump stopped, heater off; instruments it used before may serve another experiment by now and are
left alone) and is raised as the typed error, for the orchestrator to record and retry.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from instruments.analysis import AnalysisError, load_analysis
from instruments.arrays import ArrayData
from instruments.clock import SYSTEM_CLOCK, Clock
from instruments.contract import Driver
from instruments.errors import InstrumentError, InvalidAction
from instruments.formula import Formula, FormulaError

Journal = Callable[[str, dict[str, Any]], None]
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_UNIT_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class ActionStep:
    instrument: str
    action: str
    args: Mapping[str, Any] = field(default_factory=dict)
    save: Mapping[str, str] = field(default_factory=dict)  # returned measurement -> name in the formulas


@dataclass(frozen=True)
class WaitStep:
    wait: float | str  # a number or "{parameter}"
    unit: str = "s"


@dataclass(frozen=True)
class ManualStep:
    """A step a person does ("Weigh the precipitate"), whose one number is saved under `outcome` for the formulas."""

    manual: str  # what the person does; '{parameter}' is replaced by the experiment's value
    outcome: str
    unit: str = ""


@dataclass(frozen=True)
class AnalysisStep:
    """Turns saved arrays into numbers with a registered analysis (`instruments.analysis`): `input` maps the
    analysis's array arguments to saved array names, `args` are its numbers, `save` keeps its results by name."""

    analyse: str
    input: Mapping[str, str]
    args: Mapping[str, Any] = field(default_factory=dict)
    save: Mapping[str, str] = field(default_factory=dict)  # returned number -> name in the formulas


Step = ActionStep | WaitStep | ManualStep | AnalysisStep

# Who a manual step's journal names as its instrument.
PERSON = "person"


@dataclass(frozen=True)
class PersonEntry:
    """What a person entered for a manual step, and who."""

    value: float
    by: str


# Hands protocol step `index` (the step, its text filled in) to a person and waits for the entry. Given by whoever
# can reach people (the orchestrator, through the lab adapter): the station itself knows only instruments.
AskPerson = Callable[[int, ManualStep, str], PersonEntry]

# The lab-wide hold on one instrument, open while the experiment uses it: entering waits while another experiment
# (of any campaign sharing the instrument) holds it, and raises `HoldTimeout` when the wait is too long.
HoldInstrument = Callable[[str], contextlib.AbstractContextManager[Any]]


class ProtocolStepError(InvalidAction):
    """A step of a station's protocol that its drivers cannot carry out; `field` names it (`protocol[3].action`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class StepNotDone(InstrumentError):
    """A manual step was not done: the person said it could not be, or the runner was asked to stop while it waited,
    or nobody can be asked. Not retried; what it means for the experiment (abandoned) is the orchestrator's call."""

    kind = "not-done"
    retryable = False


class HoldTimeout(InstrumentError):
    """Another experiment held the instrument for longer than this one may wait (nothing was sent; retryable)."""

    kind = "hold-timeout"


class OutcomeError(InstrumentError):
    """The measurements could not be turned into objective values (a formula failed on them)."""

    kind = "outcome"
    retryable = False


def whole_placeholder(value: Any) -> str | None:
    """The parameter name if the value is exactly one `{name}`, else None."""
    match = _PLACEHOLDER.fullmatch(value.strip()) if isinstance(value, str) else None
    return match.group(1) if match else None


def substitute(value: Any, parameters: Mapping[str, Any]) -> Any:
    """Replace `{name}` by the parameter's value. A value that is exactly one placeholder keeps its type."""
    if not isinstance(value, str):
        return value
    whole = whole_placeholder(value)
    if whole:
        return parameters[whole]
    return _PLACEHOLDER.sub(lambda m: str(parameters[m.group(1)]), value)


def placeholders(value: Any) -> set[str]:
    return set(_PLACEHOLDER.findall(value)) if isinstance(value, str) else set()


def fill_in(text: str, parameters: Mapping[str, Any]) -> str:
    """`text` for a person to read, each `{name}` replaced by the parameter's value (a number to six significant
    digits: 87.2346, not 87.23456789012; a placeholder naming no parameter is left as it is)."""

    def shown(match: re.Match[str]) -> str:
        if match.group(1) not in parameters:
            return match.group(0)
        value = parameters[match.group(1)]
        if isinstance(value, float):
            return f"{value:.6g}"
        return str(value)

    return _PLACEHOLDER.sub(shown, text)


class Station:
    """Runs experiments on connected drivers. `on_arrive(instrument, sample)` is called when an experiment takes an
    instrument (where a robot or a person would move the sample's vial; with twins the bench moves it).
    `time_scale` divides waits (1 with real instruments; the twins' clock speed with twins); `clock` is what the
    waits sleep on (the wall clock by default; the drivers' and bench's manual clock in a fast, single-threaded
    test)."""

    def __init__(
        self,
        drivers: Mapping[str, Driver],
        protocol: list[Step],
        outcomes: Mapping[str, str],
        *,
        on_arrive: Callable[[str, str], None] | None = None,
        time_scale: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self.drivers = dict(drivers)
        self.protocol = list(protocol)
        self.outcomes = {name: Formula(text) for name, text in outcomes.items()}
        self.on_arrive = on_arrive
        self.time_scale = time_scale
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._reservations = {name: threading.Lock() for name in self.drivers}
        self._runs: dict[str, int] = {}
        self._samples_lock = threading.Lock()
        self.check()

    def check(self) -> None:
        """Every step names a known instrument, action and arguments; every formula name is saved or a parameter."""
        saved: set[str] = set()
        arrays: set[str] = set()  # saved names that hold arrays: inputs of analyses, never of formulas
        for i, step in enumerate(self.protocol):
            if isinstance(step, WaitStep):
                continue
            if isinstance(step, AnalysisStep):
                self._check_analysis(i, step, arrays)
                saved |= set(step.save.values())
                continue
            if isinstance(step, ManualStep):
                saved.add(step.outcome)
                continue
            driver = self.drivers.get(step.instrument)
            if driver is None:
                raise ProtocolStepError(
                    f"protocol[{i}].instrument", f"no instrument '{step.instrument}' in the station"
                )
            try:
                action = driver.action(step.action)
            except InvalidAction as exc:
                raise ProtocolStepError(f"protocol[{i}].action", exc.message) from None
            unknown = set(step.args) - {a.name for a in action.arguments}
            if unknown:
                raise ProtocolStepError(
                    f"protocol[{i}].args",
                    f"{step.action} takes no {', '.join(sorted(unknown))} "
                    f"(takes: {', '.join(a.name for a in action.arguments) or 'nothing'})",
                )
            for returned in step.save:
                if returned not in action.returns:
                    raise ProtocolStepError(
                        f"protocol[{i}].save",
                        f"{step.action} returns no '{returned}' (returns: {', '.join(action.returns) or 'nothing'})",
                    )
            saved |= set(step.save.values())
            arrays |= {name for returned, name in step.save.items() if returned in action.arrays}
        for outcome, formula in self.outcomes.items():
            used = sorted(set(formula.names) & arrays)
            if used:
                raise ProtocolStepError(
                    f"outcomes.{outcome}", f"{', '.join(used)} is an array: an analysis step turns it into numbers"
                )
        self.saved_names = saved - arrays
        self.array_names = arrays

    def _check_analysis(self, i: int, step: AnalysisStep, arrays: set[str]) -> None:
        try:
            analysis = load_analysis(step.analyse)
            analysis.bind(step.args)
        except InvalidAction as exc:
            field = "analyse" if exc.message.startswith("no analysis") else "args"
            raise ProtocolStepError(f"protocol[{i}].{field}", exc.message) from None
        if set(step.input) != set(analysis.inputs):
            raise ProtocolStepError(
                f"protocol[{i}].input", f"{step.analyse} takes the array(s) {', '.join(analysis.inputs)}"
            )
        for argument, name in step.input.items():
            if name not in arrays:
                raise ProtocolStepError(
                    f"protocol[{i}].input.{argument}", f"'{name}' is not an array saved by an earlier step"
                )
        for returned in step.save:
            if returned not in analysis.returns:
                raise ProtocolStepError(
                    f"protocol[{i}].save",
                    f"{step.analyse} returns no '{returned}' (returns: {', '.join(analysis.returns)})",
                )

    # --- running an experiment ------------------------------------------------------------------------------------

    def run(
        self,
        parameters: Mapping[str, Any],
        key: str,
        journal: Journal | None = None,
        ask_person: AskPerson | None = None,
        hold: HoldInstrument | None = None,
    ) -> dict[str, float]:
        """Run the protocol for one experiment; returns outcome name -> value. Raises typed InstrumentErrors.

        A manual step is handed to a person through `ask_person` and waits for the entry; without it, the step
        cannot be done (`StepNotDone`). `hold`, where instruments are shared beyond this process, takes the lab-wide
        hold on each instrument for as long as the experiment holds it here."""
        write = journal or (lambda kind, detail: None)
        sample = self._new_sample(key)
        write("sample", {"sample": sample})
        values: dict[str, float] = {}
        arrays: dict[str, ArrayData] = {}
        held: str | None = None
        touched: list[str] = []
        shared = contextlib.ExitStack()  # the lab-wide hold on `held`, when there is one
        try:
            for index, step in enumerate(self.protocol):
                if isinstance(step, WaitStep):
                    seconds = float(substitute(step.wait, parameters)) * _UNIT_SECONDS[step.unit]
                    write("wait", {"step": index, "seconds": seconds, "instrument": held})
                    self.clock.sleep(seconds / self.time_scale)
                    continue
                if isinstance(step, ManualStep):
                    # The sample goes to a person, for as long as they take: the instrument it was on is free for
                    # other experiments meanwhile (and taken again, in turn, if a later step needs it).
                    previous, held = held, None  # cleared first: a release that fails is not tried again
                    self._release(previous, shared)
                    values[step.outcome] = self._ask(index, step, parameters, write, ask_person)
                    continue
                if isinstance(step, AnalysisStep):
                    values.update(self._analyse(index, step, arrays, write))
                    continue
                if step.instrument != held:
                    previous, held = held, None  # cleared first: a release that fails is not tried again
                    self._release(previous, shared)
                    self._reservations[step.instrument].acquire()
                    if hold is not None:
                        try:
                            shared.enter_context(hold(step.instrument))
                        except BaseException:
                            self._reservations[step.instrument].release()  # nothing was sent: nothing to abort
                            raise
                    held = step.instrument
                    self.drivers[held].limits.experiment = key
                    if held not in touched:
                        touched.append(held)
                    if self.on_arrive is not None:
                        self.on_arrive(held, sample)
                result = self._act(index, step, parameters, write)
                for returned, name in step.save.items():
                    if isinstance(result[returned], ArrayData):
                        arrays[name] = result[returned]
                    else:
                        values[name] = result[returned]
        except InstrumentError as exc:
            # Only the instrument this experiment holds: the others it used may serve another experiment by now.
            if held is not None:
                self._abort(held, write, exc)
            raise
        finally:
            self._release(held, shared)
            for name in touched:
                self.drivers[name].limits.forget(key)
        return self._outcomes(parameters, values)

    def _new_sample(self, key: str) -> str:
        """Each run of an experiment gets a fresh sample (vial), labelled `<key>/<run>`: a retry under the same
        idempotency key starts from new material, never from what a failed attempt left in the vial."""
        with self._samples_lock:
            self._runs[key] = self._runs.get(key, 0) + 1
            return f"{key}/{self._runs[key]}"

    def _act(self, index: int, step: ActionStep, parameters: Mapping[str, Any], write: Journal) -> dict[str, Any]:
        driver = self.drivers[step.instrument]
        arguments = {name: substitute(value, parameters) for name, value in step.args.items()}
        where = {"step": index, "instrument": step.instrument, "action": step.action, "args": arguments}
        write("action-started", where)  # written before a byte goes out
        mark = driver.transport.transcript.mark()
        started = time.perf_counter()
        try:
            result = driver.execute(step.action, arguments)
        except InstrumentError as exc:
            write(
                "action-failed",
                {
                    **where,
                    "error": exc.kind,
                    "message": str(exc),
                    "limit": getattr(exc, "limit", None),
                    "seconds": round(time.perf_counter() - started, 4),
                    "transcript": _slice(driver, mark),
                },
            )
            raise
        write(
            "action-done",
            {
                **where,
                # An array goes to the journal as plain data; the orchestrator stores it as a data product.
                "result": {k: v.as_dict() if isinstance(v, ArrayData) else v for k, v in result.items()},
                **({"saved": dict(step.save)} if step.save else {}),
                "seconds": round(time.perf_counter() - started, 4),
                "transcript": _slice(driver, mark),
            },
        )
        return result

    def _analyse(
        self, index: int, step: AnalysisStep, arrays: Mapping[str, ArrayData], write: Journal
    ) -> dict[str, float]:
        """An analysis step: the registered function on the saved arrays, journalled with what it read and gave (the
        inputs by saved name, so a replay finds the stored arrays and computes it again)."""
        where = {"step": index, "analyse": step.analyse, "input": dict(step.input), "args": dict(step.args)}
        try:
            result = load_analysis(step.analyse).run({arg: arrays[name] for arg, name in step.input.items()}, step.args)
        except (AnalysisError, InvalidAction) as exc:
            write("analysis-failed", {**where, "message": str(exc)})
            raise OutcomeError(f"protocol[{index}] ({step.analyse}): {exc}") from None
        write("analysis-done", {**where, "result": result})
        return {name: result[returned] for returned, name in step.save.items()}

    def _ask(
        self,
        index: int,
        step: ManualStep,
        parameters: Mapping[str, Any],
        write: Journal,
        ask_person: AskPerson | None,
    ) -> float:
        """A manual step, journalled as an action of the instrument "person": started when it is handed out, done
        with the value and who entered it (or failed, if it was not done)."""
        text = fill_in(step.manual, parameters)
        where = {
            "step": index,
            "instrument": PERSON,
            "action": text,
            "args": {"outcome": step.outcome, "unit": step.unit},
        }
        write("action-started", where)
        started = time.perf_counter()
        try:
            if ask_person is None:
                raise StepNotDone(f"protocol[{index}] is a manual step ({text}) and no person can be asked here")
            entry = ask_person(index, step, text)
        except InstrumentError as exc:
            elapsed = round(time.perf_counter() - started, 4)
            write("action-failed", {**where, "error": exc.kind, "message": str(exc), "seconds": elapsed})
            raise
        elapsed = round(time.perf_counter() - started, 4)
        write("action-done", {**where, "result": {step.outcome: entry.value}, "by": entry.by, "seconds": elapsed})
        return entry.value

    def _abort(self, name: str, write: Journal, cause: InstrumentError) -> None:
        """Bring the failed experiment's instrument to its safe state (still reserved to it); a failure is recorded."""
        driver = self.drivers[name]
        mark = driver.transport.transcript.mark()
        try:
            driver.abort()
            write("instrument-safe", {"instrument": name, "after": cause.kind, "transcript": _slice(driver, mark)})
        except InstrumentError as exc:
            write(
                "instrument-safe-failed",
                {"instrument": name, "error": exc.kind, "message": str(exc), "transcript": _slice(driver, mark)},
            )

    def _release(self, instrument: str | None, shared: contextlib.ExitStack | None = None) -> None:
        if instrument is not None:
            self.drivers[instrument].limits.experiment = None
            try:
                if shared is not None:
                    shared.close()  # the lab-wide hold first, then this process's reservation
            finally:
                self._reservations[instrument].release()

    def _outcomes(self, parameters: Mapping[str, Any], values: dict[str, float]) -> dict[str, float]:
        numbers = {k: float(v) for k, v in parameters.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        known = {**numbers, **values}
        try:
            return {name: formula.evaluate(known) for name, formula in self.outcomes.items()}
        except FormulaError as exc:
            raise OutcomeError(str(exc)) from None

    # --- lifetime -------------------------------------------------------------------------------------------------

    def connect(self, names: list[str] | None = None, journal: Journal | None = None) -> dict[str, dict[str, str]]:
        """Connect the named drivers (all by default), each connection journalled with its bytes."""
        write = journal or (lambda kind, detail: None)
        identities = {}
        for name in names if names is not None else list(self.drivers):
            driver = self.drivers[name]
            mark = driver.transport.transcript.mark()
            write("connect-started", {"instrument": name, "port": driver.transport.url})
            try:
                identities[name] = driver.connect()
            except InstrumentError as exc:
                exc.instrument = exc.instrument or name
                write(
                    "connect-failed",
                    {"instrument": name, "error": exc.kind, "message": str(exc), "transcript": _slice(driver, mark)},
                )
                raise
            write(
                "connect-done", {"instrument": name, "identity": identities[name], "transcript": _slice(driver, mark)}
            )
        return identities

    def close(self) -> None:
        for driver in self.drivers.values():
            # Closing anyway if the abort fails; the device's own watchdog or a person takes over.
            with contextlib.suppress(InstrumentError):
                driver.abort()
            driver.close()


def _slice(driver: Driver, mark: int) -> list[dict[str, object]]:
    return [entry.as_dict() for entry in driver.transport.transcript.since(mark)]
