"""Shared fixtures: databases (a SQLite file, and a fresh PostgreSQL database per test when a server is given)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Under pytest-xdist each worker runs its own Prefect-engine tests: give each its own Prefect home (and so its own
# temporary server database), so two workers never share one SQLite file. Set before Prefect is first imported.
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    _home = Path(os.environ.get("TMPDIR", "/tmp")) / f"peirce-tests-prefect-{os.getpid()}-{worker}"
    _home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(_home)

import torch
from sqlalchemy import create_engine, make_url, text

# One intra-op thread: the planner's tensors in tests are small, and several pytest or benchmark processes sharing
# two cores slow each other down many times over when each spins a thread pool of its own.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
POSTGRES_ENV = "PEIRCE_TEST_POSTGRES_URL"

# A separate driver package: its tests run after it is installed (tests/instruments/test_plugin_driver.py).
collect_ignore = ["plugin_driver"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'peirce.db'}"


@pytest.fixture
def postgres_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server named by $PEIRCE_TEST_POSTGRES_URL, dropped afterwards."""
    monkeypatch.setenv("PEIRCE_ARTIFACTS", str(tmp_path / "artifacts"))  # not ./peirce-artifacts in the checkout
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        if os.environ.get("PEIRCE_REQUIRE_POSTGRES"):
            pytest.fail(f"${POSTGRES_ENV} is not set but PostgreSQL tests are required")
        pytest.skip(f"no PostgreSQL server (set ${POSTGRES_ENV}; .ci/run starts one)")
    name = f"peirce_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
