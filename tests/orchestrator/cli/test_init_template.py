"""`peirce init --template NAME`: a template's folder copied whole to start from, or one line and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import campaigns
from tests.orchestrator.cli.helpers import invoke, one_error


@pytest.fixture
def examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An examples folder with one template (a campaign, notes in a subfolder, what a run left) and a plain file."""
    folder = tmp_path / "examples"
    (folder / "bench" / "notes").mkdir(parents=True)
    (folder / "bench" / "campaign.yaml").write_text("name: bench\n")
    (folder / "bench" / "README.md").write_text("# bench\n")
    (folder / "bench" / "notes" / "a.txt").write_text("a note\n")
    (folder / "bench" / "t.db").write_bytes(b"left by a run")
    for suffix in ("-wal", "-shm", "-journal"):  # left by a run still alive, or killed
        (folder / "bench" / f"t.db{suffix}").write_bytes(b"")
    (folder / "bench" / "__pycache__").mkdir()
    (folder / "bench" / "__pycache__" / "x.pyc").write_bytes(b"")
    (folder / "hartmann6.yaml").write_text("name: h\n")  # a campaign file, not a template
    monkeypatch.setattr(campaigns, "TEMPLATES_DIR", folder)
    return folder


def test_a_template_is_copied_whole_without_what_runs_left(examples: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    done = invoke("init", "--template", "bench", cwd=work)
    assert done.returncode == 0, done.stderr
    written = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    assert written == ["bench/README.md", "bench/campaign.yaml", "bench/notes/a.txt"]
    assert (work / "bench" / "notes" / "a.txt").read_text() == "a note\n"
    assert "wrote bench/ (3 files) from template bench" in done.stdout
    into = invoke("init", "lab", "--template", "bench", cwd=work)  # a folder of one's own choosing
    assert into.returncode == 0 and (work / "lab" / "campaign.yaml").read_text() == "name: bench\n"


def test_an_unknown_template_or_an_existing_file_is_one_line_and_nothing_is_written(
    examples: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    unknown = invoke("init", "--template", "hartmann6", cwd=work)
    assert one_error(unknown, "--template: no template 'hartmann6' (templates: bench)")
    assert list(work.iterdir()) == []
    (work / "bench").mkdir()
    (work / "bench" / "README.md").write_text("mine\n")
    clash = invoke("init", "--template", "bench", cwd=work)
    assert one_error(clash, "bench/README.md: file exists (use --force to overwrite)")
    assert [p.name for p in (work / "bench").iterdir()] == ["README.md"]
    assert (work / "bench" / "README.md").read_text() == "mine\n"
    assert invoke("init", "--template", "bench", "--force", cwd=work).returncode == 0
    assert (work / "bench" / "README.md").read_text() == "# bench\n"
