"""A Python function lab's `options` and `duration`: the duration's length (a number or a formula over numeric
parameters) and wait checked at load naming the field, the options checked against the function's arguments when
the lab is built (`peirce validate` refuses one it does not take), and what the lab passes the function: its
options, and the experiment's key and journal only when the function takes them."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.campaign.spec import CampaignSpec, PythonLab, json_schema, parse_spec
from orchestrator.errors import SpecError
from orchestrator.lab.build import build_lab
from orchestrator.lab.contract import HandedToPerson
from orchestrator.store.models import utcnow
from tests.campaigns import write_spec
from tests.orchestrator.campaign.test_spec import REPO, check_one_line
from tests.orchestrator.cli.helpers import invoke, one_error
from tests.orchestrator.lab import python_labs

SCALED = "tests.orchestrator.lab.python_labs:scaled"
MEASURE = "tests.orchestrator.lab.python_labs:measure"
POINT = {"x1": 0.5, "x2": 0.2, "n": 4, "c": "a"}


def lab_spec(lab: dict[str, Any]) -> dict[str, Any]:
    """A spec with two continuous parameters, an integer and a categorical one, and `lab` as its lab."""
    return {
        "name": "timed",
        "space": [
            {"name": "x1", "type": "continuous", "bounds": [0, 1]},
            {"name": "x2", "type": "continuous", "bounds": [0, 1]},
            {"name": "n", "type": "integer", "bounds": [1, 6]},
            {"name": "c", "type": "categorical", "levels": ["a", "b"]},
        ],
        "objectives": [{"name": "y", "direction": "minimize"}],
        "budget": {"experiments": 4, "batch_size": 2},
        "planner": {"kind": "random", "seed": 5},
        "hypotheses": "none",
        "lab": copy.deepcopy(lab),
    }


def parse(lab: dict[str, Any]) -> CampaignSpec:
    return parse_spec(yaml.safe_dump(lab_spec(lab), sort_keys=False), base_dir=REPO)


def refused(lab: dict[str, Any], field: str) -> str:
    with pytest.raises(SpecError) as info:
        parse(lab)
    return check_one_line(info.value, field)


def duration(**settings: Any) -> dict[str, Any]:
    return {"python": SCALED, "duration": settings}


# --- lab.duration at load ----------------------------------------------------------------------------------------


def test_a_duration_by_formula_over_numeric_parameters_loads_with_its_defaults() -> None:
    lab = parse(duration(length="n * 2 + x1")).lab
    assert isinstance(lab, PythonLab) and lab.duration is not None
    assert (lab.duration.unit, lab.duration.time_scale, lab.duration.wait) == ("d", 1.0, 0.0)
    assert lab.duration.simulated_s({"x1": 0.5, "n": 3}) == 6.5 * 86400


@pytest.mark.parametrize(
    ("length", "fragment"),
    [
        ("x9 * 2", "x9 is not a numeric parameter"),  # no such parameter
        ("c + 1", "c is not a numeric parameter"),  # a categorical one
        ("n +", "cannot parse 'n +'"),
    ],
)
def test_a_length_naming_no_numeric_parameter_is_refused_naming_the_field(length: str, fragment: str) -> None:
    assert fragment in refused(duration(length=length), "lab.duration.length")


@pytest.mark.parametrize(
    ("length", "message"),
    [(-1, "-1 is negative"), (-0.5, "-0.5 is negative"), (True, "true is not a number or a formula")],
)
def test_a_negative_or_truth_value_length_is_refused(length: float, message: str) -> None:
    assert refused(duration(length=length), "lab.duration.length") == message


def test_a_length_that_is_not_finite_is_refused_naming_the_field() -> None:
    text = yaml.safe_dump(lab_spec(duration(length=1)), sort_keys=False).replace("length: 1", "length: .nan")
    with pytest.raises(SpecError) as info:
        parse_spec(text, base_dir=REPO)
    assert check_one_line(info.value, "lab.duration.length") == "nan is not a finite number"


@pytest.mark.parametrize(("wait", "seconds"), [("10m", 600.0), ("2h", 7200.0), (45, 45.0), ("30s", 30.0)])
def test_wait_takes_a_duration(wait: Any, seconds: float) -> None:
    lab = parse(duration(length=3, wait=wait)).lab
    assert isinstance(lab, PythonLab) and lab.duration is not None
    assert lab.duration.wait == seconds


@pytest.mark.parametrize(
    ("settings", "field", "fragment"),
    [
        ({"length": 3, "wait": "soon"}, "lab.duration.wait", "'soon' is not a duration"),
        ({"length": 3, "wait": -1}, "lab.duration.wait", "greater than or equal to 0"),
        ({"length": 3, "time_scale": 0}, "lab.duration.time_scale", "greater than 0"),
        ({"length": 3, "unit": "week"}, "lab.duration.unit", "'s', 'min', 'h' or 'd'"),
        ({"length": 3, "scale": 10}, "lab.duration.scale", "unknown key"),
        ({"unit": "h"}, "lab.duration.length", "required"),
    ],
)
def test_bad_duration_settings_are_refused_naming_the_field(
    settings: dict[str, Any], field: str, fragment: str
) -> None:
    assert fragment in refused(duration(**settings), field)


def test_the_schema_for_editors_takes_the_durations_wait_as_a_duration() -> None:
    wait = json_schema()["$defs"]["LabDuration"]["properties"]["wait"]
    assert {"type": "number", "minimum": 0} in wait["anyOf"]
    assert any(option.get("type") == "string" for option in wait["anyOf"])


# --- lab.options, through the CLI ----------------------------------------------------------------------------------


def test_an_option_the_function_does_not_take_is_refused_by_validate_naming_it(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "timed.yaml", lab_spec({"python": MEASURE, "options": {"seed": 3}}))
    checked = invoke("validate", str(spec), cwd=tmp_path)
    line = one_error(checked, "error: lab.options.seed: ")
    assert line == f"error: lab.options.seed: '{MEASURE}' takes no argument 'seed'"
    assert checked.stdout == ""
    url = f"sqlite:///{tmp_path / 'timed.db'}"
    one_error(invoke("run", str(spec), "--db", url, "--engine", "inline", cwd=tmp_path), "lab.options.seed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timed.yaml"]  # nothing written, no database made


def test_options_the_function_takes_are_accepted_by_validate(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "timed.yaml", lab_spec({"python": SCALED, "options": {"scale": 2.5}}))
    checked = invoke("validate", str(spec), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    keyword = write_spec(
        tmp_path / "any.yaml", lab_spec({"python": MEASURE.replace("measure", "anything"), "options": {"q": 1}})
    )
    assert invoke("validate", str(keyword), cwd=tmp_path).returncode == 0  # **kwargs takes any option


# --- what the function is given ------------------------------------------------------------------------------------


def test_the_function_gets_its_options_and_the_key_and_journal_it_takes() -> None:
    lab = build_lab(parse({"python": SCALED, "options": {"scale": 3.0}}))
    written: list[tuple[str, dict[str, Any]]] = []
    python_labs.CALLS.clear()
    result = lab.run(POINT, "timed:7", lambda kind, detail: written.append((kind, detail)))
    # bowl(0.5, 0.2) = 0.2^2 + 0.5^2 = 0.29, times the option
    assert result.values == {"y": pytest.approx(0.87)}
    assert python_labs.CALLS == [{"parameters": POINT, "scale": 3.0, "key": "timed:7"}]
    assert written == [("action-done", {"instrument": "bowl", "action": "measure", "key": "timed:7"})]


def test_a_function_of_the_parameters_alone_gets_neither_key_nor_journal() -> None:
    lab = build_lab(parse({"python": MEASURE}))
    python_labs.CALLS.clear()
    assert lab.run(POINT, "timed:1", lambda kind, detail: None).values == {"y": pytest.approx(0.29)}
    assert python_labs.CALLS == [POINT]


def test_a_function_taking_any_keyword_gets_options_key_attempt_journal_and_smiles() -> None:
    lab = build_lab(parse({"python": MEASURE.replace("measure", "anything"), "options": {"seed": 4}}))
    python_labs.CALLS.clear()
    lab.run(POINT, "timed:2", lambda kind, detail: None)
    assert python_labs.CALLS == [{"parameters": POINT, "given": ["attempt", "journal", "key", "seed", "smiles"]}]


def test_with_a_duration_the_results_are_held_until_the_lab_time_is_up() -> None:
    lab = build_lab(parse(duration(length="n * 6", unit="h", time_scale=3600)))
    before = utcnow()
    with pytest.raises(HandedToPerson) as handed:
        lab.run(POINT, "timed:3")
    after = utcnow()
    detail = handed.value.detail
    assert detail["values"] == {"y": pytest.approx(0.29)}  # measured now, released later
    assert detail["lab_time_s"] == 24 * 3600  # n = 4: 24 h of lab time, 24 s at 3600 lab seconds a second
    ready = datetime.fromisoformat(detail["ready_at"])
    assert before + timedelta(seconds=24) <= ready <= after + timedelta(seconds=24)
    assert detail["outcomes"] == {"y": ""}
    assert detail["by"] == f"lab {SCALED}"
    assert "for 24 h of lab time" in detail["instructions"]
