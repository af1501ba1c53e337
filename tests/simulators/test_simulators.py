"""Simulators: test functions at their known optima, seeded noise, and lookups in tables of real measurements."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.base import PointNotInTable, SimulationError
from simulators.functions import TEST_FUNCTIONS, FunctionSimulator, ackley, branin, hartmann6
from simulators.lookup import Factor, LookupSimulator, TableError

DATA = Path(__file__).resolve().parents[2] / "simulators" / "data"
DIRECT_ARYLATION = DATA / "direct_arylation" / "reactions.csv"
ARYL_AMINATION = DATA / "aryl_amination" / "reactions.csv"

BRANIN_MINIMISERS = [(-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)]
HARTMANN6_MINIMISER = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)

XPHOS = "CC(C1=C(C2=CC=CC=C2P(C3CCCCC3)C4CCCCC4)C(C(C)C)=CC(C(C)C)=C1)C"


# --- test functions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("x", BRANIN_MINIMISERS)
def test_branin_minima(x: tuple[float, float]) -> None:
    assert branin(x) == pytest.approx(0.397887, abs=1e-4)
    assert branin(x) == pytest.approx(TEST_FUNCTIONS["branin"].optimum, abs=1e-4)


def test_hartmann6_minimum() -> None:
    assert hartmann6(HARTMANN6_MINIMISER) == pytest.approx(-3.32237, abs=1e-4)
    assert hartmann6(HARTMANN6_MINIMISER) == pytest.approx(TEST_FUNCTIONS["hartmann6"].optimum, abs=1e-4)


@pytest.mark.parametrize("dimension", [1, 2, 6])
def test_ackley_minimum_at_origin(dimension: int) -> None:
    assert ackley([0.0] * dimension) == pytest.approx(0.0, abs=1e-4)
    assert ackley([1.0] * dimension) > 1.0


def test_test_function_dimensions() -> None:
    assert TEST_FUNCTIONS["branin"].dimension == 2
    assert TEST_FUNCTIONS["hartmann6"].dimension == 6
    assert TEST_FUNCTIONS["ackley"].dimension is None


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.floats(0, 1), min_size=6, max_size=6))
def test_hartmann6_never_below_its_minimum(x: list[float]) -> None:
    assert hartmann6(x) >= -3.32237 - 1e-4


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.floats(-5, 10), st.floats(0, 15))
def test_branin_never_below_its_minimum(x1: float, x2: float) -> None:
    assert branin((x1, x2)) >= 0.397887 - 1e-4


def test_function_simulator_without_noise_is_exact() -> None:
    simulator = FunctionSimulator("hartmann6", [f"x{i}" for i in range(1, 7)], "y")
    point = {f"x{i}": v for i, v in enumerate(HARTMANN6_MINIMISER, start=1)}
    result = simulator.run(point, "key-1")
    assert result.values["y"] == pytest.approx(-3.32237, abs=1e-4)  # the published minimum, not the code's own value
    assert simulator.run(point, "key-2").values == result.values, "without noise, the same point reads the same"
    assert not result.infeasible


def test_function_simulator_reads_parameters_in_declared_order() -> None:
    simulator = FunctionSimulator("branin", ["b", "a"], "y")
    assert simulator.run({"a": 2.275, "b": math.pi}, "k").values["y"] == pytest.approx(0.397887, abs=1e-4)


def test_unknown_test_function() -> None:
    with pytest.raises(ValueError, match="rosenbrock"):
        FunctionSimulator("rosenbrock", ["x"], "y")


def test_noise_is_deterministic_per_seed_and_key() -> None:
    point = {"x1": 1.0, "x2": 2.0}
    a = FunctionSimulator("branin", ["x1", "x2"], "y", noise_std=0.5, seed=7)
    b = FunctionSimulator("branin", ["x1", "x2"], "y", noise_std=0.5, seed=7)
    first = a.run(point, "exp-1").values["y"]
    assert a.run(point, "exp-1").values["y"] == first  # a re-run of the same key
    assert b.run(point, "exp-1").values["y"] == first  # another simulator with the same seed
    assert a.run(point, "exp-2").values["y"] != first  # another key
    other_seed = FunctionSimulator("branin", ["x1", "x2"], "y", noise_std=0.5, seed=8)
    assert other_seed.run(point, "exp-1").values["y"] != first
    assert first != branin((1.0, 2.0))


def test_noise_does_not_depend_on_order() -> None:
    simulator = FunctionSimulator("ackley", ["x"], "y", noise_std=1.0, seed=3)
    keys = [f"k{i}" for i in range(20)]
    forward = {k: simulator.run({"x": 0.5}, k).values["y"] for k in keys}
    backward = {k: simulator.run({"x": 0.5}, k).values["y"] for k in reversed(keys)}
    assert forward == backward
    assert len(set(forward.values())) == len(keys)


def test_noise_has_the_requested_scale() -> None:
    simulator = FunctionSimulator("branin", ["x1", "x2"], "y", noise_std=0.2, seed=11)
    true = branin((0.0, 5.0))
    errors = np.array([simulator.run({"x1": 0.0, "x2": 5.0}, f"k{i}").values["y"] - true for i in range(400)])
    assert abs(errors.mean()) < 0.05
    assert 0.15 < errors.std() < 0.25


# --- lookup tables -----------------------------------------------------------------------------------------


def arylation_by_name() -> LookupSimulator:
    return LookupSimulator(
        DIRECT_ARYLATION,
        [
            Factor("base", "Base"),
            Factor("ligand", "Ligand"),
            Factor("solvent", "Solvent"),
            Factor("concentration", "Concentration", "number"),
            Factor("temperature", "Temp_C", "number"),
        ],
        {"yield": "yield"},
    )


def test_lookup_returns_the_table_value() -> None:
    # Row `entry 5` of the table: Potassium acetate, XPhos, DMAc, 0.1 M, 105 degC -> 65.37 % yield.
    simulator = arylation_by_name()
    assert len(simulator) == 1728
    point = {
        "base": "Potassium acetate",
        "ligand": "XPhos",
        "solvent": "DMAc",
        "concentration": 0.1,
        "temperature": 105,
    }
    assert simulator.run(point, "k").values == {"yield": 65.37}
    # Row `entry 0`: BrettPhos instead of XPhos -> 5.47 %.
    assert simulator.run({**point, "ligand": "BrettPhos"}, "k").values == {"yield": 5.47}


def test_lookup_matches_numbers_not_their_spelling() -> None:
    simulator = arylation_by_name()
    point = {
        "base": "Potassium acetate",
        "ligand": "XPhos",
        "solvent": "DMAc",
        "concentration": 0.1,
        "temperature": 105,
    }
    assert simulator.run({**point, "temperature": 105.0, "concentration": 0.1000000000001}, "k").values == {
        "yield": 65.37
    }


def test_lookup_matches_molecules_by_canonical_smiles() -> None:
    simulator = LookupSimulator(
        DIRECT_ARYLATION,
        [
            Factor("base", "Base_SMILES", "smiles"),
            Factor("ligand", "Ligand_SMILES", "smiles", aliases={"XPhos": XPHOS}),
            Factor("solvent", "Solvent_SMILES", "smiles", aliases={"DMAc": "CN(C)C(C)=O"}),
            Factor("concentration", "Concentration", "number"),
            Factor("temperature", "Temp_C", "number"),
        ],
        {"yield": "yield"},
    )
    point = {
        # The table writes potassium acetate as O=C([O-])C.[K+]; this is the same salt, written otherwise.
        "base": "[K+].CC([O-])=O",
        "ligand": "XPhos",
        # The table writes DMAc as CC(N(C)C)=O; the alias is another spelling of it.
        "solvent": "DMAc",
        "concentration": 0.1,
        "temperature": 105,
    }
    assert simulator.run(point, "k").values == {"yield": 65.37}


def test_lookup_on_an_all_smiles_table() -> None:
    simulator = LookupSimulator(
        ARYL_AMINATION,
        [
            Factor("aryl_halide", "Aryl_halide_SMILES", "smiles"),
            Factor("additive", "Additive_SMILES", "smiles"),
            Factor("base", "Base_SMILES", "smiles"),
            Factor("ligand", "Ligand_SMILES", "smiles"),
        ],
        {"yield": "yield"},
    )
    assert len(simulator) == 3955
    point = {
        "aryl_halide": "Clc1ccc(cc1)C(F)(F)F",  # written FC(F)(F)c1ccc(Cl)cc1 in the table
        "additive": "c1ccc(cc1)-c1ccno1",  # o1nccc1c2ccccc2
        "base": "CCN=P(N=P(N(C)C)(N(C)C)N(C)C)(N(C)C)N(C)C",  # P2Et
        "ligand": "CC(C)c1cc(C(C)C)c(-c2ccccc2P(C2CCCCC2)C2CCCCC2)c(C(C)C)c1",  # XPhos
    }
    assert simulator.run(point, "k").values["yield"] == pytest.approx(10.65781182)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_lookup_averages_replicates(tmp_path: Path) -> None:
    table = write_csv(
        tmp_path / "replicates.csv",
        "catalyst,temp,yield,purity\nA,80,10,0.9\nA,80,20,0.7\nA,80,60,0.8\nB,80,5,0.5\n",
    )
    simulator = LookupSimulator(
        table, [Factor("cat", "catalyst"), Factor("t", "temp", "number")], {"y": "yield", "p": "purity"}
    )
    assert len(simulator) == 2
    assert simulator.run({"cat": "A", "t": 80}, "k").values == {"y": pytest.approx(30.0), "p": pytest.approx(0.8)}
    assert simulator.run({"cat": "B", "t": 80.0}, "k").values == {"y": 5.0, "p": 0.5}


def test_lookup_missing_combination_names_the_point() -> None:
    simulator = arylation_by_name()
    point = {
        "base": "Potassium acetate",
        "ligand": "XPhos",
        "solvent": "DMAc",
        "concentration": 0.1,
        "temperature": 100,  # the screen ran 90, 105 and 120
    }
    with pytest.raises(PointNotInTable) as info:
        simulator.run(point, "k")
    message = str(info.value)
    assert "reactions.csv" in message
    assert "temperature=100" in message
    assert "base='Potassium acetate'" in message
    assert "ligand='XPhos'" in message
    assert isinstance(info.value, SimulationError)
    assert info.value.retryable is False


def test_lookup_missing_outcome_value_is_not_in_table(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "gaps.csv", "a,y\n1,0.5\n2,\n")
    simulator = LookupSimulator(table, [Factor("a", "a", "number")], {"y": "y"})
    assert simulator.run({"a": 1}, "k").values == {"y": 0.5}
    with pytest.raises(PointNotInTable, match="no value of y for a=2"):
        simulator.run({"a": 2}, "k")


def test_lookup_points_translate_aliases_back(tmp_path: Path) -> None:
    table = write_csv(
        tmp_path / "molecules.csv",
        "solvent,temp,yield\nC1=CC=CC=C1,80,10\nCc1ccccc1,80,20\nCc1ccccc1,100,30\nClCCl,100,40\n",
    )
    simulator = LookupSimulator(
        table,
        [
            Factor("solvent", "solvent", "smiles", aliases={"benzene": "c1ccccc1", "toluene": "Cc1ccccc1"}),
            Factor("temp", "temp", "number"),
        ],
        {"yield": "yield"},
    )
    points = simulator.points()
    assert len(points) == len(simulator) == 4
    assert points[:3] == [
        {"solvent": "benzene", "temp": 80.0},
        {"solvent": "toluene", "temp": 80.0},
        {"solvent": "toluene", "temp": 100.0},
    ]
    assert points[3] == {"solvent": "ClCCl", "temp": 100.0}  # no alias: the canonical SMILES
    for point, expected in zip(points, [10, 20, 30, 40], strict=True):
        assert simulator.run(point, "k").values == {"yield": expected}


def test_lookup_missing_values(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "t.csv", "solvent,yield\nc1ccccc1,1\nCc1ccccc1,2\n")
    simulator = LookupSimulator(
        table, [Factor("solvent", "solvent", "smiles", aliases={"benzene": "C1=CC=CC=C1"})], {"yield": "yield"}
    )
    assert simulator.missing_values("solvent", ["benzene", "Cc1ccccc1", "O", "water"]) == ["O", "water"]


def test_lookup_table_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(TableError) as info:
        LookupSimulator(tmp_path / "absent.csv", [Factor("a", "a")], {"y": "y"})
    assert info.value.field == "lab.table"
    table = write_csv(tmp_path / "t.csv", "a,y,label\n1,2,x\nnot-a-number,3,y\n")
    with pytest.raises(TableError) as info:
        LookupSimulator(table, [Factor("a", "b")], {"y": "y"})
    assert info.value.field == "lab.columns.a"
    with pytest.raises(TableError) as info:
        LookupSimulator(table, [Factor("a", "a")], {"y": "label"})
    assert info.value.field == "lab.outcomes.y"
    with pytest.raises(TableError) as info:
        LookupSimulator(table, [Factor("a", "a", "number")], {"y": "y"})
    assert info.value.field == "lab.columns.a"
    assert "not-a-number" in str(info.value)
