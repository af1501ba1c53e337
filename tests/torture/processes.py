"""Real `peirce` processes for the torture tests: start one in a session of its own, wait for it with a bound, and
read its SQLite database from outside while it runs (read-only, so the reader never takes a writer's lock)."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.orchestrator.cli.helpers import PEIRCE

PROCESS_TIMEOUT_S = 120


def environment() -> dict[str, str]:
    """This test process's environment without what would point the child at another database or narrow its
    output."""
    return {key: value for key, value in os.environ.items() if key not in ("PEIRCE_DB_URL", "COLUMNS")}


def start(args: list[str], cwd: Path, file_size_limit: int | None = None) -> subprocess.Popen[str]:
    """`peirce ARGS` in `cwd`, in a new session (so a kill reaches its children too), optionally with a limit on
    the size of any file it writes (a full disk, as the child sees it)."""

    def limit_file_size() -> None:  # in the child, before it runs peirce
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.Popen(
        [PEIRCE, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        start_new_session=True,
        preexec_fn=limit_file_size if file_size_limit is not None else None,
    )


def finish(process: subprocess.Popen[str], timeout: float = PROCESS_TIMEOUT_S) -> tuple[int, str, str]:
    """Wait for the process; one stuck past `timeout` is killed with its session and fails the test."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"a runner was stuck: {err[-2000:]}")
    return process.returncode, out, err


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as connection:
        return connection.execute(sql).fetchall()


def completed(db: Path) -> int:
    """Experiments completed so far; 0 while the file or its schema is not there yet."""
    try:
        return int(query(db, "SELECT count(*) FROM experiments WHERE state = 'completed'")[0][0])
    except sqlite3.Error:
        return 0


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
