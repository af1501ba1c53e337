"""The lab contract: what the cycle may ask of a lab, and what a lab may answer.

The cycle speaks only this contract. A simulator, a station of instruments or (later) a person doing the work
adapts to it (`lab.simulated`, `lab.station`), so the cycle never needs to know which one it is driving:
- `run(parameters, key, journal)` runs one experiment under its idempotency key and returns a `LabResult`
  (values measured, or infeasible with the reason); a lab that could not run it raises `LabFailure`; a lab that is
  a person raises `HandedToPerson`: the work is handed out, and its results are entered later;
- `max_concurrency` says how many experiments the lab runs at once, `candidates` the only points it can run
  (None when it can run any point of the space);
- `close()` releases what the lab holds (instruments to their safe state, ports closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from instruments.station import AskPerson, HoldInstrument, Journal

Point = Mapping[str, Any]


@dataclass(frozen=True)
class LabResult:
    """Measured outcomes of one experiment (outcome name -> value), or an infeasible result with its reason.

    Infeasible is a fact about the science (no product, a constraint violated) and is fed to the model; a lab
    that could not run the experiment raises `LabFailure` instead.
    """

    values: Mapping[str, float] = field(default_factory=dict)
    infeasible: bool = False
    reason: str = ""


class LabFailure(Exception):
    """The lab could not run the experiment. `retryable` says whether trying again under the same key could help;
    `detail` is what the failure event records besides the message (an instrument's fault kind and name)."""

    def __init__(self, message: str, *, retryable: bool = True, detail: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.detail: dict[str, Any] = dict(detail or {})


class HandedToPerson(Exception):
    """The experiment was handed to a person, who will enter its results (`peirce record`, `peirce tell`, the Python
    API's `tell`). Not a failure: the experiment waits, running, with a request open for its results. `detail`
    is what the request records for the person (instructions, the outcomes to enter)."""

    def __init__(self, detail: Mapping[str, Any] | None = None) -> None:
        super().__init__("handed to a person")
        self.detail: dict[str, Any] = dict(detail or {})


class LabAbandoned(Exception):
    """The lab gave the experiment up for a reason that is neither a fact about the science nor a fault of the lab:
    a stop asked while a person's step was awaited, a person saying the step could not be done. The experiment ends
    abandoned (never fed to the model, not counted against the budget), its requests to people withdrawn."""


@dataclass(frozen=True)
class ExperimentJournal:
    """What the cycle hands a lab for one attempt: a `Journal` (call it to write what happens), `ask_person`,
    which hands one manual step to a person and waits for the number they enter (None where nobody can be asked),
    and `hold`, which takes the lab-wide hold on an instrument shared with other campaigns (None where the
    instruments are this campaign's alone, or no lab-wide holds can be taken)."""

    write: Journal
    ask_person: AskPerson | None = None
    hold: HoldInstrument | None = None
    attempt: int = 1  # the experiment's attempt (1, then 2 for its first retry…): it survives a new process

    def __call__(self, kind: str, detail: dict[str, Any]) -> None:
        self.write(kind, detail)


class InstrumentHolds(Protocol):
    """Lab-wide holds on shared instruments (the cycle's `holds.PrefectHolds`): the hold callback of one attempt,
    which journals each wait, hold and release through `write`."""

    def for_attempt(self, write: Journal, experiment_id: int, attempt: int) -> HoldInstrument: ...


class Lab(Protocol):
    """Anything the cycle can run experiments on; `run` must be safe to call from several threads at once."""

    @property
    def max_concurrency(self) -> int: ...

    @property
    def candidates(self) -> list[dict[str, Any]] | None: ...

    def run(self, parameters: Point, key: str, journal: Journal | None = None) -> LabResult: ...

    def close(self) -> None: ...
