"""The planner suite's problems: published reaction and materials tables, and BoTorch's test functions.

One module, imported by `benchmarks/planner_suite.py` (peirce's environment) and by the peer runners
(`benchmarks/peers/*_runner.py`, in BayBE's and Ax's own environments), so that every method meets the same
problem: the same candidates, the same function, the same noise draws. It needs numpy and pandas, and BoTorch
(present in all three environments) for the test functions; nothing of peirce's.

Two kinds of problem:

* **pool** — a published table of measured experiments. The table's distinct parameter rows are the only
  candidates (a method may propose nothing else); the objective of a proposed row is looked up. Rows measured
  more than once (same parameters) are merged into one candidate whose value is the mean of the repeats.
  Score: the best value found; "top 1 %" is the value of the ceil(1 %)-th best distinct row.
* **function** — a BoTorch test function on its box (continuous). Score: simple regret of the best *true*
  (noise-free) value among the feasible points evaluated; "top 1 %" means a regret within 1 % of the
  function's range (optimum to worst value on the feasible box). A multi-objective function is scored by the
  hypervolume of the true values of the points evaluated against a fixed reference point; "top 1 %" means within
  1 % of the largest hypervolume.

Noise, where a problem has it, is drawn from `numpy.random.default_rng([seed, experiment index, 7])`, so the
k-th experiment of a seed sees the same noise draw whichever method proposed it.

No Suzuki–Miyaura data is used (held back for evaluation); tests/benchmarks/test_suite_problems.py checks it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
REACTIONS = REPO / "simulators" / "data"
OLYMPUS = REPO / "benchmarks" / "data" / "olympus"

EDBO_LICENCE = "MIT (EDBO; simulators/data/LICENSE-edbo.txt)"
OLYMPUS_LICENCE = "MIT (Olympus, copyright 2020 Aspuru-Guzik group; benchmarks/data/olympus/LICENSE)"
BOTORCH_LICENCE = "MIT (BoTorch test functions, botorch.test_functions)"


@dataclass(frozen=True)
class Parameter:
    """One input. kind: continuous (bounds), discrete (numeric `values`), categorical (`values`), molecule
    (`smiles`: name -> SMILES; the candidates hold the names)."""

    name: str
    kind: str
    bounds: tuple[float, float] | None = None
    values: tuple = ()
    smiles: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # "maximize" | "minimize"
    reference: float | None = None  # multi-objective: the hypervolume reference (worst value still counted)

    @property
    def sign(self) -> float:
        """+1 when larger is better."""
        return 1.0 if self.direction == "maximize" else -1.0


@dataclass
class Problem:
    name: str
    title: str
    kind: str  # "pool" | "function"
    parameters: tuple[Parameter, ...]
    objectives: tuple[Objective, ...]
    source: str
    licence: str
    checkpoints: tuple[int, ...] = (10, 20, 30)
    batch_size: int = 5
    note: str = ""
    # pool problems
    loader: Callable[[], pd.DataFrame] | None = None
    # function problems
    function: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
    constraints: tuple[str, ...] = ()  # names of constraint outcomes: feasible when every one is <= 0
    noise_sd: float = 0.0
    optimum: float | None = None  # single objective: the best true value on the feasible box
    worst: float | None = None  # single objective: the worst true value on the feasible box
    max_hypervolume: float | None = None  # multi-objective
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def experiments(self) -> int:
        return max(self.checkpoints)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def is_multiobjective(self) -> bool:
        return len(self.objectives) > 1

    # ------------------------------------------------------------------ pools
    @cached_property
    def table(self) -> pd.DataFrame:
        """Pool: one row per distinct candidate (parameter columns, then objective columns)."""
        if self.loader is None:
            raise TypeError(f"{self.name} is not a pool problem")
        raw = self.loader()
        merged = raw.groupby(self.names, sort=False, as_index=False)[[o.name for o in self.objectives]].mean()
        return merged.reset_index(drop=True)

    @cached_property
    def _lookup(self) -> dict[tuple, dict[str, float]]:
        objectives = [o.name for o in self.objectives]
        return {
            key(row, self.names): {o: float(row[o]) for o in objectives} for row in self.table.to_dict(orient="records")
        }

    def candidates(self) -> list[dict[str, Any]]:
        """Pool: the candidate points (plain Python values), in the table's order."""
        rows = self.table[self.names].to_dict(orient="records")
        return [{k: _plain(v) for k, v in r.items()} for r in rows]

    def top_level(self) -> float:
        """Pool, one objective: the value of the ceil(1 %)-th best candidate (reaching it = reaching the top 1 %)."""
        objective = self.objectives[0]
        return top_one_percent(self.table[objective.name].to_numpy(dtype=float) * objective.sign) * objective.sign

    def best_value(self) -> float:
        objective = self.objectives[0]
        values = self.table[objective.name].to_numpy(dtype=float)
        return float(values.max() if objective.sign > 0 else values.min())

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, point: Mapping[str, Any], seed: int, index: int) -> dict[str, Any]:
        """The outcome of experiment `index` (0-based) of seed `seed` at `point`:
        {"observed": {objective: value}, "true": {objective: value}, "constraints": {name: value},
        "feasible": bool}. A pool point must be a candidate (KeyError otherwise)."""
        if self.kind == "pool":
            values = self._lookup[key(point, self.names)]
            return {"observed": dict(values), "true": dict(values), "constraints": {}, "feasible": True}
        assert self.function is not None
        x = np.array([[float(point[n]) for n in self.names]])
        outputs = {k: float(v[0]) for k, v in self.function(x).items()}
        true = {o.name: outputs[o.name] for o in self.objectives}
        observed = dict(true)
        if self.noise_sd:
            draws = np.random.default_rng([seed, index, 7]).normal(0.0, self.noise_sd, len(self.objectives))
            observed = {name: value + float(d) for (name, value), d in zip(true.items(), draws, strict=True)}
        constraints = {c: outputs[c] for c in self.constraints}
        feasible = all(v <= 0 for v in constraints.values())
        return {"observed": observed, "true": true, "constraints": constraints, "feasible": feasible}

    def describe(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "kind": self.kind,
            "parameters": [p.name for p in self.parameters],
            "objectives": [f"{o.direction} {o.name}" for o in self.objectives],
            "constraints": [f"{c} <= 0" for c in self.constraints],
            "noise_sd": self.noise_sd,
            "candidates": len(self.table) if self.kind == "pool" else None,
            "checkpoints": list(self.checkpoints),
            "batch_size": self.batch_size,
            "source": self.source,
            "licence": self.licence,
        }


