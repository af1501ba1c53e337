"""The campaign file: a pydantic v2 model loaded from YAML, with errors that name the field at fault.

Loading goes in three steps, each of which can reject the file with one `SpecError` (`field: message`):
1. YAML syntax (with line and column), a key given twice in one mapping, nesting deeper than any campaign needs,
2. the schema (types, unknown keys, bounds, SMILES that RDKit rejects),
3. cross-field rules (duplicate names, constraints over unknown or non-numeric parameters, mixtures whose bounds
   cannot sum to their total, constraints that no point satisfies, a simulator that does not fit the space). Checks
   that need the lab itself (the lookup table's columns) run when the lab is built.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from instruments.formula import Formula, FormulaError
from instruments.station import placeholders, whole_placeholder
from orchestrator.campaign.approval import ApprovalRule, check_rules
from orchestrator.campaign.knowledge_file import check_file
from orchestrator.campaign.lab_file import resolve_station
from orchestrator.campaign.library_file import resolve_libraries
from orchestrator.campaign.notes_file import check_note
from orchestrator.campaign.notify import Webhook
from orchestrator.campaign.station import (
    STATION_MODELS,
    AnalysisStepSpec,
    ManualStepSpec,
    StationLab,
    WaitStepSpec,
)
from orchestrator.campaign.yaml_file import load_yaml
from orchestrator.errors import SpecError
from orchestrator.records import provenance
from orchestrator.records.base import StrictModel as _Strict
from planners.base import PlanningProblem
from planners.hypotheses.guards import SafetyRules
from planners.hypotheses.settings import HypothesisSettings
from planners.settings import BayesianSettings, PlannerSettings
from planners.space import (
    ContinuousParameter,
    Identifier,
    LinearConstraint,
    Mixture,
    Objective,
    OutcomeConstraint,
    Parameter,
    Space,
    constraints_satisfiable,
)
from simulators.functions import TEST_FUNCTIONS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*$")
_DURATION_UNITS = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class Budget(_Strict):
    experiments: int = Field(ge=1, description="Experiments to run in all (completed, failed and infeasible count).")
    batch_size: int = Field(default=1, ge=1, description="Experiments planned and run together in one cycle.")
    wall_clock: float | None = Field(
        default=None, gt=0, description="Active time limit in seconds, or a string such as '90m', '2h'."
    )
    max_retries: int = Field(default=1, ge=0, description="Times a failed experiment is retried (same key).")

    @field_validator("wall_clock", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @model_validator(mode="after")
    def _batch_fits(self) -> Budget:
        if self.batch_size > self.experiments:
            raise ValueError(f"batch_size {self.batch_size} exceeds the budget of {self.experiments} experiments")
        return self


class StopCriteria(_Strict):
    target_reached: bool = Field(default=True, description="Stop when every objective with a target reaches it.")
    no_improvement_cycles: int | None = Field(
        default=None, ge=1, description="Stop after this many cycles without a better value of any objective."
    )


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a string such as '90m', '2h', '3d' (other values are left to the field's type)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"'{value}' is not a duration such as 3600, '90m' or '2h'")
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    return value


class ApprovalPolicy(_Strict):
    """Who must approve planned experiments before they run. `none`: nobody; `batch`: a person approves every
    batch; `rules`: a person approves what a rule catches (`campaign.approval`), the rest goes ahead. Waiting never
    approves: after `timeout` the campaign pauses (status `waiting`), its runner gone, until the people have answered
    and it is resumed."""

    policy: Literal["none", "batch", "rules"] = "none"
    rules: list[ApprovalRule] = Field(
        default_factory=list,
        description="What a person must approve (policy `rules`, implied when rules are given); one key per rule.",
    )
    timeout: float = Field(
        default=0.0,
        ge=0,
        description="How long the runner waits for an answer before it pauses the campaign (seconds or '30m').",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if data is None or data == "none":
            return {}
        if data == "batch":
            return {"policy": "batch"}
        if isinstance(data, dict) and "rules" in data and "policy" not in data:
            return {"policy": "rules", **data}
        return data

    @field_validator("timeout", mode="before")
    @classmethod
    def _parse_timeout(cls, value: Any) -> Any:
        return parse_duration(value)

    @model_validator(mode="after")
    def _rules_with_their_policy(self) -> ApprovalPolicy:
        if self.policy == "rules" and not self.rules:
            raise ValueError("policy `rules` needs at least one rule under `rules`")
        if self.policy != "rules" and self.rules:
            raise ValueError(f"rules are given but the policy is `{self.policy}`; drop `policy` (rules imply it)")
        return self


class _LabSpec(_Strict):
    delay_s: float = Field(default=0.0, ge=0, description="Seconds each simulated experiment takes.")
    max_concurrency: int = Field(default=8, ge=1, description="Experiments the lab runs at the same time.")


class FunctionLab(_LabSpec):
    """A classic test function evaluated at the point (numeric parameters in declared order)."""

    simulator: Literal["branin", "hartmann6", "ackley"]
    noise_std: float = Field(default=0.0, ge=0)
    seed: int = Field(default=0, ge=0)
    outcome: Identifier | None = Field(default=None, description="Objective it answers (default: the only one).")


class LookupLab(_LabSpec):
    """Answers from a CSV table of real measurements; a point not in the table is an error."""

    simulator: Literal["lookup"]
    table: Path = Field(description="CSV file, relative to the campaign file.")
    columns: dict[Identifier, str] = Field(
        default_factory=dict, description="Parameter -> column (default: same name)."
    )
    outcomes: dict[Identifier, str] = Field(
        default_factory=dict, description="Objective -> column (default: same name)."
    )


class LabDuration(_Strict):
    """How long one experiment of a function lab takes in the lab's own (simulated) time, and how fast that time
    passes. An experiment that takes days is not waited for in a process: its results are released when its time
    is up (`people.scheduled`), the runner waits for them in its process at most `wait`, then the campaign pauses
    (status `waiting`) and `peirce resume` collects them once they are due."""

    length: float | str = Field(
        description="Duration of one experiment in `unit`: a number, or a formula over numeric parameters."
    )
    unit: Literal["s", "min", "h", "d"] = Field(default="d", description="Unit of `length`.")
    time_scale: float = Field(
        default=1.0, gt=0, description="Simulated seconds per wall-clock second (1: real time; 86400: a day a second)."
    )
    wait: float = Field(
        default=0.0,
        ge=0,
        description="How long the runner waits in its process for results not yet due before the campaign pauses "
        "(seconds or '10m'); 0 pauses at once.",
    )

    @field_validator("wait", mode="before")
    @classmethod
    def _parse_wait(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("length", mode="before")
    @classmethod
    def _not_a_truth_value(cls, value: Any) -> Any:
        # YAML's `yes`/`true` would otherwise pass as 1 (a duration of one unit nobody wrote).
        if isinstance(value, bool):
            raise ValueError(f"{str(value).lower()} is not a number or a formula")
        return value

    @field_validator("length")
    @classmethod
    def _length(cls, value: float | str) -> float | str:
        if isinstance(value, str):
            try:
                Formula(value)
            except FormulaError as exc:
                raise ValueError(str(exc)) from None
        elif not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        elif value < 0:
            raise ValueError(f"{value:g} is negative")
        return value

    def simulated_s(self, parameters: dict[str, Any]) -> float:
        """Simulated seconds one experiment at `parameters` takes (never negative)."""
        length = self.length if not isinstance(self.length, str) else Formula(self.length).evaluate(parameters)
        return max(0.0, float(length)) * _DURATION_UNITS[self.unit]


class PythonLab(_Strict):
    """A Python function as the lab: it takes an experiment's parameters (a dict) and returns its outcomes
    ({objective: value}); an exception it raises is the experiment's failure, retried as the budget allows. Named as
    `package.module:function`, or by a name another package registers in the `peirce.labs` entry point group."""

    python: str = Field(
        min_length=1,
        description="`package.module:function`, or a lab registered in the `peirce.labs` entry points.",
    )
    path: Path | None = Field(
        default=None,
        description="A folder to import the module from (relative to the campaign file), if it is not installed.",
    )
    max_concurrency: int = Field(
        default=1, ge=1, description="Calls at the same time (on threads); a function is not assumed thread-safe."
    )
    options: dict[Identifier, Any] = Field(
        default_factory=dict, description="Keyword arguments passed to the function with every call (a seed, rates)."
    )
    duration: LabDuration | None = Field(
        default=None,
        description="How long each experiment takes in the lab's time: its results are released when it is up.",
    )


SimulatorLab = Annotated[FunctionLab | LookupLab, Field(discriminator="simulator")]


class ManualSettings(_Strict):
    """What a person is asked to do for each experiment of a manual lab, and how long the runner waits for it."""

    outcomes: dict[Identifier, str] = Field(
        default_factory=dict,
        description="Objective -> how a person measures it, shown with the work (e.g. 'HPLC area % at 254 nm').",
    )
    instructions: str = Field(
        default="", description="What to do for one experiment; '{parameter}' is replaced by the experiment's value."
    )
    wait: float = Field(
        default=0.0,
        ge=0,
        description="How long the runner waits in its process for results before the campaign pauses (seconds or "
        "'8h'); 0 pauses at once, and `peirce resume` continues once the results are in.",
    )

    @field_validator("wait", mode="before")
    @classmethod
    def _parse_wait(cls, value: Any) -> Any:
        return parse_duration(value)


class ManualLab(_Strict):
    """A person is the lab: each batch is handed out (`peirce next`), its results entered by hand (`peirce record`,
    `peirce tell`); the campaign holds no process while it waits for them."""

    manual: ManualSettings


def _lab_kind(value: Any) -> str:
    # The tags are not keys of the file, so error paths stay `lab.instruments.pump.port`, never `lab.station-lab…`.
    if isinstance(value, dict):
        if "python" in value:
            return "python-lab"
        if "manual" in value:
            return "manual-lab"
        return "station-lab" if "station" in value else "simulator-lab"
    if isinstance(value, ManualLab):
        return "manual-lab"
    if isinstance(value, PythonLab):
        return "python-lab"
    return "station-lab" if isinstance(value, StationLab) else "simulator-lab"


LabSpec = Annotated[
    Annotated[SimulatorLab, Tag("simulator-lab")]
    | Annotated[StationLab, Tag("station-lab")]
    | Annotated[ManualLab, Tag("manual-lab")]
    | Annotated[PythonLab, Tag("python-lab")],
    Discriminator(_lab_kind),
]


class RelatedCampaign(_Strict):
    """An earlier campaign whose results the planner may learn from (transfer learning, docs/planner.md)."""

    campaign: Identifier = Field(
        description="Name of a campaign in the same database (one from an archive: `peirce archive import` it first)."
    )


class CampaignSpec(_Strict):
    """A campaign: what to vary, what to optimise, how much to spend, who plans, and which lab runs it."""

    name: Identifier = Field(description="Unique name of the campaign in its database.")
    goal: str = Field(default="", description="What the campaign is for, in plain words.")
    space: list[Parameter] = Field(min_length=1)
    objectives: list[Objective] = Field(min_length=1)
    constraints: list[LinearConstraint] = Field(default_factory=list)
    mixtures: list[Mixture] = Field(
        default_factory=list,
        description="Continuous parameters that are fractions of one whole: they sum to `total` (default 1).",
    )
    outcome_constraints: list[OutcomeConstraint] = Field(
        default_factory=list, description="Bounds on measured objectives that a good experiment must respect."
    )
    related: list[RelatedCampaign] = Field(
        default_factory=list,
        description="Earlier campaigns over the same parameters and objectives whose results the planner learns from "
        "(a multi-task model); checked against the database when the campaign starts.",
    )
    budget: Budget
    stop: StopCriteria = Field(default_factory=StopCriteria)
    planner: PlannerSettings = Field(default_factory=lambda: BayesianSettings(kind="bayesian"))
    hypotheses: HypothesisSettings = Field(default_factory=HypothesisSettings)
    safety: SafetyRules = Field(
        default_factory=SafetyRules,
        description="Forbidden regions and substructures: never proposed, never the subject of a hypothesis.",
    )
    lab: LabSpec
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    notify: list[Webhook] = Field(
        default_factory=list, description="Webhooks told when people are needed and when the campaign ends."
    )

    def search_space(self, candidates: list[dict[str, Any]] | None = None) -> Space:
        return Space(
            parameters=tuple(self.space),
            constraints=tuple(self.constraints),
            candidates=candidates,
            exclusions=tuple(self.safety.exclusions(self.space)),
            mixtures=tuple(self.mixtures),
        )

    def problem(self, candidates: list[dict[str, Any]] | None = None) -> PlanningProblem:
        return PlanningProblem(
            space=self.search_space(candidates),
            objectives=tuple(self.objectives),
            outcome_constraints=tuple(self.outcome_constraints),
        )

    def content_hash(self) -> str:
        """SHA-256 of the spec's canonical JSON (the one formula of `records.provenance`)."""
        return provenance.content_hash(self.model_dump(mode="json"))

    def placement(self) -> dict[str, dict[str, Any]]:
        """Where each of a station's instruments is reached: its port and serial settings (empty for other labs)."""
        if not isinstance(self.lab, StationLab):
            return {}
        return {name: {"port": i.port, "serial": dict(i.serial)} for name, i in self.lab.instruments.items()}

    def hash_without_placement(self) -> str:
        """The content hash with the instruments' ports and serial settings left out: the same campaign whose
        instruments were plugged in elsewhere (another port, another computer's device server) has the same."""
        content = self.model_dump(mode="json")
        for instrument in (content.get("lab") or {}).get("instruments", {}).values() if self.placement() else ():
            instrument.pop("port", None)
            instrument.pop("serial", None)
        return provenance.content_hash(content)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a campaign file, for editors (YAML language servers read it)."""
    schema = CampaignSpec.model_json_schema(mode="validation")
    # Accept the shorthands the loader accepts, so editors do not flag valid files.
    defs, properties = schema["$defs"], schema["properties"]
    for name, shorthands in (("hypotheses", ["none", "model"]), ("approval", ["none", "batch"])):
        ref = properties[name].pop("$ref")
        properties[name]["anyOf"] = [{"$ref": ref}, {"enum": shorthands}, {"type": "null"}]
    defs["Budget"]["properties"]["wall_clock"]["anyOf"].insert(0, {"type": "string", "pattern": _DURATION.pattern})
    timeout = defs["ApprovalPolicy"]["properties"]["timeout"]
    timeout["anyOf"] = [
        {"type": timeout.pop("type"), "minimum": timeout.pop("minimum")},
        {"type": "string", "pattern": _DURATION.pattern},
    ]
    for model in ("ManualSettings", "LabDuration"):
        wait = defs[model]["properties"]["wait"]
        wait["anyOf"] = [
            {"type": "number", "minimum": wait.pop("minimum")},
            {"type": "string", "pattern": _DURATION.pattern},
        ]
        del wait["type"]
    defs["Objective"]["properties"]["direction"]["enum"] += ["maximise", "minimise"]
    # A molecule parameter's molecules are listed (smiles) or read from a file (values_from) when the file is loaded.
    molecule = defs["MoleculeParameter"]
    molecule["required"] = [name for name in molecule["required"] if name != "smiles"]
    molecule["anyOf"] = [{"required": ["smiles"]}, {"required": ["values_from"]}]
    # With lab_file, a station names the lab's instruments: a list, or a mapping to narrower limits.
    station = defs["StationLab"]["properties"]
    station["instruments"] = {
        "anyOf": [
            station["instruments"],
            {"type": "array", "items": {"type": "string"}, "minItems": 1},
            {
                "type": "object",
                "additionalProperties": {
                    "anyOf": [
                        {
                            "type": "object",
                            "properties": {"limits": {"type": "object"}},
                            "additionalProperties": False,
                        },
                        {"type": "null"},
                    ]
                },
            },
        ]
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "peirce campaign"
    return schema


def load_spec(path: Path) -> tuple[CampaignSpec, str]:
    """Read, parse and check a campaign file. Returns the spec and the file's text (stored with the campaign)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(str(path), "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), f"cannot read: {exc}") from None
    return parse_spec(text, base_dir=path.parent, source=str(path)), text


