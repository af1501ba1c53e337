"""`peirce`: the command line a scientist uses to write, check, run, watch, stop and export campaigns, to read and
add to a campaign's hypothesis ledger, and to review, replay and archive it.

The commands live one group to a module (campaigns, ledger, review, archive, instruments); their shared options
are declared once in `options`, their consoles made in `output`. This module puts them together and runs them.

Bad input (a wrong spec, an unknown campaign, an unreachable database, a mistyped command line) prints one line,
`error: …`, and exits with status 2; a failure while running exits 1. Neither prints a traceback. A database that
stops taking writes while a command runs (a file made read-only or immutable, a full disk) is such a failure:
"database … cannot be written: …", exit 1, what was written before stands, and `peirce resume` continues once the
database can be written again.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer

# Typer (0.2x on) bundles its own copy of click and raises that copy's exceptions, which it does not re-export.
from typer._click import exceptions as click_exceptions

from orchestrator import __version__
from orchestrator.cli import archive, campaigns, database, deploy, instruments, ledger, manual, output, people, review
from orchestrator.errors import PeirceError

# Usage errors (an unknown option, a missing argument, a bad value) are exit status 2, as for any bad input.
USAGE_EXIT = 2

app = typer.Typer(
    name="peirce",
    help="Closed-loop campaigns: hypotheses, planned experiments, simulators or instruments, replayable decisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(campaigns.commands)
app.add_typer(ledger.commands)
app.add_typer(review.commands)
app.add_typer(archive.commands, name="archive")
app.add_typer(instruments.commands)
app.add_typer(manual.commands)
app.add_typer(people.commands)
app.add_typer(deploy.commands)


def _print_version(asked: bool) -> None:
    if asked:
        output.console().print(f"peirce {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    """Closed-loop campaigns: hypotheses, planned experiments, simulators or instruments, replayable decisions."""


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the command line (`argv`, default `sys.argv[1:]`) and exit with its status, turning
    peirce's errors and click's usage errors into one line on standard error."""
    try:
        status = _run(argv)
    except PeirceError as exc:
        _fail(str(exc), exc.exit_code)
    except click_exceptions.NoArgsIsHelpError as exc:
        # A group called with nothing after it: its help is what the person needs, not one line. Typer's rich help
        # is printed as the error is made; click's plain help is the error's message.
        if exc.format_message().strip():
            output.errors().print(exc.format_message(), markup=False, highlight=False)
        sys.exit(USAGE_EXIT)
    except click_exceptions.UsageError as exc:
        _fail(_usage_line(exc), USAGE_EXIT)
    except click_exceptions.ClickException as exc:  # e.g. a file click itself could not open
        _fail(exc.format_message(), exc.exit_code or USAGE_EXIT)
    except typer.Abort:
        _fail("aborted", 130)
    except Exception as exc:
        # click's own exceptions (raised by click code that a plug-in or a dependency runs, or by a typer that does
        # not bundle click) are one line too. Loaded only if click is: if it is not, nothing raised one.
        click = sys.modules.get("click.exceptions")
        if click is None or not isinstance(exc, click.ClickException):
            raise
        if isinstance(exc, click.UsageError):
            _fail(_usage_line(exc), USAGE_EXIT)
        _fail(exc.format_message(), exc.exit_code or USAGE_EXIT)
    if isinstance(status, int) and status:  # a command's typer.Exit(code) comes back as its return value
        sys.exit(status)


def _run(argv: Sequence[str] | None) -> Any:
    """The app's result (a command's exit code, or None), with the databases the command opened closed."""
    try:
        # Not standalone: click would print usage errors its own way (several lines, `Error:`) and exit itself.
        return app(args=list(argv) if argv is not None else None, prog_name="peirce", standalone_mode=False)
    finally:
        database.close_opened()


def _usage_line(exc: Any) -> str:
    """click's message on one line, naming the command it is about and where to read its usage."""
    message = " ".join(exc.format_message().split())
    command = exc.ctx.command_path if exc.ctx is not None else "peirce"
    return f"{command}: {message} (see {command} --help)"


def _fail(message: str, exit_code: int) -> NoReturn:
    # One line even on a terminal narrower than the message (the terminal folds it; rich would break it).
    output.errors().print(f"error: {' '.join(message.splitlines())}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
