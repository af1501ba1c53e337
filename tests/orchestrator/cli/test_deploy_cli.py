"""`peirce deploy` and `peirce submit` on bad input: one line naming what is wrong, exit 2, nothing written. (With a
real Prefect server and workers: tests/prefect/test_deploy.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.campaigns import hartmann_spec, write_spec
from tests.orchestrator.cli.helpers import invoke

NO_SERVER = "http://127.0.0.1:9/api"  # the discard port: nothing answers there


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    return write_spec(tmp_path / "campaign.yaml", hartmann_spec())


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("command", [["submit", "campaign.yaml"], ["deploy"]])
def test_without_a_server_one_line_and_nothing_written(spec: Path, tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "peirce.db"
    result = invoke(*command, "--pool", "lab", "--db", f"sqlite:///{db}", cwd=tmp_path, env={"PREFECT_API_URL": ""})
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert line.startswith("error: PREFECT_API_URL: not set; deployments need a Prefect server"), line
    assert not db.exists()


def test_a_server_that_does_not_answer_is_one_line(spec: Path, tmp_path: Path) -> None:
    db = tmp_path / "peirce.db"
    result = invoke(
        "submit",
        "campaign.yaml",
        "--pool",
        "lab",
        "--db",
        f"sqlite:///{db}",
        cwd=tmp_path,
        env={"PREFECT_API_URL": NO_SERVER},
    )
    assert result.returncode == 2
    assert f"the Prefect server at {NO_SERVER} does not answer" in _one_line(result.stderr)
    assert not db.exists()


@pytest.mark.parametrize("pool", ["a/b", "50%", " "])
def test_a_bad_pool_name_is_one_line_naming_pool(spec: Path, tmp_path: Path, pool: str) -> None:
    db = tmp_path / "peirce.db"
    for command in (["submit", "campaign.yaml"], ["deploy"]):
        result = invoke(
            *command, "--pool", pool, "--db", f"sqlite:///{db}", cwd=tmp_path, env={"PREFECT_API_URL": NO_SERVER}
        )
        assert result.returncode == 2
        assert _one_line(result.stderr).startswith("error: --pool: "), result.stderr
    assert not db.exists()


def test_a_bad_campaign_file_is_one_line_before_the_server_is_asked(tmp_path: Path) -> None:
    bad = write_spec(tmp_path / "bad.yaml", hartmann_spec(budget={"experiments": -1}))
    result = invoke("submit", bad.name, "--pool", "lab", cwd=tmp_path, env={"PREFECT_API_URL": NO_SERVER})
    assert result.returncode == 2
    assert "budget" in _one_line(result.stderr)
    missing = invoke("submit", "nowhere.yaml", "--pool", "lab", cwd=tmp_path, env={"PREFECT_API_URL": NO_SERVER})
    assert missing.returncode == 2
    assert "nowhere.yaml" in _one_line(missing.stderr)


def test_the_worker_is_told_a_sqlite_file_by_its_absolute_path_and_never_a_password(tmp_path: Path) -> None:
    from sqlalchemy import make_url

    from orchestrator.cli.deploy import worker_url

    folder = tmp_path / "lab"
    folder.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # a worker starts elsewhere: `peirce.db` must be named by where it is
        assert worker_url(make_url("sqlite:///peirce.db")) == f"sqlite:///{folder / 'peirce.db'}"
    assert worker_url(make_url("sqlite:////srv/lab/peirce.db")) == "sqlite:////srv/lab/peirce.db"
    shown = worker_url(make_url("postgresql+psycopg://lab:s3cret@db.lab:5432/peirce"))
    assert shown == "postgresql+psycopg://lab:***@db.lab:5432/peirce"