def parse_spec(text: str, base_dir: Path, source: str = "<spec>") -> CampaignSpec:
    data = load_yaml(text, source)
    if not isinstance(data, dict):
        raise SpecError(source, f"a campaign file must be a mapping of keys, not {type(data).__name__}")
    lab = data.get("lab")
    if isinstance(lab, dict) and "station" in lab and lab.get("lab_file") is not None:
        # The lab's instruments, written into the spec: the stored campaign never reads the lab file again.
        data = {**data, "lab": resolve_station(lab, base_dir)}
    # A library of molecules in a file is written into the spec the same way.
    data = resolve_libraries(data, base_dir)
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc, data) from None
    spec = _resolve_paths(spec, base_dir)
    check_consistency(spec)
    return spec


def check_consistency(spec: CampaignSpec) -> None:
    """Rules that relate fields to each other; raises the first violation as a SpecError."""
    first_index: dict[str, int] = {}
    for i, parameter in enumerate(spec.space):
        if parameter.name in first_index:
            raise SpecError(
                f"space[{i}].name",
                f"duplicate parameter name '{parameter.name}' (also space[{first_index[parameter.name]}])",
            )
        first_index[parameter.name] = i
    seen_objectives: dict[str, int] = {}
    for i, objective in enumerate(spec.objectives):
        if objective.name in seen_objectives:
            raise SpecError(f"objectives[{i}].name", f"duplicate objective name '{objective.name}'")
        if objective.name in first_index:
            raise SpecError(f"objectives[{i}].name", f"'{objective.name}' is already a parameter name")
        seen_objectives[objective.name] = i
    for i, constraint in enumerate(spec.constraints):
        for name in constraint.coefficients:
            if name not in first_index:
                raise SpecError(f"constraints[{i}].coefficients.{name}", f"unknown parameter '{name}'")
            parameter = spec.space[first_index[name]]
            if not parameter.is_numeric:
                raise SpecError(
                    f"constraints[{i}].coefficients.{name}", f"parameter '{name}' is {parameter.type}, not numeric"
                )
    _check_mixtures(spec, first_index)
    if not constraints_satisfiable(spec.space, spec.constraints, spec.mixtures):
        described = "; ".join([*(m.describe() for m in spec.mixtures), *(c.describe() for c in spec.constraints)])
        field = "constraints" if spec.constraints else "mixtures"
        raise SpecError(field, f"no point of the space satisfies them all ({described})")
    for i, outcome_constraint in enumerate(spec.outcome_constraints):
        if outcome_constraint.outcome not in seen_objectives:
            raise SpecError(
                f"outcome_constraints[{i}].outcome",
                f"'{outcome_constraint.outcome}' is not an objective (objectives: {', '.join(seen_objectives)})",
            )
    seen_related: dict[str, int] = {}
    for i, related in enumerate(spec.related):
        if related.campaign == spec.name:
            raise SpecError(
                f"related[{i}].campaign", f"'{spec.name}' is this campaign: a campaign cannot learn from itself"
            )
        if related.campaign in seen_related:
            raise SpecError(
                f"related[{i}].campaign",
                f"'{related.campaign}' is named twice (also related[{seen_related[related.campaign]}])",
            )
        seen_related[related.campaign] = i
    # The default (true) stops at targets when there are any; said explicitly with none, it would never fire.
    said = "target_reached" in spec.stop.model_fields_set and spec.stop.target_reached
    if said and all(objective.target is None for objective in spec.objectives):
        raise SpecError(
            "stop.target_reached", "true, but no objective has a target (give one a `target`, or drop this rule)"
        )
    for i, region in enumerate(spec.safety.forbidden_regions):
        for j, condition in enumerate(region.where):
            if condition.parameter not in first_index:
                raise SpecError(
                    f"safety.forbidden_regions[{i}].where[{j}].parameter", f"unknown parameter '{condition.parameter}'"
                )
    for i, rule in enumerate(spec.safety.forbidden_substructures):
        if not rule.is_valid():
            raise SpecError(f"safety.forbidden_substructures[{i}].smarts", f"RDKit cannot parse SMARTS '{rule.smarts}'")
    check_rules(spec.approval.rules, spec.space, spec.objectives, spec.planner.kind)
    _check_lab_fits(spec, first_index)


