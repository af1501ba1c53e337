"""Campaign-spec loading: valid files load, and every bad input is one `field: message` line naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.campaign.spec import CampaignSpec, FunctionLab, LookupLab, json_schema, load_spec, parse_spec
from orchestrator.errors import SpecError
from orchestrator.lab.build import build_lab
from planners.space import (
    CategoricalParameter,
    ContinuousParameter,
    DiscreteParameter,
    IntegerParameter,
    MoleculeParameter,
)

REPO = Path(__file__).resolve().parents[3]
DIRECT_ARYLATION = REPO / "simulators" / "data" / "direct_arylation" / "reactions.csv"
COMMITTED_SPECS = [
    *sorted(p for p in (REPO / "examples").glob("*.yaml") if p.name != "lab.yaml"),  # lab.yaml: the lab's file
    REPO / "orchestrator" / "campaign" / "templates" / "campaign.yaml",
]


def branin(**overrides: Any) -> dict[str, Any]:
    """A small valid spec on the Branin function; `overrides` replace top-level keys."""
    data: dict[str, Any] = {
        "name": "branin_test",
        "space": [
            {"name": "x1", "type": "continuous", "bounds": [-5, 10]},
            {"name": "x2", "type": "continuous", "bounds": [0, 15]},
        ],
        "objectives": [{"name": "y", "direction": "minimize"}],
        "budget": {"experiments": 10, "batch_size": 2},
        "lab": {"simulator": "branin", "seed": 1},
    }
    data.update(copy.deepcopy(overrides))
    return data


def arylation(**overrides: Any) -> dict[str, Any]:
    """A valid lookup spec on the direct-arylation table with categorical, molecule and discrete parameters."""
    data: dict[str, Any] = {
        "name": "arylation_test",
        "space": [
            {"name": "base", "type": "categorical", "levels": ["Potassium acetate", "Cesium pivalate"]},
            # DMAc written differently from the table's CC(N(C)C)=O: matched by canonical SMILES.
            {"name": "solvent", "type": "molecule", "smiles": {"DMAc": "CN(C)C(C)=O", "p-Xylene": "Cc1ccc(C)cc1"}},
            {"name": "temperature", "type": "discrete", "values": [90, 120]},
            {"name": "concentration", "type": "discrete", "values": [0.057, 0.153]},
        ],
        "objectives": [{"name": "yield", "direction": "maximize"}],
        "budget": {"experiments": 8, "batch_size": 2},
        "lab": {
            "simulator": "lookup",
            "table": str(DIRECT_ARYLATION),
            "columns": {
                "base": "Base",
                "solvent": "Solvent_SMILES",
                "temperature": "Temp_C",
                "concentration": "Concentration",
            },
            "outcomes": {"yield": "yield"},
        },
    }
    data.update(copy.deepcopy(overrides))
    return data


def parse(data: dict[str, Any]) -> CampaignSpec:
    return parse_spec(yaml.safe_dump(data, sort_keys=False), base_dir=REPO)


def spec_error(data: dict[str, Any] | str, field: str) -> str:
    """Parse `data` (a mapping or raw text), expect a SpecError for `field`, and return its message."""
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    with pytest.raises(SpecError) as info:
        parse_spec(text, base_dir=REPO)
    return check_one_line(info.value, field)


def check_one_line(error: SpecError, field: str) -> str:
    rendered = str(error)
    assert "\n" not in rendered, rendered
    assert error.field == field, rendered
    assert rendered == f"{field}: {error.message}"
    assert error.message.strip()
    assert error.exit_code == 2
    return error.message


# --- valid specs ---------------------------------------------------------------------------------------------


def test_continuous_spec_loads() -> None:
    spec = parse(branin())
    assert isinstance(spec.lab, FunctionLab)
    assert spec.lab.simulator == "branin"
    assert [type(p) for p in spec.space] == [ContinuousParameter, ContinuousParameter]
    assert spec.space[0].bounds == (-5.0, 10.0)
    assert spec.budget.batch_size == 2
    assert spec.planner.kind == "bayesian"  # the default planner
    assert spec.search_space().names == ["x1", "x2"]


def test_integer_and_discrete_specs_load() -> None:
    spec = parse(
        branin(
            space=[
                {"name": "n", "type": "integer", "bounds": [1, 5], "unit": "cycles"},
                {"name": "t", "type": "discrete", "values": [120, 90, 105], "unit": "degC"},
            ],
            lab={"simulator": "ackley"},
        )
    )
    integer, discrete = spec.space
    assert isinstance(integer, IntegerParameter)
    assert integer.values == [1, 2, 3, 4, 5]
    assert isinstance(discrete, DiscreteParameter)
    assert discrete.values == [90, 105, 120]  # sorted
    assert spec.search_space().grid_size == 15


def test_categorical_and_molecule_spec_loads() -> None:
    spec = parse(arylation())
    assert isinstance(spec.lab, LookupLab)
    assert spec.lab.table == DIRECT_ARYLATION
    base, solvent = spec.space[:2]
    assert isinstance(base, CategoricalParameter)
    assert base.levels == ["Potassium acetate", "Cesium pivalate"]
    assert isinstance(solvent, MoleculeParameter)
    assert solvent.values == ["DMAc", "p-Xylene"]


def test_lookup_lab_builds_candidates_from_the_table() -> None:
    spec = parse(arylation())
    lab = build_lab(spec)
    space = spec.search_space(lab.candidates)
    assert len(lab.candidates) == 16  # 2 x 2 x 2 x 2, every combination measured
    assert all(space.contains(p) for p in lab.candidates)
    assert {p["solvent"] for p in lab.candidates} == {"DMAc", "p-Xylene"}  # names, not SMILES


def test_table_path_is_relative_to_the_spec_file(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,y\n1,0.5\n2,0.7\n", encoding="utf-8")
    data = {
        "name": "rel",
        "space": [{"name": "a", "type": "discrete", "values": [1, 2]}],
        "objectives": [{"name": "y", "direction": "maximize"}],
        "budget": {"experiments": 2},
        "lab": {"simulator": "lookup", "table": "data.csv"},
    }
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    spec, text = load_spec(path)
    assert text == path.read_text(encoding="utf-8")
    assert spec.lab.table == (tmp_path / "data.csv").resolve()
    assert build_lab(spec).run({"a": 2}, "k").values == {"y": 0.7}


@pytest.mark.parametrize(("spelling", "stored"), [("maximise", "maximize"), ("minimise", "minimize")])
def test_british_spelling_is_accepted(spelling: str, stored: str) -> None:
    spec = parse(branin(objectives=[{"name": "y", "direction": spelling}]))
    assert spec.objectives[0].direction == stored


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90m", 5400.0),
        ("2h", 7200.0),
        ("45s", 45.0),
        ("1.5 h", 5400.0),
        ("10min", 600.0),
        ("1d", 86400.0),
        (3600, 3600.0),
    ],
)
def test_wall_clock_parses_to_seconds(value: Any, seconds: float) -> None:
    spec = parse(branin(budget={"experiments": 10, "wall_clock": value}))
    assert spec.budget.wall_clock == seconds


@pytest.mark.parametrize("value", ["none", None])
def test_hypotheses_and_approval_none_are_accepted(value: str | None) -> None:
    spec = parse(branin(hypotheses=value, approval=value))
    assert spec.hypotheses.source == "none"
    assert spec.approval.policy == "none"


def test_same_content_same_hash() -> None:
    assert parse(branin()).content_hash() == parse(branin()).content_hash()
    assert parse(branin()).content_hash() != parse(branin(name="other")).content_hash()


# --- bad input: one line naming the field ----------------------------------------------------------------------


def test_malformed_yaml_names_line_and_column() -> None:
    message = spec_error("name: t\nspace: [\n  - a: b\n", "<spec>:3:3")
    assert message.startswith("YAML syntax error")


def test_malformed_yaml_from_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\n  bad: indent\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    check_one_line(info.value, f"{path}:2:6")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "absent.yaml")
    assert check_one_line(info.value, str(tmp_path / "absent.yaml")) == "file not found"


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("hello\n", "str"), ("", "NoneType")])
def test_top_level_must_be_a_mapping(text: str, kind: str) -> None:
    assert spec_error(text, "<spec>") == f"a campaign file must be a mapping of keys, not {kind}"


def test_unknown_top_level_key() -> None:
    assert spec_error(branin(budgett={"experiments": 3}), "budgett") == "unknown key"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"budget": {"experiments": 10, "foo": 1}}, "budget.foo"),
        ({"stop": {"target": True}}, "stop.target"),
        ({"planner": {"kind": "sobol", "sede": 1}}, "planner.sede"),
        ({"lab": {"simulator": "branin", "noise": 0.1}}, "lab.noise"),
    ],
)
def test_unknown_nested_key(overrides: dict[str, Any], field: str) -> None:
    assert spec_error(branin(**overrides), field) == "unknown key"


def test_unknown_key_inside_a_parameter() -> None:
    data = branin()
    data["space"][1]["bound"] = [0, 1]
    assert spec_error(data, "space[1].bound") == "unknown key"


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"budget": {"experiments": 10, "batch_size": "five"}}, "budget.batch_size", "valid integer"),
        ({"budget": {"experiments": 0}}, "budget.experiments", "greater than or equal to 1"),
        ({"budget": {"experiments": 10, "wall_clock": "soon"}}, "budget.wall_clock", "'soon' is not a duration"),
        ({"budget": {"experiments": 10, "wall_clock": "0m"}}, "budget.wall_clock", "greater than 0"),
        ({"space": "x1"}, "space", "valid list"),
        ({"objectives": [{"name": "y", "direction": "up"}]}, "objectives[0].direction", "'maximize' or 'minimize'"),
        ({"name": "has space"}, "name", "pattern"),
        ({"planner": {"kind": "sobol", "seed": -1}}, "planner.seed", "greater than or equal to 0"),
    ],
)
def test_wrong_types_and_values(overrides: dict[str, Any], field: str, fragment: str) -> None:
    assert fragment in spec_error(branin(**overrides), field)


def test_wrong_type_inside_a_parameter() -> None:
    data = branin()
    data["space"][0]["bounds"] = "wide"
    assert "valid tuple" in spec_error(data, "space[0].bounds")


def test_bounds_reversed() -> None:
    data = branin()
    data["space"][1]["bounds"] = [120, 90]
    assert spec_error(data, "space[1].bounds") == "lower 120 > upper 90"


def test_bounds_equal() -> None:
    data = branin()
    data["space"][0]["bounds"] = [3, 3]
    assert spec_error(data, "space[0].bounds") == "lower 3 equals upper 3: the parameter cannot vary"


def test_bounds_not_finite() -> None:
    data = branin()
    data["space"][0]["bounds"] = [0, float("inf")]
    assert spec_error(data, "space[0].bounds") == "bounds must be finite numbers"


def test_integer_bounds_must_be_integers() -> None:
    data = branin(lab={"simulator": "ackley"})
    data["space"][0] = {"name": "n", "type": "integer", "bounds": [0.5, 3]}
    assert "valid integer" in spec_error(data, "space[0].bounds[0]")


def test_duplicate_parameter_names() -> None:
    data = branin(lab={"simulator": "ackley"})
    data["space"].append({"name": "x1", "type": "continuous", "bounds": [0, 1]})
    assert spec_error(data, "space[2].name") == "duplicate parameter name 'x1' (also space[0])"


def test_duplicate_objective_names() -> None:
    data = branin(objectives=[{"name": "y", "direction": "minimize"}, {"name": "y", "direction": "maximize"}])
    data["lab"]["outcome"] = "y"
    assert spec_error(data, "objectives[1].name") == "duplicate objective name 'y'"


def test_objective_named_like_a_parameter() -> None:
    data = branin(objectives=[{"name": "x1", "direction": "minimize"}])
    assert spec_error(data, "objectives[0].name") == "'x1' is already a parameter name"


def test_duplicate_discrete_values() -> None:
    data = branin(lab={"simulator": "ackley"})
    data["space"][1] = {"name": "t", "type": "discrete", "values": [90, 105, 90]}
    assert spec_error(data, "space[1].values") == "value 90 is listed twice"


def test_discrete_needs_two_values() -> None:
    data = branin(lab={"simulator": "ackley"})
    data["space"][1] = {"name": "t", "type": "discrete", "values": [90]}
    assert "at least 2 items" in spec_error(data, "space[1].values")


def test_duplicate_categorical_levels() -> None:
    data = arylation()
    data["space"][0]["levels"] = ["Potassium acetate", "Cesium pivalate", "Potassium acetate"]
    assert spec_error(data, "space[0].levels") == "level 'Potassium acetate' is listed twice"


def test_invalid_smiles_names_the_molecule() -> None:
    data = arylation()
    data["space"][1]["smiles"]["Sludge"] = "C1CC(("
    message = spec_error(data, "space[1].smiles")
    assert message == "molecule 'Sludge': RDKit cannot parse SMILES 'C1CC(('"


def test_empty_smiles_names_the_molecule() -> None:
    data = arylation()
    data["space"][1]["smiles"]["Nothing"] = ""
    assert "molecule 'Nothing'" in spec_error(data, "space[1].smiles")


def test_two_names_for_one_molecule() -> None:
    data = arylation()
    data["space"][1]["smiles"]["Dimethylacetamide"] = "CC(N(C)C)=O"  # DMAc again, written as in the table
    assert spec_error(data, "space[1].smiles") == "molecules 'DMAc' and 'Dimethylacetamide' are the same structure"


def test_unknown_simulator() -> None:
    message = spec_error(branin(lab={"simulator": "rosenbrock"}), "lab.simulator")
    assert message.startswith("unknown simulator 'rosenbrock'")
    assert "branin" in message
    assert "lookup" in message


def test_unknown_parameter_type() -> None:
    data = branin()
    data["space"][1]["type"] = "fuzzy"
    message = spec_error(data, "space[1].type")
    assert message.startswith("unknown parameter type 'fuzzy'")
    assert "continuous" in message
    assert "molecule" in message


def test_unknown_planner() -> None:
    assert spec_error(branin(planner={"kind": "magic"}), "planner.kind").startswith("unknown planner 'magic'")


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["space"][1].pop("type"), "space[1].type"),
        (lambda d: d["lab"].pop("simulator"), "lab.simulator"),
        (lambda d: d.update(planner={"seed": 3}), "planner.kind"),
    ],
    ids=lambda v: v if isinstance(v, str) else "drop",
)
def test_missing_union_tag(edit: Any, field: str) -> None:
    data = branin()
    edit(data)
    assert spec_error(data, field) == "required field is missing"


def test_constraint_over_unknown_parameter() -> None:
    data = branin(constraints=[{"coefficients": {"x1": 1, "z": 2}, "operator": "<=", "rhs": 3}])
    assert spec_error(data, "constraints[0].coefficients.z") == "unknown parameter 'z'"


def test_constraint_over_categorical_parameter() -> None:
    data = arylation(constraints=[{"coefficients": {"temperature": 1, "base": 1}, "operator": "<=", "rhs": 100}])
    assert spec_error(data, "constraints[0].coefficients.base") == "parameter 'base' is categorical, not numeric"


def test_constraint_bad_operator() -> None:
    data = branin(constraints=[{"coefficients": {"x1": 1}, "operator": "<", "rhs": 3}])
    assert "'<=' or '>='" in spec_error(data, "constraints[0].operator")


def test_batch_size_larger_than_budget() -> None:
    message = spec_error(branin(budget={"experiments": 10, "batch_size": 20}), "budget")
    assert message == "batch_size 20 exceeds the budget of 10 experiments"


def test_hartmann6_wrong_number_of_parameters() -> None:
    message = spec_error(branin(lab={"simulator": "hartmann6"}), "lab.simulator")
    assert message == "hartmann6 takes 6 parameters, the space has 2"


def test_branin_wrong_number_of_parameters() -> None:
    data = branin()
    data["space"].append({"name": "x3", "type": "continuous", "bounds": [0, 1]})
    assert spec_error(data, "lab.simulator") == "branin takes 2 parameters, the space has 3"


def test_function_simulator_with_categorical_parameter() -> None:
    data = branin()
    data["space"][1] = {"name": "c", "type": "categorical", "levels": ["a", "b"]}
    assert spec_error(data, "space[1].type") == "branin takes numeric parameters, not categorical"


def test_function_lab_outcome_must_be_an_objective() -> None:
    assert spec_error(branin(lab={"simulator": "branin", "outcome": "z"}), "lab.outcome").startswith("'z'")


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.pop("budget"), "budget"),
        (lambda d: d.pop("lab"), "lab"),
        (lambda d: d["budget"].pop("experiments"), "budget.experiments"),
        (lambda d: d["space"][0].pop("bounds"), "space[0].bounds"),
        (lambda d: d["space"][0].pop("name"), "space[0].name"),
        (lambda d: d["objectives"][0].pop("direction"), "objectives[0].direction"),
    ],
    ids=lambda v: v if isinstance(v, str) else "drop",
)
def test_missing_required_field(edit: Any, field: str) -> None:
    data = branin()
    edit(data)
    assert spec_error(data, field) == "required field is missing"


def test_missing_lookup_table_field() -> None:
    data = arylation()
    data["lab"].pop("table")
    assert spec_error(data, "lab.table") == "required field is missing"


def test_several_errors_are_counted_on_one_line() -> None:
    data = branin(budget={"experiments": 10, "batch_size": "five"})
    data["space"][1]["bounds"] = [3, 1]
    message = spec_error(data, "space[1].bounds")
    assert message == "lower 3 > upper 1 (and 1 more error)"


def test_lookup_column_mapping_for_unknown_parameter() -> None:
    data = arylation()
    data["lab"]["columns"]["pressure"] = "P"
    assert spec_error(data, "lab.columns.pressure") == "unknown parameter 'pressure'"


def test_lookup_column_mapping_with_invalid_name() -> None:
    data = arylation()
    data["lab"]["columns"]["bad name"] = "P"
    assert "pattern" in spec_error(data, "lab.columns.bad name")


def test_lookup_outcome_mapping_for_unknown_objective() -> None:
    data = arylation()
    data["lab"]["outcomes"]["purity"] = "P"
    assert spec_error(data, "lab.outcomes.purity") == "'purity' is not an objective"


# --- lookup labs: checks that need the table -------------------------------------------------------------------


def lab_error(data: dict[str, Any], field: str) -> str:
    spec = parse(data)
    with pytest.raises(SpecError) as info:
        build_lab(spec)
    return check_one_line(info.value, field)


def test_lookup_missing_data_file(tmp_path: Path) -> None:
    data = arylation()
    data["lab"]["table"] = str(tmp_path / "absent.csv")
    assert lab_error(data, "lab.table").startswith("data file not found")


def test_lookup_unknown_parameter_column() -> None:
    data = arylation()
    data["lab"]["columns"]["base"] = "Basse"
    assert lab_error(data, "lab.columns.base").startswith("column 'Basse' not in reactions.csv")


def test_lookup_parameter_column_defaults_to_its_name() -> None:
    data = arylation()
    del data["lab"]["columns"]["temperature"]
    assert lab_error(data, "lab.columns.temperature").startswith("column 'temperature' not in reactions.csv")


def test_lookup_unknown_outcome_column() -> None:
    data = arylation()
    data["lab"]["outcomes"]["yield"] = "Yield"
    assert lab_error(data, "lab.outcomes.yield").startswith("column 'Yield' not in reactions.csv")


def test_lookup_outcome_column_not_numeric() -> None:
    data = arylation()
    data["lab"]["outcomes"]["yield"] = "Ligand"
    assert lab_error(data, "lab.outcomes.yield") == "column 'Ligand' of reactions.csv is not numeric"


def test_lookup_categorical_level_not_in_table() -> None:
    data = arylation()
    data["space"][0]["levels"].append("Sodium hydride")
    message = lab_error(data, "space[0]")
    assert "'base'" in message
    assert "'Sodium hydride'" in message


def test_lookup_molecule_not_in_table() -> None:
    data = arylation()
    data["space"][1]["smiles"]["Water"] = "O"
    assert "'Water'" in lab_error(data, "space[1]")


def test_lookup_discrete_value_not_in_table() -> None:
    data = arylation()
    data["space"][2]["values"] = [90, 100]
    assert "100.0" in lab_error(data, "space[2]")


def test_lookup_rejects_continuous_parameters() -> None:
    data = arylation()
    data["space"][2] = {"name": "temperature", "type": "continuous", "bounds": [90, 120]}
    assert "discrete" in lab_error(data, "space[2].type")


# --- JSON Schema and the committed examples ----------------------------------------------------------------


def test_json_schema_has_the_top_level_properties() -> None:
    schema = json_schema()
    assert isinstance(schema, dict)
    assert schema["type"] == "object"
    assert set(schema["properties"]) == set(CampaignSpec.model_fields)
    assert {"name", "space", "objectives", "budget", "lab"} <= set(schema["required"])
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("path", COMMITTED_SPECS, ids=lambda p: p.name)
def test_committed_specs_load(path: Path) -> None:
    spec, text = load_spec(path)
    assert text
    assert spec.name
    if isinstance(spec.lab, LookupLab):
        assert spec.lab.table.is_file()


@pytest.mark.parametrize("path", COMMITTED_SPECS, ids=lambda p: p.name)
def test_committed_specs_match_the_json_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft202012Validator(json_schema()).iter_errors(data)
    ]
    assert errors == []


def test_json_schema_rejects_what_the_loader_rejects() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    assert validator.is_valid(branin(hypotheses="none", budget={"experiments": 3, "wall_clock": "90m"}))
    assert not validator.is_valid(branin(budgett={"experiments": 3}))
    assert not validator.is_valid(branin(budget={"experiments": 3, "wall_clock": "soon"}))
    assert not validator.is_valid(branin(hypotheses="llm"))


def test_direct_arylation_example_builds_its_lab() -> None:
    spec, _ = load_spec(REPO / "examples" / "direct_arylation.yaml")
    lab = build_lab(spec)
    assert len(lab.candidates) == 1728
    assert lab.run(lab.candidates[0], "k").values["yield"] >= 0


# --- stop rules ----------------------------------------------------------------------------------------------


def test_target_reached_said_without_any_target_is_an_error_at_its_field() -> None:
    message = spec_error(branin(stop={"target_reached": True}), "stop.target_reached")
    assert "no objective has a target" in message


def test_target_reached_with_a_target_or_left_to_its_default_is_accepted() -> None:
    with_target = parse(
        branin(objectives=[{"name": "y", "direction": "minimize", "target": 0.45}], stop={"target_reached": True})
    )
    assert with_target.stop.target_reached is True
    assert parse(branin()).stop.target_reached is True  # the default says nothing, so it is no error
    assert parse(branin(stop={"target_reached": False})).stop.target_reached is False