def top_one_percent(values: Sequence[float] | np.ndarray) -> float:
    """The value of the ceil(1 %)-th best of `values`, larger being better: reaching it is reaching the top 1 %."""
    ordered = np.sort(np.asarray(values, dtype=float))[::-1]
    return float(ordered[math.ceil(0.01 * len(ordered)) - 1])


def key(point: Mapping[str, Any], names: Sequence[str]) -> tuple:
    """A candidate's identity: strings as they are, numbers rounded to 9 significant digits."""
    return tuple(point[n] if isinstance(point[n], str) else float(f"{float(point[n]):.9g}") for n in names)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return float(value)
    return value


# ---------------------------------------------------------------------------------------------- reaction tables
def _direct_arylation() -> pd.DataFrame:
    data = pd.read_csv(REACTIONS / "direct_arylation" / "reactions.csv")
    return data.rename(columns={"Ligand": "ligand", "Base": "base", "Solvent": "solvent", "Temp_C": "temperature"})[
        ["ligand", "base", "solvent", "temperature", "Concentration", "yield"]
    ].rename(columns={"Concentration": "concentration"})


def _direct_arylation_parameters() -> tuple[Parameter, ...]:
    data = pd.read_csv(REACTIONS / "direct_arylation" / "reactions.csv")
    molecules = tuple(
        Parameter(name.lower(), "molecule", smiles=dict(zip(data[name], data[f"{name}_SMILES"], strict=True)))
        for name in ("Ligand", "Base", "Solvent")
    )
    levels = {name: tuple(sorted(float(v) for v in data[column].unique()))
              for name, column in (("temperature", "Temp_C"), ("concentration", "Concentration"))}  # fmt: skip
    return (*molecules, *(Parameter(name, "discrete", values=values) for name, values in levels.items()))