def _check_lab_fits(spec: CampaignSpec, index: dict[str, int]) -> None:
    lab = spec.lab
    objective_names = [o.name for o in spec.objectives]
    if isinstance(lab, FunctionLab):
        outcome = lab.outcome
        if outcome is None and len(objective_names) > 1:
            raise SpecError("lab.outcome", f"{lab.simulator} answers one objective; name it (one of {objective_names})")
        if outcome is not None and outcome not in objective_names:
            raise SpecError(
                "lab.outcome", f"'{outcome}' is not an objective (objectives: {', '.join(objective_names)})"
            )
        for i, parameter in enumerate(spec.space):
            if not parameter.is_numeric:
                raise SpecError(f"space[{i}].type", f"{lab.simulator} takes numeric parameters, not {parameter.type}")
        wanted = TEST_FUNCTIONS[lab.simulator].dimension
        if wanted is not None and len(spec.space) != wanted:
            raise SpecError(
                "lab.simulator", f"{lab.simulator} takes {wanted} parameters, the space has {len(spec.space)}"
            )
    elif isinstance(lab, StationLab):
        check_station(spec, lab, index, objective_names)
    elif isinstance(lab, ManualLab):
        check_manual(lab, index, objective_names)
    elif isinstance(lab, PythonLab):
        # Whether the function can be imported is checked when the lab is built (`peirce validate` does).
        if lab.duration is not None and isinstance(lab.duration.length, str):
            numeric = {p.name for p in spec.space if p.is_numeric}
            unknown = [n for n in Formula(lab.duration.length).names if n not in numeric]
            if unknown:
                raise SpecError("lab.duration.length", f"{', '.join(unknown)} is not a numeric parameter")
    else:
        for name in lab.columns:
            if name not in index:
                raise SpecError(f"lab.columns.{name}", f"unknown parameter '{name}'")
        for name in lab.outcomes:
            if name not in objective_names:
                raise SpecError(f"lab.outcomes.{name}", f"'{name}' is not an objective")


