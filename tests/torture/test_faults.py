"""A database that stops taking writes under a running campaign (issue 14, "What broke" 6), with real `peirce`
processes: its files made immutable (before: exit 135, a bus error, status left `running`), or the disk full.

Either way the runner ends with one line, "database … cannot be written: …; the campaign stays as it was last
written; `peirce resume` continues once it is writable", exit status 1, no traceback; and once the database can be
written again, `peirce resume` finishes the budget.

How each fault is made, as root (this sandbox, CI) and as anyone else:
- unwritable: `chattr +i` on the database, its write-ahead log and index, and their folder (see
  `tests.orchestrator.cli.test_faults.unwritable`: root ignores the mode bits, so as root the files are made
  immutable, which is also what the torture run did; as another user, the mode bits). A root that may not set the
  flag (a container without CAP_LINUX_IMMUTABLE) skips this test, saying so.
- disk full: the runner's file size limit (RLIMIT_FSIZE, which binds root too), set low enough that the log
  outgrows it a few cycles in: every write past it fails as on a full disk, with no device to fill or mount.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.campaigns import hartmann_spec, write_spec
from tests.orchestrator.cli.helpers import invoke
from tests.orchestrator.cli.test_faults import unwritable
from tests.torture.processes import completed, finish, start, wait_for

pytestmark = pytest.mark.slow

LOG_LIMIT_BYTES = 1_000_000  # the first cycles' writes fit; a few more do not


def _campaign(folder: Path, budget: int, delay_s: float) -> None:
    data = hartmann_spec(budget={"experiments": budget, "batch_size": 2})
    data["lab"] = {**data["lab"], "delay_s": delay_s}
    write_spec(folder / "c.yaml", data)


def _stopped_with_one_line(returncode: int, stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert returncode == 1, (returncode, stderr[-3000:])
    assert "Traceback" not in stderr and len(lines) == 1, stderr[-3000:]
    line = lines[0]
    assert line.startswith("error: database sqlite:///") and " cannot be written: " in line, line
    assert line.endswith(
        "; the campaign stays as it was last written; `peirce resume` continues once it is writable"
    ), line
    return line


def _resumed_to_the_end(folder: Path, url: str, budget: int) -> None:
    resumed = invoke("resume", "h6", "--db", url, "--engine", "inline", cwd=folder)
    assert resumed.returncode == 0, resumed.stderr
    assert f"budget of {budget} experiments spent" in resumed.stdout
    assert completed(folder / "c.db") == budget


def test_database_made_immutable_mid_run_ends_in_one_line_and_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "lab"
    folder.mkdir()
    _campaign(folder, budget=12, delay_s=0.3)
    db = folder / "c.db"
    url = f"sqlite:///{db}"
    runner = start(["run", "c.yaml", "--db", url, "--engine", "inline"], folder)
    try:
        wait_for(lambda: completed(db) >= 2)
        files = [path for path in (db, folder / "c.db-wal", folder / "c.db-shm") if path.exists()]
        with unwritable(*files, folder):
            returncode, _, stderr = finish(runner)
        assert returncode != -signal.SIGBUS  # what it was: the index written through its mapping, a bus error
        line = _stopped_with_one_line(returncode, stderr)
        # Which of its checks sees the change first is a race (the access check before a write, or SQLite's own
        # I/O error on the mapped index); either way the line says the database cannot be written, and why.
        assert any(reason in line for reason in ("is read-only or immutable", "disk I/O error")), line
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.communicate()
    assert 2 <= completed(db) < 12  # as it was last written
    _resumed_to_the_end(folder, url, budget=12)


def test_disk_full_mid_run_ends_the_same_way_and_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "lab"
    folder.mkdir()
    _campaign(folder, budget=20, delay_s=0.0)
    url = f"sqlite:///{folder / 'c.db'}"
    runner = start(["run", "c.yaml", "--db", url, "--engine", "inline"], folder, file_size_limit=LOG_LIMIT_BYTES)
    returncode, stdout, stderr = finish(runner)
    _stopped_with_one_line(returncode, stderr)
    assert "cycle   1" in stdout  # it stopped mid-run, not at the start
    assert completed(folder / "c.db") < 20
    _resumed_to_the_end(folder, url, budget=20)
