"""Where the commands print: a console for standard output and one for standard error, each made for the stream
it writes to when a command runs (so a test's captured stream, or a pipe, is seen as what it is).

On a terminal, rich wraps to the terminal's width and uses colour. Piped or redirected, lines are kept whole and
plain: a file or `grep` gets one line per sentence or table row, never a sentence broken at 80 columns or a table
column cut to a few characters, and no colour codes.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console

# Wide enough that no table row or sentence peirce prints is ever wrapped; nothing we print pads to the full width.
PIPED_WIDTH = 10_000


def _console_for(stream: TextIO) -> Console:
    isatty = getattr(stream, "isatty", None)  # a stream put in sys.stdout by a host program may not have it
    if isatty is not None and isatty():
        return Console(file=stream, highlight=False)
    return Console(file=stream, highlight=False, width=PIPED_WIDTH, soft_wrap=True, color_system=None)


def console() -> Console:
    """A console on standard output as it is now."""
    return _console_for(sys.stdout)


def errors() -> Console:
    """A console on standard error as it is now."""
    return _console_for(sys.stderr)