def check_manual(lab: ManualLab, index: dict[str, int], objective_names: list[str]) -> None:
    """A manual lab's outcomes are objectives, and the placeholders of its instructions are parameters."""
    for name in lab.manual.outcomes:
        if name not in objective_names:
            known = ", ".join(objective_names)
            raise SpecError(f"lab.manual.outcomes.{name}", f"'{name}' is not an objective (objectives: {known})")
    for name in sorted(placeholders(lab.manual.instructions)):
        if name not in index:
            raise SpecError(
                "lab.manual.instructions", f"'{{{name}}}' is not a parameter (parameters: {', '.join(index)})"
            )


def check_station(spec: CampaignSpec, lab: StationLab, index: dict[str, int], objective_names: list[str]) -> None:
    """What can be checked of a station without its drivers: names, placeholders, outcomes, limits vs the space."""
    for name, instrument in lab.instruments.items():
        if lab.twins is None and not instrument.port:
            raise SpecError(f"lab.instruments.{name}.port", "required without twins (e.g. /dev/ttyUSB0)")
    saved: set[str] = set()
    for i, step in enumerate(lab.protocol):
        if isinstance(step, ManualStepSpec):
            for name in sorted(placeholders(step.manual)):
                if name not in index:
                    raise SpecError(f"lab.protocol[{i}].manual", f"'{{{name}}}' is not a parameter")
            saved.add(step.outcome)
            continue
        if isinstance(step, AnalysisStepSpec):
            saved |= set(step.save.values())  # the analysis and its arrays are checked against the drivers
            continue
        values = [step.wait] if isinstance(step, WaitStepSpec) else list(step.args.values())
        for value in values:
            for name in placeholders(value):
                if name not in index:
                    raise SpecError(f"lab.protocol[{i}]", f"'{{{name}}}' is not a parameter")
        if isinstance(step, WaitStepSpec):
            if isinstance(step.wait, str) and not placeholders(step.wait):
                raise SpecError(f"lab.protocol[{i}].wait", f"'{step.wait}' is neither a number nor '{{parameter}}'")
            continue
        if step.instrument not in lab.instruments:
            raise SpecError(
                f"lab.protocol[{i}].instrument",
                f"no instrument '{step.instrument}' (instruments: {', '.join(lab.instruments)})",
            )
        limits = lab.instruments[step.instrument].limits
        for argument, value in step.args.items():
            _check_limit_covers_space(spec, index, i, step.instrument, argument, value, limits.get(argument))
        saved |= set(step.save.values())
    for name in objective_names:
        if name not in lab.outcomes:
            raise SpecError("lab.outcomes", f"objective '{name}' has no formula")
    numeric = {p.name for p in spec.space if p.is_numeric}
    for name, text in lab.outcomes.items():
        if name not in objective_names:
            raise SpecError(f"lab.outcomes.{name}", f"'{name}' is not an objective")
        try:
            formula = Formula(text)
        except FormulaError as exc:
            raise SpecError(f"lab.outcomes.{name}", str(exc)) from None
        unknown = [n for n in formula.names if n not in saved | numeric]
        if unknown:
            raise SpecError(
                f"lab.outcomes.{name}", f"{', '.join(unknown)} is neither saved by a step nor a numeric parameter"
            )


