"""The command line itself: a mistyped command is one line and exit status 2 (never a traceback), `--version`
prints the version, the commands that use a database all take `--db`, and piped output keeps its lines whole."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from orchestrator import __version__
from orchestrator.cli.app import app
from tests.campaigns import EXAMPLES_DIR
from tests.orchestrator.cli.helpers import invoke, one_error, peirce

USAGE_ERRORS = [
    (["run"], "peirce run: Missing argument 'SPEC'."),
    (["validate", "x.yaml", "--db", "sqlite:///x.db"], "peirce validate: No such option: --db"),
    (["status", "--bogus"], "peirce status: No such option: --bogus"),
    (["hypotheses", "screen", "--history", "three"], "peirce hypotheses: Invalid value for '--history'"),
    (["launch"], "peirce: No such command 'launch'."),
    (["knowledge", "export"], "peirce knowledge export: Missing argument 'CAMPAIGN'."),
    (["retire", "screen", "1"], "peirce retire: Missing option '--reason'."),
]


@pytest.mark.parametrize(("args", "expected"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_a_usage_error_is_one_line_and_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    result = invoke(*args, cwd=tmp_path)
    line = one_error(result, expected)
    assert line.endswith(f"(see {expected.split(':')[0]} --help)")
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_version_is_printed() -> None:
    result = invoke("--version", cwd=Path.cwd())
    assert (result.returncode, result.stdout, result.stderr) == (0, f"peirce {__version__}\n", "")


def test_the_installed_script_reports_usage_errors_and_its_version(tmp_path: Path) -> None:
    """The console script (pyproject's entry point) goes through the same `main`."""
    version = peirce("--version", cwd=tmp_path)
    assert (version.returncode, version.stdout) == (0, f"peirce {__version__}\n")
    missing = peirce("run", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == ["error: peirce run: Missing argument 'SPEC'. (see peirce run --help)"]


def test_without_a_command_the_help_is_shown(tmp_path: Path) -> None:
    result = invoke(cwd=tmp_path)
    assert result.returncode == 2
    assert "Usage: peirce [OPTIONS] COMMAND" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def _commands(group: typer.main.TyperGroup, prefix: str = "") -> dict[str, list[str]]:
    """Each command's full name and its options."""
    found: dict[str, list[str]] = {}
    for name, command in group.commands.items():
        if isinstance(command, typer.main.TyperGroup):
            found |= _commands(command, f"{prefix}{name} ")
        else:
            found[prefix + name] = [opt for param in command.params for opt in getattr(param, "opts", [])]
    return found


def test_every_command_that_uses_a_database_takes_db() -> None:
    """As the README says: all commands but the five that never open a database."""
    commands = _commands(typer.main.get_group(app))
    without = {name for name, options in commands.items() if "--db" not in options}
    assert without == {"init", "validate", "schema", "instruments", "twin"}
    assert {"run", "resume", "stop", "status", "list", "export", "upgrade", "hypotheses", "hypothesize"} <= set(
        commands
    )
    assert {"retire", "knowledge export", "knowledge import", "replay", "report", "archive export"} <= set(commands)
    assert "archive import" in commands


def test_piped_output_keeps_its_lines_whole(tmp_path: Path) -> None:
    """Output to a pipe or a file is not wrapped at 80 columns (nor coloured): one line per sentence."""
    written = invoke("init", "a-campaign-file-with-a-rather-long-name-to-make-the-line-long.yaml", cwd=tmp_path)
    assert written.stdout.count("\n") == 1 and len(written.stdout) > 120
    assert "\x1b[" not in written.stdout
    checked = invoke("validate", str(EXAMPLES_DIR / "reaction_station.yaml"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines() == [
        "ok reaction_station: 4 parameters (2 discrete, 2 continuous; a mixed space), 1 objective(s), budget 12 "
        "experiments in batches of 3, planner bayesian, lab station reaction_bench (4 instruments, on device twins)"
    ]
    # The shape of a space says its mixtures and linear constraints.
    mixed = invoke("validate", str(EXAMPLES_DIR / "aichem_oer" / "campaign.yaml"), cwd=tmp_path)
    assert "5 parameters (5 continuous; a continuous space; 1 mixture)" in mixed.stdout, mixed.stderr
    films = invoke("validate", str(EXAMPLES_DIR / "tokyo_tech_films" / "campaign.yaml"), cwd=tmp_path)
    assert "5 parameters (5 continuous; a continuous space; 3 linear constraints)" in films.stdout, films.stderr
