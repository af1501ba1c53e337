"""A lab that is a person: each experiment is handed out with its instructions filled in, and its results are
entered by hand later (`peirce next` shows the work, `peirce record` / `peirce tell` enter what was measured).

`run` never measures anything: it raises `HandedToPerson` with what the person is to do, and the cycle leaves the
experiment running with a request open for its results (`cycle.experiment`). How long the runner then waits in its
process before the campaign pauses is the lab's `wait` (`people.waiting.wait_limit_s`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from instruments.station import Journal, fill_in
from orchestrator.campaign.spec import ManualLab
from orchestrator.lab.contract import HandedToPerson, LabResult
from planners.space import Objective


class ManualAdapter:
    """A manual lab behind the lab contract. Handing out is instant, so any number of experiments go out at once."""

    candidates: list[dict[str, Any]] | None = None  # a person can run any point of the space
    max_concurrency = 16

    def __init__(self, lab: ManualLab, objectives: list[Objective]) -> None:
        self.instructions = lab.manual.instructions
        self.outcomes = {o.name: lab.manual.outcomes.get(o.name, "") for o in objectives}
        self.units = {o.name: o.unit for o in objectives}

    def work(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """What the person is given for one experiment: the instructions filled in, the outcomes to measure."""
        if self.instructions.strip():
            text = fill_in(self.instructions, parameters)
        else:
            shown = ", ".join(f"{k} = {fill_in('{' + k + '}', parameters)}" for k in parameters)
            text = f"Run the experiment at {shown}"
        return {"instructions": text, "outcomes": dict(self.outcomes), "units": dict(self.units)}

    def run(self, parameters: Mapping[str, Any], key: str, journal: Journal | None = None) -> LabResult:
        raise HandedToPerson(self.work(parameters))

    def close(self) -> None:
        return None
