"""Building the lab a campaign runs on from its spec: a test-function or lookup simulator, a station, a person
(a manual lab), or a Python function.

Every lab built here speaks the lab contract (`lab.contract.Lab`); building checks everything that can be checked
without running an experiment and raises SpecError naming the field at fault.
"""

from __future__ import annotations

from instruments.errors import InstrumentError
from instruments.station import placeholders, whole_placeholder
from orchestrator.campaign.spec import CampaignSpec, FunctionLab, LookupLab, ManualLab, PythonLab
from orchestrator.campaign.station import ActionStepSpec, StationLab
from orchestrator.errors import SpecError
from orchestrator.lab.contract import Lab
from orchestrator.lab.manual import ManualAdapter
from orchestrator.lab.python import build_python_lab
from orchestrator.lab.simulated import SimulatedLab
from orchestrator.lab.station import StationAdapter, StationRuntime
from planners.space import CategoricalParameter, ContinuousParameter, MoleculeParameter
from simulators.functions import FunctionSimulator
from simulators.lookup import Factor, LookupSimulator, TableError


def build_lab(spec: CampaignSpec) -> Lab:
    """Construct the lab; raises SpecError naming the field when the lab cannot serve the campaign."""
    lab = spec.lab
    if isinstance(lab, FunctionLab):
        outcome = lab.outcome or spec.objectives[0].name
        simulator = FunctionSimulator(
            lab.simulator, [p.name for p in spec.space], outcome, lab.noise_std, lab.seed, lab.delay_s
        )
        return SimulatedLab(simulator, lab.max_concurrency)
    if isinstance(lab, LookupLab):
        return _build_lookup(spec, lab)
    if isinstance(lab, StationLab):
        runtime = StationRuntime(lab)
        _check_levels(spec, lab, runtime)
        return StationAdapter(runtime, lab.max_concurrency)
    if isinstance(lab, ManualLab):
        return ManualAdapter(lab, spec.objectives)
    if isinstance(lab, PythonLab):
        molecules = {p.name: p.smiles for p in spec.space if isinstance(p, MoleculeParameter)}
        return build_python_lab(lab, [o.name for o in spec.objectives], molecules)
    raise SpecError("lab", f"unsupported lab {lab!r}")  # unreachable: the spec's union is closed


def _check_levels(spec: CampaignSpec, lab: StationLab, runtime: StationRuntime) -> None:
    """Each level of a categorical parameter that an action's argument takes whole (`{precursor_set}`) is one the
    driver accepts, with the step's other arguments as written (`Driver.check_arguments`): a level no instrument can
    act on is a SpecError naming it now, not a failed experiment later. A step whose other arguments are
    placeholders too is left to the run (their values are not known yet)."""
    index = {p.name: i for i, p in enumerate(spec.space) if isinstance(p, CategoricalParameter)}
    for s, step in enumerate(lab.protocol):
        if not isinstance(step, ActionStepSpec):
            continue
        for argument, value in step.args.items():
            name = whole_placeholder(value)
            others = [v for a, v in step.args.items() if a != argument]
            if name not in index or any(placeholders(v) for v in others):
                continue
            driver = runtime.driver_classes[step.instrument]
            parameter = spec.space[index[name]]
            assert isinstance(parameter, CategoricalParameter)
            for level in parameter.levels:
                try:
                    driver.check_arguments(step.action, {**step.args, argument: level})
                except InstrumentError as exc:
                    raise SpecError(
                        f"space[{index[name]}].levels", f"'{level}' (lab.protocol[{s}].args.{argument}): {exc.message}"
                    ) from None


def _build_lookup(spec: CampaignSpec, lab: LookupLab) -> SimulatedLab:
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
        if isinstance(parameter, ContinuousParameter) or not parameter.is_finite:
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
    return SimulatedLab(simulator, lab.max_concurrency, candidates=in_space)