def _check_limit_covers_space(
    spec: CampaignSpec, index: dict[str, int], step: int, instrument: str, argument: str, value: Any, limit: Any
) -> None:
    """A parameter wired straight to a limited argument must not range past the limit: such experiments would be
    planned and then refused one by one at the instrument. Better to say so before the campaign starts."""

    name = whole_placeholder(value)
    if limit is None or name not in index:
        return
    parameter = spec.space[index[name]]
    if not parameter.is_numeric:
        return
    values = [float(v) for v in (parameter.bounds if hasattr(parameter, "bounds") else parameter.values)]
    where = f"lab.instruments.{instrument}.limits.{argument}"
    if limit.max is not None and max(values) > limit.max:
        raise SpecError(
            f"space[{index[parameter.name]}]",
            f"'{parameter.name}' reaches {max(values):g} but lab.protocol[{step}] sends it as {argument} to "
            f"{instrument}, whose limit is {where}.max = {limit.max:g}",
        )
    if limit.min is not None and min(values) < limit.min:
        raise SpecError(
            f"space[{index[parameter.name]}]",
            f"'{parameter.name}' goes down to {min(values):g} but {where}.min = {limit.min:g}",
        )


def _resolve_paths(spec: CampaignSpec, base_dir: Path) -> CampaignSpec:
    """Paths in the file are relative to the file; the stored spec holds them resolved."""
    if isinstance(spec.lab, LookupLab) and not spec.lab.table.is_absolute():
        lab = spec.lab.model_copy(update={"table": (base_dir / spec.lab.table).resolve()})
        spec = spec.model_copy(update={"lab": lab})
    if isinstance(spec.lab, PythonLab) and spec.lab.path is not None and not spec.lab.path.is_absolute():
        folder = spec.lab.model_copy(update={"path": (base_dir / spec.lab.path).resolve()})
        spec = spec.model_copy(update={"lab": folder})
    hypotheses = spec.hypotheses
    resolved = {
        name: [(base_dir / path).resolve() for path in getattr(hypotheses, name)] for name in ("notes", "knowledge")
    }
    for name, paths in resolved.items():
        for i, path in enumerate(paths):
            if not path.is_file():
                raise SpecError(f"hypotheses.{name}[{i}]", f"file not found: {path}")
    if resolved["knowledge"]:
        # A malformed knowledge file is refused now, before a campaign is written (JSON and claims only: whether
        # each claim fits this campaign's space is decided on import, and a misfit is stored as rejected).
        for i, path in enumerate(resolved["knowledge"]):
            check_file(path, f"hypotheses.knowledge[{i}]")
    # A note's front matter (its citation and claims) is checked now too; its prose is anyone's.
    for i, path in enumerate(resolved["notes"]):
        check_note(path, f"hypotheses.notes[{i}]")
    return spec.model_copy(update={"hypotheses": hypotheses.model_copy(update=resolved)})


