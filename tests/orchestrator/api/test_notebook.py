"""The ask-and-tell notebook (notebooks/ask_tell.ipynb), executed as a scientist would run it: a campaign created
from YAML text, batches asked, measured and told until the budget is spent, then `peirce replay` on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from orchestrator.store.database import open_database
from orchestrator.store.models import Campaign, Decision, Event
from tests.conftest import REPO
from tests.orchestrator.review.test_review import _python3_kernel

NOTEBOOK = REPO / "notebooks" / "ask_tell.ipynb"


def test_the_stored_notebook_has_no_outputs() -> None:
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    source = "\n".join(c.source for c in code)
    for call in ("peirce.Campaign.create(SPEC", "campaign.ask()", "campaign.tell(batch, by=", '"replay"'):
        assert call in source


@pytest.mark.slow
def test_the_notebook_runs_its_campaign_to_the_end_and_replay_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    _python3_kernel()
    stored = NOTEBOOK.read_bytes()
    copy = tmp_path / "ask_tell.ipynb"
    shutil.copyfile(NOTEBOOK, copy)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook's temporary folder, where the test finds it
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(copy, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "3 entered (#1, #2, #3)\ncycle 1 induced" in text
    assert "campaign finished: budget of 12 experiments spent" in text
    assert "6 of 6 decisions re-derived exactly" in text
    assert NOTEBOOK.read_bytes() == stored  # executed a copy: the stored notebook is untouched

    (database,) = tmp_path.glob("peirce-ask-tell-*/esters.db")
    db = open_database(f"sqlite:///{database}", read_only=True)
    try:
        with db.session() as session:
            assert session.scalar(select(Campaign.status)) == "completed"
            assert session.scalar(select(func.count()).select_from(Decision)) == 6
            told = session.scalars(select(Event).where(Event.entity == "experiment", Event.to_state == "completed"))
            assert {(e.detail["by"], e.detail["source"]) for e in told} == {("Ada Lovelace", "python-api")}
    finally:
        db.dispose()
