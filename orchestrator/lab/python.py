"""A lab that is a Python function: `lab: {python: "package.module:function"}`, or a name registered by another
package in the `peirce.labs` entry point group (`lab: {python: "my-lab"}`).

The function takes an experiment's parameters (a dict) and returns its outcomes (`{objective: value}`); it is also
given the lab's `options` as keyword arguments, and, when it takes them, `key` (the experiment's idempotency key),
`attempt` (1 for the first attempt, 2 for the first retry…: the key stays the same through retries, so a function
that should draw anew on a retry uses this; it is read from the database, so it holds in a resumed process too)
and `journal` (a callable `journal(kind, detail)` that writes an event of the experiment, such as the steps a robot
twin runs), and `smiles` ({parameter: SMILES} of the molecules chosen for the molecule parameters: the lab makes
structures, the campaign names them). The function may instead return a `simulators.base.SimulationResult`:
`SimulationResult(infeasible=True, reason="no product")` says the science said no (the experiment ends
`infeasible`, fed to the feasibility model, never retried), and `SimulationResult(values={...})` is the same as the
mapping. With a `duration`, each experiment takes that long in the lab's time: its results are held in a request
released when the time is up (`people.scheduled`), so the campaign can pause meanwhile. It is
resolved when the lab is built, so `peirce validate` and `peirce run` refuse a function that cannot be imported
before anything is written (`lab.python: …`). An exception raised inside it is the experiment's failure
(`LabFailure`, retried under the same key as the budget allows) with its message; an answer that is not one finite
number per objective is a failure no retry can heal.
"""

from __future__ import annotations

import importlib
import inspect
import math
import sys
from collections.abc import Callable, Mapping
from datetime import timedelta
from importlib.metadata import entry_points
from typing import Any

from instruments.station import Journal
from orchestrator.campaign.spec import LabDuration, PythonLab
from orchestrator.errors import SpecError
from orchestrator.lab.contract import HandedToPerson, LabFailure, LabResult
from orchestrator.store.models import utcnow
from simulators.base import SimulationResult

ENTRY_POINT_GROUP = "peirce.labs"
FIELD = "lab.python"

LabFunction = Callable[[dict[str, Any]], Mapping[str, Any]]


def resolve(lab: PythonLab) -> LabFunction:
    """The function `lab.python` names; SpecError (`lab.python`) when it cannot be found or is not callable."""
    target = lab.python.strip()
    if lab.path is not None:
        if not lab.path.is_dir():
            raise SpecError("lab.path", f"not a folder: {lab.path}")
        if str(lab.path) not in sys.path:
            # The import system finds modules through sys.path; a folder the campaign names is searched first.
            sys.path.insert(0, str(lab.path))
    function = _import(target) if ":" in target else _registered(target)
    if not callable(function):
        raise SpecError(FIELD, f"'{target}' is {type(function).__name__}, not a function")
    return function


