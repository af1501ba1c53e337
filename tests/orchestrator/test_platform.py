"""The platform as a new user meets it: the demo script, the commands the docs name, and a quiet stderr."""

from __future__ import annotations

import ast
import hashlib
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution
from sqlalchemy import func, select, update

from orchestrator.store.artifacts import ENV as ARTIFACTS_ENV
from orchestrator.store.artifacts import ArtifactError
from orchestrator.store.database import open_database
from orchestrator.store.models import Artifact
from tests.campaigns import hartmann_spec, write_spec

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SOBOL_WARNING = "balance properties of Sobol"


def test_setuptools_reads_the_project_table_without_a_deprecation() -> None:
    # The table form `license = { text = "MIT" }` made every install print a deprecation, twice.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), REPO / "pyproject.toml")
    assert [str(w.message).splitlines()[0] for w in caught] == []
    assert dist.metadata.license_expression == "MIT"


OUR_PACKAGES = ("orchestrator", "planners", "instruments", "simulators")


def _uncommented_function_level_imports(path: Path) -> list[str]:
    """Imports of our own packages inside a function with no comment on them (or on the imports just above)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for function in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            if not any(module.split(".")[0] in OUR_PACKAGES for module in modules):
                continue
            block = [lines[node.lineno - 1]]
            above = node.lineno - 2
            while above >= 0 and lines[above].strip().startswith(("#", "from ", "import ")):
                block.append(lines[above])
                above -= 1
            if not any("#" in line for line in block):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def test_a_function_level_import_of_our_own_modules_says_why_it_is_lazy() -> None:
    # Imports hidden in functions once hid two import cycles; the only reason left is start-up time, said in a comment.
    found = [
        line
        for package in OUR_PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        for line in _uncommented_function_level_imports(path)
    ]
    assert not found, "\n".join(found)


def _documented_commands() -> list[tuple[str, str]]:
    """(file, line) for each command line of the docs' code blocks (indented by four spaces or fenced)."""
    found = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        fenced = False
        for line in doc.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                fenced = not fenced
                continue
            if fenced or line.startswith("    "):
                found.append((doc.name, line.strip()))
    return found


def test_every_jupyter_command_the_docs_name_is_installed() -> None:
    # `jupyter X` runs the executable `jupyter-X`; the install has some (execute, kernel), not lab or notebook.
    named = [(doc, m.group(1)) for doc, line in _documented_commands() if (m := re.match(r"jupyter ([\w-]+)", line))]
    assert named, "the docs no longer say how to open the review notebook"
    missing = [f"{doc}: jupyter {sub}" for doc, sub in named if not (BIN / f"jupyter-{sub}").exists()]
    assert not missing


