"""Running `peirce` in tests: in this process through the CLI's own `main` (exit status and the exact lines a user
sees, without a new interpreter per command), or as a subprocess where the test kills it, signals it, or needs a
process of its own (a campaign stopped or resumed from "another terminal", a twin served until SIGTERM)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli.app import main

PEIRCE = str(Path(sys.executable).with_name("peirce"))


@dataclass(frozen=True)
class Result:
    """What a command did: its exit status and what it printed (standard output and error apart)."""

    returncode: int
    stdout: str
    stderr: str


def invoke(*args: str, cwd: Path, env: dict[str, str | None] | None = None) -> Result:
    """Run `peirce ARGS` in this process, in folder `cwd`, with standard output and error captured as a pipe would
    (not a terminal). $PEIRCE_DB_URL and $COLUMNS are unset unless `env` sets them (a None in `env` unsets a
    variable); the environment and the working folder are restored afterwards (a command may set Prefect's
    variables for itself)."""
    environment: dict[str, str | None] = {"PEIRCE_DB_URL": None, "COLUMNS": None, **(env or {})}
    saved_environ, saved_cwd = dict(os.environ), Path.cwd()
    os.chdir(cwd)
    try:
        with CliRunner().isolation(env=environment) as (stdout, stderr, _):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            sys.stdout.flush()
            sys.stderr.flush()
            return Result(code, stdout.getvalue().decode(), stderr.getvalue().decode())
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environ)


def peirce(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed `peirce` script as a separate process (for tests that need one, see the module's doc)."""
    env = {key: value for key, value in os.environ.items() if key not in ("PEIRCE_DB_URL", "COLUMNS")}
    return subprocess.run([PEIRCE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def one_error(result: Result, expected: str) -> str:
    """The single `error: …` line of a refused command (exit status 2, nothing on standard output's behalf)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]
