"""A lab that is a Python function (`lab: {python: …}`): run with `peirce run` like any lab, a function's exception
is the experiment's failure (retried) with its message, a bad answer fails without a retry, a function that cannot
be imported is refused by `peirce validate` naming `lab.python`, and a lab registered by another distribution in the
`peirce.labs` entry points is found by its name."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.store.database import open_database
from orchestrator.store.models import Event, Experiment
from tests.campaigns import write_spec
from tests.orchestrator.cli.helpers import PEIRCE, invoke, one_error
from tests.orchestrator.lab import python_labs
from tests.orchestrator.lab.python_labs import bowl

MEASURE = "tests.orchestrator.lab.python_labs:measure"


def _spec(lab: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "bowl",
        "space": [
            {"name": "x1", "type": "continuous", "bounds": [0, 1]},
            {"name": "x2", "type": "continuous", "bounds": [0, 1]},
        ],
        "objectives": [{"name": "y", "direction": "minimize"}],
        "budget": {"experiments": 6, "batch_size": 2},
        "planner": {"kind": "random", "seed": 5},
        "hypotheses": "none",
        "lab": lab,
    }
    spec.update(overrides)
    return spec


def _experiments(url: str) -> list[Experiment]:
    db = open_database(url, read_only=True)
    try:
        with db.session() as session:
            rows = session.scalars(select(Experiment).order_by(Experiment.seq)).all()
            for row in rows:
                _ = row.measurements  # loaded while the session is open
            return list(rows)
    finally:
        db.dispose()


def test_a_campaign_whose_lab_is_a_function_runs_with_peirce_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "bowl.yaml", _spec({"python": MEASURE}))
    checked = invoke("validate", str(spec), cwd=tmp_path)
    assert checked.returncode == 0 and f"lab python function {MEASURE}" in checked.stdout
    python_labs.CALLS.clear()
    url = f"sqlite:///{tmp_path / 'bowl.db'}"
    ran = invoke("run", str(spec), "--db", url, "--engine", "inline", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "bowl finished: budget of 6 experiments spent" in ran.stdout
    experiments = _experiments(url)
    assert [e.state for e in experiments] == ["completed"] * 6
    assert [{"x1": e.parameters["x1"], "x2": e.parameters["x2"]} for e in experiments] == python_labs.CALLS
    for experiment in experiments:
        (measurement,) = experiment.measurements
        assert measurement.value == bowl(experiment.parameters["x1"], experiment.parameters["x2"])
    replayed = invoke("replay", "bowl", "--db", url, cwd=tmp_path)
    assert replayed.returncode == 0 and "3 of 3 decisions re-derived exactly" in replayed.stdout


def test_an_exception_in_the_function_is_the_experiments_failure_with_its_message(tmp_path: Path) -> None:
    lab = {"python": "tests.orchestrator.lab.python_labs:broken"}
    spec = write_spec(tmp_path / "bowl.yaml", _spec(lab, budget={"experiments": 2, "batch_size": 2}))
    url = f"sqlite:///{tmp_path / 'bowl.db'}"
    ran = invoke("run", str(spec), "--db", url, "--engine", "inline", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "2 failed" in ran.stdout and "budget of 2 experiments spent" in ran.stdout
    for experiment in _experiments(url):
        assert (experiment.state, experiment.attempts) == ("failed", 2)  # tried again once (max_retries: 1)
        assert experiment.error == (
            "tests.orchestrator.lab.python_labs:broken raised ConnectionError: "
            f"the furnace did not answer at x1={experiment.parameters['x1']:.3f}"
        )
    db = open_database(url, read_only=True)
    with db.session() as session:
        failures = session.scalars(select(Event).where(Event.to_state == "failed").order_by(Event.id)).all()
        verdicts = sorted((e.detail["seq"], e.detail["attempt"], e.detail["will_retry"]) for e in failures)
        assert {e.detail["error"] for e in failures} == {"ConnectionError"}
    db.dispose()
    assert verdicts == [(1, 1, True), (1, 2, False), (2, 1, True), (2, 2, False)]


def test_a_function_that_names_attempt_is_told_which_attempt_it_runs(tmp_path: Path) -> None:
    lab = {"python": "tests.orchestrator.lab.python_labs:fails_first"}
    spec = write_spec(tmp_path / "bowl.yaml", _spec(lab, budget={"experiments": 2, "batch_size": 2}))
    url = f"sqlite:///{tmp_path / 'bowl.db'}"
    ran = invoke("run", str(spec), "--db", url, "--engine", "inline", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    experiments = _experiments(url)
    assert [(e.state, e.attempts) for e in experiments] == [("completed", 2), ("completed", 2)]
    for experiment in experiments:
        (measurement,) = experiment.measurements
        assert measurement.value == bowl(experiment.parameters["x1"], experiment.parameters["x2"])


def test_an_answer_that_is_not_a_number_per_objective_fails_without_a_retry(tmp_path: Path) -> None:
    lab = {"python": "tests.orchestrator.lab.python_labs:wrong_answer"}
    spec = write_spec(tmp_path / "bowl.yaml", _spec(lab, budget={"experiments": 1, "batch_size": 1}))
    url = f"sqlite:///{tmp_path / 'bowl.db'}"
    assert invoke("run", str(spec), "--db", url, "--engine", "inline", cwd=tmp_path).returncode == 0
    (experiment,) = _experiments(url)
    assert (experiment.state, experiment.attempts) == ("failed", 1)
    assert (
        experiment.error == "tests.orchestrator.lab.python_labs:wrong_answer returned nan for 'y', not a finite number"
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("tests.orchestrator.lab.python_labs:nope", "module 'tests.orchestrator.lab.python_labs' has no 'nope'"),
        ("no_such_package.labs:measure", "cannot import module 'no_such_package.labs': ModuleNotFoundError"),
        ("tests.orchestrator.lab.python_labs:NOT_A_FUNCTION", "python_labs:NOT_A_FUNCTION' is int, not a function"),
        ("tests.orchestrator.lab.python_labs:", "is not `package.module:function`"),
        ("no-such-lab", "'no-such-lab' is neither `package.module:function` nor a lab registered in the 'peirce.labs'"),
    ],
)
def test_a_function_that_cannot_be_found_is_refused_naming_lab_python(
    tmp_path: Path, target: str, expected: str
) -> None:
    spec = write_spec(tmp_path / "bowl.yaml", _spec({"python": target}))
    line = one_error(invoke("validate", str(spec), cwd=tmp_path), "error: lab.python: ")
    assert expected in line
    url = f"sqlite:///{tmp_path / 'bowl.db'}"
    one_error(invoke("run", str(spec), "--db", url, "--engine", "inline", cwd=tmp_path), expected)
    assert not (tmp_path / "bowl.db").exists()  # refused before the database was made


def _distribution(site: Path) -> None:
    """A distribution installed into folder `site` that registers a lab in the `peirce.labs` entry points."""
    (site / "bowl_lab_plugin.py").write_text(
        "def measure(parameters):\n    return {'y': (parameters['x1'] - 0.3) ** 2 + (parameters['x2'] - 0.7) ** 2}\n",
        encoding="utf-8",
    )
    info = site / "bowl_lab_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bowl-lab-plugin\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[peirce.labs]\nbowl = bowl_lab_plugin:measure\n", encoding="utf-8")


def test_a_lab_registered_in_the_entry_points_is_found_by_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _distribution(site)
    monkeypatch.syspath_prepend(str(site))
    spec = write_spec(tmp_path / "bowl.yaml", _spec({"python": "bowl"}, budget={"experiments": 2, "batch_size": 2}))
    assert "lab python function bowl" in invoke("validate", str(spec), cwd=tmp_path).stdout
    url = f"sqlite:///{tmp_path / 'bowl.db'}"
    ran = invoke("run", str(spec), "--db", url, "--engine", "inline", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    for experiment in _experiments(url):
        assert experiment.measurements[0].value == bowl(experiment.parameters["x1"], experiment.parameters["x2"])
    other = write_spec(tmp_path / "other.yaml", _spec({"python": "bowel"}))
    one_error(invoke("validate", str(other), cwd=tmp_path), "(registered: bowl")


def test_a_module_beside_the_campaign_file_is_imported_from_the_folder_lab_path_names(tmp_path: Path) -> None:
    # A separate process, as a scientist runs it: the console script does not search the current folder.
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs" / "my_bowl.py").write_text("def measure(parameters):\n    return {'y': 1.0}\n", "utf-8")
    spec = write_spec(tmp_path / "bowl.yaml", _spec({"python": "my_bowl:measure", "path": "labs"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    checked = subprocess.run(
        [PEIRCE, "validate", str(spec)], cwd=elsewhere, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr
    assert "lab python function my_bowl:measure" in checked.stdout
    unplaced = write_spec(tmp_path / "unplaced.yaml", _spec({"python": "my_bowl:measure"}))
    refused = subprocess.run([PEIRCE, "validate", str(unplaced)], cwd=elsewhere, capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "error: lab.python: cannot import module 'my_bowl': ModuleNotFoundError: No module named 'my_bowl'"
    )
    missing = write_spec(tmp_path / "missing.yaml", _spec({"python": "my_bowl:measure", "path": "nowhere"}))
    gone = subprocess.run([PEIRCE, "validate", str(missing)], cwd=elsewhere, capture_output=True, text=True)
    assert gone.returncode == 2 and gone.stderr.strip() == f"error: lab.path: not a folder: {tmp_path / 'nowhere'}"


@pytest.mark.slow
def test_a_function_lab_runs_on_the_prefect_engine_too(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "bowl.yaml", _spec({"python": MEASURE}, budget={"experiments": 4, "batch_size": 2}))
    url = f"sqlite:///{tmp_path / 'bowl.db'}"
    ran = invoke("run", str(spec), "--db", url, cwd=tmp_path)  # the default engine: Prefect
    assert ran.returncode == 0, ran.stderr
    assert "bowl finished: budget of 4 experiments spent" in ran.stdout
    for experiment in _experiments(url):
        assert experiment.measurements[0].value == bowl(experiment.parameters["x1"], experiment.parameters["x2"])


def test_a_function_is_given_the_smiles_it_makes_and_can_say_infeasible(tmp_path: Path) -> None:
    molecules = {"ethanol": "CCO", "ethylamine": "CCN", "benzene": "c1ccccc1", "pyridine": "c1ccncc1"}
    spec = write_spec(
        tmp_path / "make.yaml",
        _spec(
            {"python": "tests.orchestrator.lab.python_labs:make"},
            name="make",
            space=[{"name": "m", "type": "molecule", "smiles": molecules}],
            budget={"experiments": 4, "batch_size": 2},
        ),
    )
    python_labs.CALLS.clear()
    url = f"sqlite:///{tmp_path / 'make.db'}"
    ran = invoke("run", str(spec), "--db", url, "--engine", "inline", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    experiments = {e.parameters["m"]: e for e in _experiments(url)}
    assert set(experiments) == set(molecules)
    assert sorted((c["parameters"]["m"], c["smiles"]["m"]) for c in python_labs.CALLS) == sorted(molecules.items())
    for name in ("ethylamine", "pyridine"):  # the science said no: infeasible, no measurement, not retried
        experiment = experiments[name]
        assert (experiment.state, experiment.attempts, experiment.measurements) == ("infeasible", 1, [])
    for name, atoms in (("ethanol", 3.0), ("benzene", 6.0)):
        (measurement,) = experiments[name].measurements
        assert (experiments[name].state, measurement.value) == ("completed", atoms)
    db = open_database(url, read_only=True)
    with db.session() as session:
        reasons = sorted(
            (e.detail or {})["reason"] for e in session.scalars(select(Event).where(Event.to_state == "infeasible"))
        )
    db.dispose()
    assert reasons == ["no product from ethylamine", "no product from pyridine"]


def test_an_action_journalled_with_an_unknown_key_is_the_functions_failure_and_status_still_reads(
    tmp_path: Path,
) -> None:
    lab = {"python": "tests.orchestrator.lab.python_labs:chatty"}
    spec = write_spec(tmp_path / "bowl.yaml", _spec(lab, budget={"experiments": 1, "batch_size": 1, "max_retries": 0}))
    url = f"sqlite:///{tmp_path / 'bowl.db'}"
    assert invoke("run", str(spec), "--db", url, "--engine", "inline", cwd=tmp_path).returncode == 0
    (experiment,) = _experiments(url)
    assert experiment.state == "failed"
    assert "journal: the detail of action-done has unknown key 'molecule'" in (experiment.error or "")
    status = invoke("status", "bowl", "--db", url, cwd=tmp_path)
    assert status.returncode == 0 and "Traceback" not in status.stderr, status