def _import(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SpecError(FIELD, f"'{target}' is not `package.module:function`")
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as exc:  # the module itself may raise anything while it is imported
        raise SpecError(FIELD, f"cannot import module '{module_name}': {_said(exc)}") from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise SpecError(FIELD, f"module '{module_name}' has no '{attribute}'")
        found = getattr(found, part)
    return found


def _registered(name: str) -> Any:
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        known = sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
        listed = f" (registered: {', '.join(known)})" if known else " (none is registered)"
        raise SpecError(
            FIELD,
            f"'{name}' is neither `package.module:function` nor a lab registered in the '{ENTRY_POINT_GROUP}' "
            f"entry points{listed}",
        )
    entry = next(iter(found))
    try:
        return entry.load()
    except Exception as exc:  # loading imports the registering package, which may raise anything
        raise SpecError(FIELD, f"cannot load '{name}' ({entry.value}): {_said(exc)}") from None


def _said(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PythonFunctionLab:
    """A Python function behind the lab contract. It holds nothing, so `close()` has nothing to release."""

    candidates: list[dict[str, Any]] | None = None  # the function answers any point of the space

    def __init__(
        self,
        function: LabFunction,
        outcomes: list[str],
        max_concurrency: int,
        name: str,
        options: Mapping[str, Any] | None = None,
        duration: LabDuration | None = None,
        molecules: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.function = function
        self.outcomes = outcomes
        self.max_concurrency = max_concurrency
        self.name = name
        self.options = dict(options or {})
        self.duration = duration
        self.molecules = {name: dict(smiles) for name, smiles in (molecules or {}).items()}
        takes = _keywords(function)
        # Only what the function names is passed: a function of the parameters alone stays valid.
        self.takes: set[str] | _Any = _Any() if takes is None else takes

    def run(self, parameters: Mapping[str, Any], key: str, journal: Journal | None = None) -> LabResult:
        extra: dict[str, Any] = dict(self.options)
        if "key" in self.takes:
            extra["key"] = key
        if "attempt" in self.takes:
            extra["attempt"] = getattr(journal, "attempt", 1)  # a bare callable journal: a first attempt
        if "journal" in self.takes:
            extra["journal"] = journal
        if "smiles" in self.takes:
            extra["smiles"] = {name: self.molecules[name].get(parameters[name], "") for name in self.molecules}
        try:
            answer = self.function(dict(parameters), **extra)
        except Exception as exc:  # whatever the function raised is the experiment's failure, with its message
            raise LabFailure(f"{self.name} raised {_said(exc)}", detail={"error": type(exc).__name__}) from exc
        if isinstance(answer, SimulationResult):
            if answer.infeasible:
                if self.duration is not None:
                    # A scheduled release carries values only; saying no after the lab's time is not supported yet.
                    raise LabFailure(
                        f"{self.name} said infeasible, which a lab with a duration cannot report",
                        retryable=False,
                        detail={"error": "BadAnswer"},
                    )
                return LabResult(infeasible=True, reason=answer.reason or f"{self.name} said infeasible")
            answer = answer.values
        values = self._values(answer)
        if self.duration is not None:
            raise HandedToPerson(self._scheduled(parameters, values, self.duration))
        return LabResult(values=values)

    def _scheduled(
        self, parameters: Mapping[str, Any], values: dict[str, float], duration: LabDuration
    ) -> dict[str, Any]:
        """The request detail of an experiment whose results are due after its duration: released then by the
        runner that waits, or by `peirce resume` (`people.scheduled`); a person may enter real results before."""
        lab_s = duration.simulated_s(dict(parameters))
        ready_at = utcnow() + timedelta(seconds=lab_s / duration.time_scale)
        length = lab_s / {"s": 1, "min": 60, "h": 3600, "d": 86400}[duration.unit]
        return {
            "instructions": f"runs on {self.name} for {length:g} {duration.unit} of lab time; its results are "
            f"released at {ready_at:%Y-%m-%d %H:%M:%S} UTC",
            "outcomes": {name: "" for name in self.outcomes},
            "ready_at": ready_at.isoformat(),
            "lab_time_s": lab_s,
            "values": values,
            "by": f"lab {self.name}"[:128],
        }

    def _values(self, answer: Any) -> dict[str, float]:
        def refuse(why: str) -> LabFailure:
            return LabFailure(f"{self.name} returned {why}", retryable=False, detail={"error": "BadAnswer"})

        if not isinstance(answer, Mapping):
            raise refuse(f"{type(answer).__name__}, not {{outcome: value}}")
        unknown = [str(name) for name in answer if name not in self.outcomes]
        if unknown:
            raise refuse(f"unknown outcome(s) {', '.join(unknown)} (outcomes: {', '.join(self.outcomes)})")
        values: dict[str, float] = {}
        for name in self.outcomes:
            if name not in answer:
                raise refuse(f"no value for outcome '{name}'")
            value = _number(answer[name])
            if value is None:
                raise refuse(f"{answer[name]!r} for '{name}', not a finite number")
            values[name] = value
        return values

    def close(self) -> None:
        return None


def _number(value: Any) -> float | None:
    """A finite float from a number of any kind (Python, numpy, a scalar tensor); None for anything else."""
    if isinstance(value, bool | str | bytes):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _keywords(function: Callable[..., Any]) -> set[str] | None:
    """The keyword arguments `function` takes by name; None when it takes any (`**kwargs`) or cannot be inspected."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # some builtins and extension functions have no signature to read
        return None
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


class _Any:
    """Every name: what a function with `**kwargs` takes."""

    def __contains__(self, name: object) -> bool:
        return True


def build_python_lab(
    lab: PythonLab, outcomes: list[str], molecules: Mapping[str, Mapping[str, str]] | None = None
) -> PythonFunctionLab:
    """The lab of a `lab: {python: …}` spec, its function resolved now (SpecError when it cannot be, or when it does
    not take one of `lab.options`). `molecules`: {parameter: {name: SMILES}} of the space's molecule parameters."""
    function = resolve(lab)
    takes = _keywords(function)
    for name in lab.options:
        if takes is not None and name not in takes:
            raise SpecError(f"lab.options.{name}", f"'{lab.python.strip()}' takes no argument '{name}'")
    return PythonFunctionLab(
        function,
        outcomes,
        lab.max_concurrency,
        lab.python.strip(),
        options=lab.options,
        duration=lab.duration,
        molecules=molecules,
    )