AA_COLUMNS = {"aryl_halide": "Aryl_halide_SMILES", "additive": "Additive_SMILES", "base": "Base_SMILES",
              "ligand": "Ligand_SMILES"}  # fmt: skip


def _aryl_amination() -> pd.DataFrame:
    data = pd.read_csv(REACTIONS / "aryl_amination" / "reactions.csv")
    return data.rename(columns={v: k for k, v in AA_COLUMNS.items()})[[*AA_COLUMNS, "yield"]]


def _aryl_amination_parameters() -> tuple[Parameter, ...]:
    data = pd.read_csv(REACTIONS / "aryl_amination" / "reactions.csv")
    # The table names its molecules by SMILES only; the SMILES is the molecule's name too.
    return tuple(
        Parameter(name, "molecule", smiles={s: s for s in sorted(data[column].unique())})
        for name, column in AA_COLUMNS.items()
    )


# ---------------------------------------------------------------------------------------------- Olympus tables
def olympus_frame(name: str) -> pd.DataFrame:
    """An Olympus data set as committed: data.csv has no header; config.json names the columns in order."""
    import json

    folder = OLYMPUS / name
    config = json.loads((folder / "config.json").read_text())
    columns = [p["name"] for p in config["parameters"]] + [m["name"] for m in config["measurements"]]
    return pd.read_csv(folder / "data.csv", header=None, names=columns)


def _olympus_parameters(name: str) -> tuple[Parameter, ...]:
    import json

    config = json.loads((OLYMPUS / name / "config.json").read_text())
    data = olympus_frame(name)
    # Bounds are the table's own span: a pool problem never leaves its rows.
    return tuple(
        Parameter(p["name"], "continuous", bounds=(float(data[p["name"]].min()), float(data[p["name"]].max())))
        for p in config["parameters"]
    )


