"""`mixtures:` in the campaign file: fractions that sum to one, checked when the file is read, each problem one
`field: message` line naming the field."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from orchestrator.campaign.spec import parse_spec
from orchestrator.errors import SpecError
from orchestrator.people.acts import _check_point
from tests.orchestrator.campaign.test_spec import REPO, spec_error

METALS = ["fe", "ni", "co"]


def alloy(bounds: dict[str, list[float]] | None = None, **overrides: Any) -> dict[str, Any]:
    bounds = bounds or {}
    data: dict[str, Any] = {
        "name": "alloy",
        "space": [
            *({"name": n, "type": "continuous", "bounds": bounds.get(n, [0, 0.6])} for n in METALS),
            {"name": "anneal_c", "type": "integer", "bounds": [300, 500]},
        ],
        "mixtures": [{"parameters": METALS}],
        "objectives": [{"name": "eta", "direction": "minimize", "unit": "mV"}],
        "budget": {"experiments": 6, "batch_size": 2},
        "lab": {"simulator": "ackley"},  # any number of parameters
    }
    data.update(overrides)
    return data


def parse(data: dict[str, Any]) -> Any:
    return parse_spec(yaml.safe_dump(data, sort_keys=False), base_dir=REPO)


def test_a_mixture_loads_and_reaches_the_planners_space() -> None:
    spec = parse(alloy(mixtures=[{"parameters": METALS, "total": 1}]))
    space = spec.search_space()
    assert [m.parameters for m in space.mixtures] == [METALS]
    assert space.mixtures[0].describe() == "fe + ni + co = 1"
    assert space.feasible({"fe": 0.5, "ni": 0.3, "co": 0.2, "anneal_c": 400})
    assert not space.feasible({"fe": 0.5, "ni": 0.3, "co": 0.3, "anneal_c": 400})
    assert not space.feasible({"fe": 0.7, "ni": 0.3, "co": 0.0, "anneal_c": 400})  # above fe's bound


def test_percentages_may_sum_to_another_total() -> None:
    spec = parse(alloy({n: [0, 60] for n in METALS}, mixtures=[{"parameters": METALS, "total": 100}]))
    assert spec.search_space().feasible({"fe": 50, "ni": 30, "co": 20, "anneal_c": 400})


def test_lower_bounds_that_sum_past_the_total_are_refused() -> None:
    data = alloy({"fe": [0.5, 0.6], "ni": [0.3, 0.6], "co": [0.25, 0.6]})
    assert spec_error(data, "mixtures[0]") == "the lower bounds of fe, ni, co sum to 1.05, more than the total 1"


def test_upper_bounds_that_cannot_reach_the_total_are_refused() -> None:
    data = alloy({n: [0, 0.3] for n in METALS})
    assert spec_error(data, "mixtures[0]") == "the upper bounds of fe, ni, co sum to 0.9, less than the total 1"


def test_components_must_be_continuous_known_non_negative_and_in_one_mixture() -> None:
    assert spec_error(alloy(mixtures=[{"parameters": ["fe", "ni", "zn"]}]), "mixtures[0].parameters[2]") == (
        "unknown parameter 'zn'"
    )
    assert spec_error(alloy(mixtures=[{"parameters": ["fe", "anneal_c"]}]), "mixtures[0].parameters[1]") == (
        "parameter 'anneal_c' is integer; a mixture's components are continuous"
    )
    twice = alloy(mixtures=[{"parameters": ["fe", "ni"]}, {"parameters": ["ni", "co"]}])
    assert spec_error(twice, "mixtures[1].parameters[0]") == "'ni' is already a component of mixtures[0]"
    negative = alloy({"co": [-0.1, 0.6]})
    assert spec_error(negative, "mixtures[0].parameters[2]") == "'co' may go below 0 (bounds [-0.1, 0.6])"
    assert "listed twice" in spec_error(alloy(mixtures=[{"parameters": ["fe", "fe"]}]), "mixtures[0].parameters")
    assert "greater than 0" in spec_error(alloy(mixtures=[{"parameters": METALS, "total": 0}]), "mixtures[0].total")
    assert spec_error(alloy(mixtures=[{"parameters": METALS, "ratio": 1}]), "mixtures[0].ratio") == "unknown key"


def test_a_mixture_with_constraints_no_point_meets_is_refused() -> None:
    data = alloy(constraints=[{"coefficients": {"fe": 1, "ni": 1}, "operator": "<=", "rhs": 0.3}])
    message = spec_error(data, "constraints")
    assert message == "no point of the space satisfies them all (fe + ni + co = 1; 1*fe + 1*ni <= 0.3)"


def test_an_edited_point_must_still_sum_to_the_total() -> None:
    spec = parse(alloy())
    lab = SimpleNamespace(candidates=None)
    good = {"fe": 0.5, "ni": 0.3, "co": 0.2, "anneal_c": 400}
    _check_point(spec, spec.problem(), lab, good, ["fe"])
    with pytest.raises(SpecError) as info:
        _check_point(spec, spec.problem(), lab, {**good, "fe": 0.6}, ["fe"])
    assert str(info.value) == "mixtures[0]: the edited point breaks fe + ni + co = 1 (it gives 1.1)"