def _first_error(exc: ValidationError, data: Any) -> SpecError:
    # An unknown key is usually a misspelt known one, which also explains a "missing" error: report it first.
    error = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")[0]
    field = _field_path(error["loc"], data)
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "union_tag_invalid":
        message = _unknown_tag_message(error)
        field = f"{field}.{str(error['ctx']['discriminator']).strip(chr(39))}"
    elif error["type"] == "union_tag_not_found":  # e.g. a parameter without `type`, a lab without `simulator`
        message = "required field is missing"
        field = f"{field}.{str(error['ctx']['discriminator']).strip(chr(39))}"
    elif error["type"] == "missing":
        message = "required field is missing"
    others = exc.error_count() - 1
    if others:
        message += f" (and {others} more error{'s' if others > 1 else ''})"
    return SpecError(field or "spec", message)


def _field_path(loc: tuple[Any, ...], data: Any) -> str:
    """Render a pydantic location as `space[2].bounds`, dropping the union tags pydantic inserts."""
    parts: list[str] = []
    node = data
    for item in loc:
        if item == "[key]":
            continue  # pydantic's marker for an error in a mapping's key; the key itself is already in the path
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
            continue
        if isinstance(node, dict) and item not in node and parts and not _is_field_of_any_model(item):
            continue  # a discriminated-union tag such as 'continuous', not a key of the file
        parts.append(f".{item}" if parts else str(item))
        node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def _check_mixtures(spec: CampaignSpec, first_index: dict[str, int]) -> None:
    """Each mixture names continuous parameters of the space, none in two mixtures, with bounds that can sum to the
    total: the lower bounds at most the total, the upper bounds at least it, none negative."""
    owner: dict[str, int] = {}
    for i, mixture in enumerate(spec.mixtures):
        bounds: list[tuple[float, float]] = []
        for j, name in enumerate(mixture.parameters):
            field = f"mixtures[{i}].parameters[{j}]"
            if name not in first_index:
                raise SpecError(field, f"unknown parameter '{name}'")
            parameter = spec.space[first_index[name]]
            if not isinstance(parameter, ContinuousParameter):
                raise SpecError(field, f"parameter '{name}' is {parameter.type}; a mixture's components are continuous")
            if name in owner:
                raise SpecError(field, f"'{name}' is already a component of mixtures[{owner[name]}]")
            owner[name] = i
            if parameter.bounds[0] < 0:
                raise SpecError(
                    field, f"'{name}' may go below 0 (bounds [{parameter.bounds[0]:g}, {parameter.bounds[1]:g}])"
                )
            bounds.append(parameter.bounds)
        lows, highs = sum(b[0] for b in bounds), sum(b[1] for b in bounds)
        if lows > mixture.total * (1 + 1e-9):
            raise SpecError(
                f"mixtures[{i}]",
                f"the lower bounds of {', '.join(mixture.parameters)} sum to {lows:g}, more than the total "
                f"{mixture.total:g}",
            )
        if highs < mixture.total * (1 - 1e-9):
            raise SpecError(
                f"mixtures[{i}]",
                f"the upper bounds of {', '.join(mixture.parameters)} sum to {highs:g}, less than the total "
                f"{mixture.total:g}",
            )


def _is_field_of_any_model(name: str) -> bool:
    # A missing required key is in the location but not in the data; keep it. Tags are never field names.
    models: tuple[type[BaseModel], ...] = (
        CampaignSpec,
        Budget,
        StopCriteria,
        FunctionLab,
        LookupLab,
        ManualLab,
        ManualSettings,
        PythonLab,
        LabDuration,
        LinearConstraint,
        Mixture,
        Objective,
        OutcomeConstraint,
        HypothesisSettings,
        SafetyRules,
        ApprovalPolicy,
        ApprovalRule,
        *STATION_MODELS,
    )
    known = {field for model in models for field in model.model_fields}
    known |= {"name", "type", "bounds", "values", "levels", "smiles", "unit", "kind", "seed"}
    return name in known


def _unknown_tag_message(error: ErrorDetails) -> str:
    ctx = error.get("ctx", {})
    tag, expected = ctx.get("tag"), ctx.get("expected_tags", "")
    discriminator = str(ctx.get("discriminator", "")).strip("'")
    what = {"simulator": "simulator", "type": "parameter type", "kind": "planner"}.get(discriminator, discriminator)
    return f"unknown {what} '{tag}' (expected one of: {expected.replace(chr(39), '')})"