def _olympus(name: str, title: str, objective: Objective, source: str, **kwargs: Any) -> Problem:
    return Problem(
        name=name,
        title=title,
        kind="pool",
        parameters=_olympus_parameters(name),
        objectives=(objective,),
        source=f"{source}; via Olympus (Häse et al., Mach. Learn.: Sci. Technol. 2, 035021 (2021)), "
        f"benchmarks/data/olympus/{name}",
        licence=OLYMPUS_LICENCE,
        loader=lambda: olympus_frame(name),
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------- test functions
def _botorch(cls_name: str, module: str = "synthetic", **kwargs: Any) -> Any:
    import importlib

    return getattr(importlib.import_module(f"botorch.test_functions.{module}"), cls_name)(**kwargs)


def _branin(x: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    return {"y": _botorch("Branin").evaluate_true(torch.as_tensor(x, dtype=torch.float64)).numpy()}


def _hartmann6(x: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    return {"y": _botorch("Hartmann", dim=6).evaluate_true(torch.as_tensor(x, dtype=torch.float64)).numpy()}


def _gramacy(x: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    f = _botorch("ConstrainedGramacy")
    X = torch.as_tensor(x, dtype=torch.float64)
    slack = f.evaluate_slack_true(X).numpy()  # BoTorch: feasible where slack >= 0
    return {"y": f.evaluate_true(X).numpy(), "c1": -slack[:, 0], "c2": -slack[:, 1]}


def _branin_currin(x: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    values = _botorch("BraninCurrin", "multi_objective").evaluate_true(torch.as_tensor(x, dtype=torch.float64))
    return {"branin": values[:, 0].numpy(), "currin": values[:, 1].numpy()}


def _box(names: Sequence[str], lower: Sequence[float], upper: Sequence[float]) -> tuple[Parameter, ...]:
    return tuple(
        Parameter(n, "continuous", bounds=(float(lo), float(hi))) for n, lo, hi in zip(names, lower, upper, strict=True)
    )


# ---------------------------------------------------------------------------------------------- hypervolume
def hypervolume_2d(values: np.ndarray, reference: Sequence[float], signs: Sequence[float]) -> float:
    """Hypervolume of 2-objective points against `reference` (signs: +1 maximise, -1 minimise), exact."""
    if len(values) == 0:
        return 0.0
    points = np.asarray(values, dtype=float) * np.asarray(signs)  # now maximise both
    ref = np.asarray(reference, dtype=float) * np.asarray(signs)
    points = points[(points > ref).all(axis=1)]
    if len(points) == 0:
        return 0.0
    points = points[np.argsort(-points[:, 0])]
    volume, best_second = 0.0, ref[1]
    for first, second in points:
        if second > best_second:
            volume += (first - ref[0]) * (second - best_second)
            best_second = second
    return float(volume)


# ---------------------------------------------------------------------------------------------- the suite
def build_problems() -> dict[str, Problem]:
    problems = [
        Problem(
            name="direct_arylation",
            title="Pd-catalysed direct arylation, 1,728 reactions (ligand, base, solvent as molecules)",
            kind="pool",
            parameters=_direct_arylation_parameters(),
            objectives=(Objective("yield", "maximize"),),
            source="Shields et al., Nature 590, 89 (2021); simulators/data/direct_arylation",
            licence=EDBO_LICENCE,
            loader=_direct_arylation,
        ),
        Problem(
            name="aryl_amination",
            title="Buchwald–Hartwig C–N coupling, 3,955 reactions (4 molecule factors)",
            kind="pool",
            parameters=_aryl_amination_parameters(),
            objectives=(Objective("yield", "maximize"),),
            source="Ahneman et al., Science 360, 186 (2018), as indexed by EDBO; simulators/data/aryl_amination",
            licence=EDBO_LICENCE,
            loader=_aryl_amination,
            checkpoints=(10, 30, 50),
        ),
        _olympus(
            "hplc",
            "Automated HPLC: peak area over 6 process parameters",
            Objective("peak_area", "maximize"),
            "Roch et al., ChemOS, chemRxiv 10.26434/chemrxiv.5953606.v1 (2018); PLoS ONE 15, e0229862 (2020)",
        ),
        _olympus(
            "photo_pce10",
            "Organic photovoltaic blend (PCE10, P3HT, PCBM, oIDTBR fractions): photodegradation",
            Objective("degradation", "minimize"),
            "Langner et al., Adv. Mater. 32, 1907801 (2020)",
        ),
        _olympus(
            "photo_wf3",
            "Organic photovoltaic blend (WF3, P3HT, PCBM, oIDTBR fractions): photodegradation",
            Objective("degradation", "minimize"),
            "Langner et al., Adv. Mater. 32, 1907801 (2020)",
        ),
        _olympus(
            "fullerenes",
            "o-Xylenyl C60 adducts in flow: mole fraction of the wanted product (time, sultine ratio, temperature)",
            Objective("product", "maximize"),
            "Walker et al., React. Chem. Eng. 2, 785 (2017)",
        ),
        Problem(
            name="branin",
            title="Branin (2-d, noise-free), minimised",
            kind="function",
            parameters=_box(["x1", "x2"], [-5, 0], [10, 15]),
            objectives=(Objective("y", "minimize"),),
            source="Branin (1972); botorch.test_functions.Branin",
            licence=BOTORCH_LICENCE,
            function=_branin,
            optimum=0.397887,
            worst=308.129096,  # at (-5, 0), a corner of the box
        ),
        Problem(
            name="hartmann6_noisy",
            title="Hartmann-6 with Gaussian noise (sd 0.05), minimised; scored on the noise-free values",
            kind="function",
            parameters=_box([f"x{i}" for i in range(1, 7)], [0] * 6, [1] * 6),
            objectives=(Objective("y", "minimize"),),
            source="Hartmann; Dixon & Szegő (1978); botorch.test_functions.Hartmann(dim=6)",
            licence=BOTORCH_LICENCE,
            function=_hartmann6,
            noise_sd=0.05,
            optimum=-3.32237,
            worst=0.0,  # the function is minus a sum of positive terms, which vanish far from all four centres
            checkpoints=(20, 40, 60),
        ),
        Problem(
            name="gramacy_constrained",
            title="Gramacy's constrained problem: minimise x1 + x2 subject to two black-box constraints",
            kind="function",
            parameters=_box(["x1", "x2"], [0, 0], [1, 1]),
            objectives=(Objective("y", "minimize"),),
            source="Gramacy et al., Technometrics 58, 1 (2016); botorch.test_functions.ConstrainedGramacy",
            licence=BOTORCH_LICENCE,
            function=_gramacy,
            constraints=("c1", "c2"),
            optimum=0.5998,
            worst=1.732051,  # largest feasible x1 + x2 (BoTorch's _worst_feasible_value)
            note="an experiment that breaks a constraint gives no usable objective value",
        ),
        Problem(
            name="branin_currin",
            title="Branin–Currin (2 objectives, 2-d), both minimised; hypervolume against (18, 6)",
            kind="function",
            parameters=_box(["x1", "x2"], [0, 0], [1, 1]),
            objectives=(
                Objective("branin", "minimize", reference=18.0),
                Objective("currin", "minimize", reference=6.0),
            ),
            source="Belakaria et al., NeurIPS 2019; botorch.test_functions.multi_objective.BraninCurrin",
            licence=BOTORCH_LICENCE,
            function=_branin_currin,
            max_hypervolume=59.36011874867746,  # BoTorch's _max_hv for this reference point
        ),
    ]
    return {p.name: p for p in problems}


PROBLEM_NAMES = (
    "direct_arylation",
    "aryl_amination",
    "hplc",
    "photo_pce10",
    "photo_wf3",
    "fullerenes",
    "branin",
    "hartmann6_noisy",
    "gramacy_constrained",
    "branin_currin",
)


def get(name: str) -> Problem:
    return build_problems()[name]


# ---------------------------------------------------------------------------------------------- scoring
def score(problem: Problem, experiments: Sequence[Mapping[str, Any]], budget: int) -> float:
    """The problem's score after the first `budget` experiments: best value (pools), regret (functions),
    hypervolume (several objectives). nan when nothing feasible was found."""
    done = [e for e in experiments[:budget] if e["feasible"]]
    if problem.is_multiobjective:
        values = np.array([[e["true"][o.name] for o in problem.objectives] for e in done]).reshape(-1, 2)
        return hypervolume_2d(values, [o.reference for o in problem.objectives], [o.sign for o in problem.objectives])
    objective = problem.objectives[0]
    if not done:
        return float("nan")
    values = np.array([e["true"][objective.name] for e in done])
    best = float(values.max() if objective.sign > 0 else values.min())
    if problem.kind == "pool":
        return best
    assert problem.optimum is not None
    return abs(best - problem.optimum)


def reached_top(problem: Problem, value: float) -> bool:
    """Whether a score (from `score`) is in the top 1 % (see the module's docstring)."""
    if math.isnan(value):
        return False
    if problem.is_multiobjective:
        assert problem.max_hypervolume is not None
        return value >= 0.99 * problem.max_hypervolume
    if problem.kind == "pool":
        level = problem.top_level()
        return value >= level if problem.objectives[0].sign > 0 else value <= level
    assert problem.optimum is not None and problem.worst is not None
    return value <= 0.01 * abs(problem.worst - problem.optimum)


def metric_name(problem: Problem) -> str:
    if problem.is_multiobjective:
        return "hypervolume"
    if problem.kind == "pool":
        objective = problem.objectives[0]
        return f"best {objective.name} ({'max' if objective.sign > 0 else 'min'})"
    return "regret"