@pytest.mark.slow
def test_the_demo_run_afresh_removes_the_old_artifacts_with_the_old_database(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "h6.yaml", hartmann_spec(budget={"experiments": 2, "batch_size": 2}))
    env = {**os.environ, "PEIRCE_DEMO_DIR": str(tmp_path), "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("PEIRCE_ARTIFACTS", None)
    first = subprocess.run([REPO / "scripts" / "demo", spec], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    old = tmp_path / "demo.db.artifacts" / "left-by-the-first-run"
    old.parent.mkdir(exist_ok=True)
    old.write_text("stale")

    again = subprocess.run([REPO / "scripts" / "demo", spec], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "removing it to run the demo afresh" in again.stderr
    assert not old.exists()
    assert (tmp_path / "demo-results.csv").exists()


@pytest.mark.slow
def test_model_hypotheses_on_a_continuous_space_leave_no_sobol_warning_on_stderr(tmp_path: Path) -> None:
    # Three cycles of three: the smallest campaign whose hypothesis tests drew Sobol points the old way (checked
    # against the code before the fix, where this run printed the warning once).
    budget = {"experiments": 9, "batch_size": 3}
    data = hartmann_spec(planner={"kind": "bayesian", "seed": 7}, hypotheses="model", budget=budget)
    spec = write_spec(tmp_path / "h6.yaml", data)
    db = f"sqlite:///{tmp_path / 'h6.db'}"
    peirce = str(BIN / "peirce")
    run = [peirce, "run", str(spec), "--db", db, "--engine", "inline"]
    ran = subprocess.run(run, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    assert SOBOL_WARNING not in ran.stderr
    replayed = subprocess.run([peirce, "replay", "h6", "--db", db], capture_output=True, text=True, timeout=600)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert SOBOL_WARNING not in replayed.stderr


# --- artifacts: found from any folder that reaches the database ------------------------------------------------


def _state(n: int) -> dict[str, Any]:
    return {"hyperparameters": {"lengthscale": [0.5, n]}, "encoding": "unit"}


def test_an_artifact_put_from_one_folder_is_read_from_another(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ARTIFACTS_ENV, raising=False)  # where every command looks, not a folder named for the test
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "a")
    db = open_database(db_url)
    try:
        digest = db.artifacts.put(_state(1))
    finally:
        db.dispose()
    monkeypatch.chdir(tmp_path / "b")
    db = open_database(db_url, read_only=True)
    try:
        assert db.artifacts.get(digest) == _state(1)
    finally:
        db.dispose()
    assert not (tmp_path / "a" / "peirce-artifacts").exists()


def test_with_the_callers_session_an_artifact_is_a_row_committed_with_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ARTIFACTS_ENV, raising=False)
    db = open_database(db_url)
    try:
        with db.session() as session:
            digest = db.artifacts.put(_state(2), session)
            assert db.artifacts.put(_state(2), session) == digest  # the same content once
        with db.session() as session:
            row = session.get(Artifact, digest)
            assert row is not None and row.size == len(row.content)
        assert db.artifacts.get(digest) == _state(2)
        assert not db.artifacts.path(digest).exists()
        with pytest.raises(ArtifactError, match=r"is missing"), db.session() as session:
            db.artifacts.put(_state(3), session)
            raise ArtifactError("artifact rolled back with its session is missing")
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(Artifact)) == 1
    finally:
        db.dispose()


def test_a_changed_row_is_refused_by_name(sqlite_url: str) -> None:
    db = open_database(sqlite_url)
    try:
        with db.session() as session:
            digest = db.artifacts.put(_state(4), session)
        with db.engine.begin() as connection:
            connection.execute(update(Artifact).values(content=b'{"changed":1}'))
        with pytest.raises(ArtifactError, match=rf"artifact {digest} has been changed: .*\(the database\)"):
            db.artifacts.get(digest)
    finally:
        db.dispose()


def test_artifacts_an_older_peirce_wrote_beside_a_sqlite_file_are_still_read(tmp_path: Path) -> None:
    raw = b'{"encoding":"unit","hyperparameters":{"lengthscale":[0.5,5]}}'
    digest = hashlib.sha256(raw).hexdigest()
    legacy = tmp_path / "old.db.artifacts" / digest[:2] / f"{digest}.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(raw)
    db = open_database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        assert db.artifacts.get(digest) == _state(5)
        legacy.write_bytes(raw.replace(b"5", b"6"))
        with pytest.raises(ArtifactError, match=rf"artifact {digest} has been changed"):
            db.artifacts.get(digest)
        legacy.unlink()
        with pytest.raises(ArtifactError, match=rf"artifact {digest} is missing \(looked in the database and in "):
            db.artifacts.get(digest)
    finally:
        db.dispose()


@pytest.mark.slow
def test_a_campaign_run_in_one_folder_replays_from_another(db_url: str, tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    budget = {"experiments": 6, "batch_size": 3}
    spec = write_spec(tmp_path / "a" / "h6.yaml", hartmann_spec(planner={"kind": "bayesian", "seed": 7}, budget=budget))
    env = {key: value for key, value in os.environ.items() if key != ARTIFACTS_ENV}
    peirce = str(BIN / "peirce")
    ran = subprocess.run(
        [peirce, "run", "h6.yaml", "--db", db_url, "--engine", "inline"],
        cwd=tmp_path / "a",
        env=env,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    replayed = subprocess.run(
        [peirce, "replay", "h6", "--db", db_url], cwd=tmp_path / "b", env=env, capture_output=True, text=True
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "is missing" not in replayed.stdout + replayed.stderr
    assert spec.exists()
