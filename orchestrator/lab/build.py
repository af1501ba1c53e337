"""Building the lab a campaign runs on from its spec: a test-function or lookup simulator, or a station.

A lab is anything with `run(parameters, key) -> SimulationResult`, safe to call from several threads, plus the
`max_concurrency` it allows and, for labs that can only run listed points, `candidates()`. A station's run also
takes a journal (its actions are written to the database as they happen) and must be closed after the campaign.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from instruments.station import Journal
from orchestrator.campaign.spec import CampaignSpec, FunctionLab, LookupLab
from orchestrator.campaign.station import StationLab
from orchestrator.errors import SpecError
from orchestrator.lab.station import StationRuntime
from planners.space import CategoricalParameter, MoleculeParameter
from simulators.base import SimulationResult
from simulators.functions import FunctionSimulator
from simulators.lookup import Factor, LookupSimulator, TableError


class Lab(Protocol):
    def run(self, parameters: Mapping[str, Any], key: str) -> SimulationResult: ...


class BuiltLab:
    """A lab with what the orchestrator needs to know about it."""

    def __init__(
        self,
        simulator: Lab,
        max_concurrency: int,
        candidates: list[dict[str, Any]] | None = None,
        station: StationRuntime | None = None,
    ) -> None:
        self.simulator = simulator
        self.max_concurrency = max_concurrency
        self.candidates = candidates
        self.station = station

    def run(self, parameters: Mapping[str, Any], key: str, journal: Journal | None = None) -> SimulationResult:
        if self.station is not None:
            return self.station.run(parameters, key, journal)
        return self.simulator.run(parameters, key)

    def close(self) -> None:
        """Release instruments (safe state, ports closed, twins stopped); a no-op for simulators."""
        if self.station is not None:
            self.station.close()


def build_lab(spec: CampaignSpec) -> BuiltLab:
    """Construct the lab; raises SpecError naming the field when the lab cannot serve the campaign."""
    lab = spec.lab
    if isinstance(lab, FunctionLab):
        outcome = lab.outcome or spec.objectives[0].name
        simulator = FunctionSimulator(
            lab.simulator, [p.name for p in spec.space], outcome, lab.noise_std, lab.seed, lab.delay_s
        )
        return BuiltLab(simulator, lab.max_concurrency)
    if isinstance(lab, LookupLab):
        return _build_lookup(spec, lab)
    if isinstance(lab, StationLab):
        runtime = StationRuntime(lab)
        return BuiltLab(runtime, lab.max_concurrency, station=runtime)
    raise SpecError("lab", f"unsupported lab {lab!r}")  # unreachable: the spec's union is closed


def _build_lookup(spec: CampaignSpec, lab: LookupLab) -> BuiltLab:
    factors = []
    for parameter in spec.space:
        column = lab.columns.get(parameter.name, parameter.name)
        if isinstance(parameter, MoleculeParameter):
            factors.append(Factor(parameter.name, column, "smiles", aliases=dict(parameter.smiles)))
        elif isinstance(parameter, CategoricalParameter):
            factors.append(Factor(parameter.name, column, "text"))
        else:
            factors.append(Factor(parameter.name, column, "number"))
    outcomes = {o.name: lab.outcomes.get(o.name, o.name) for o in spec.objectives}
    try:
        simulator = LookupSimulator(lab.table, factors, outcomes, delay_s=lab.delay_s)
    except TableError as exc:
        raise SpecError(exc.field, str(exc)) from None
    for i, parameter in enumerate(spec.space):
        if not parameter.is_finite:
            raise SpecError(
                f"space[{i}].type", "a lookup table answers only listed values; use discrete, not continuous"
            )
        missing = simulator.missing_values(parameter.name, parameter.values)
        if missing:
            shown = ", ".join(repr(v) for v in missing[:5]) + (" …" if len(missing) > 5 else "")
            raise SpecError(
                f"space[{i}]", f"{len(missing)} value(s) of '{parameter.name}' are not in {lab.table.name}: {shown}"
            )
    in_space = [p for p in simulator.points() if spec.search_space().contains(p)]
    return BuiltLab(simulator, lab.max_concurrency, candidates=in_space)
