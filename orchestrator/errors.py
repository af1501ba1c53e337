"""Errors the CLI turns into one clear line and exit status 2 (bad input) or 1 (a failure while running)."""

from __future__ import annotations


class PeirceError(Exception):
    """Base of the errors peirce reports to a person without a traceback."""

    exit_code = 1


class SpecError(PeirceError):
    """A campaign file (or a command's argument) is wrong. `field` names the place, e.g. `space[2].bounds`."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DatabaseError(PeirceError):
    """The database cannot be reached or used (the URL is named, its password hidden)."""

    exit_code = 2


class DatabaseUnwritable(PeirceError):
    """The database stopped taking writes while a command was using it (a file made read-only or immutable, a full
    disk). Exit status 1: nothing is wrong with the input, and what was written before stands, so the same command
    (or `peirce resume`) continues once the database can be written again."""

    exit_code = 1


class CampaignNotFound(PeirceError):
    exit_code = 2


class CampaignConflict(PeirceError):
    """The campaign exists with another spec, or is being run by another process."""

    exit_code = 2


class RecordError(PeirceError):
    """A stored record (a decision's JSON columns, an event's detail) is not of its type: one line naming the
    record and the field at fault."""

    exit_code = 2
