"""The platform as a new user meets it: the demo script, the commands the docs name, and a quiet stderr."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.campaigns import hartmann_spec, write_spec

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SOBOL_WARNING = "balance properties of Sobol"


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
    spec = write_spec(tmp_path / "h6.yaml", hartmann_spec(planner={"kind": "bayesian", "seed": 7}, hypotheses="model"))
    db = f"sqlite:///{tmp_path / 'h6.db'}"
    peirce = str(BIN / "peirce")
    ran = subprocess.run([peirce, "run", str(spec), "--db", db], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    assert SOBOL_WARNING not in ran.stderr
    replayed = subprocess.run([peirce, "replay", "h6", "--db", db], capture_output=True, text=True, timeout=600)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert SOBOL_WARNING not in replayed.stderr
