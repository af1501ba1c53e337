"""The knowledge file's format: what one campaign exports of its ledger and another imports.

Reading and checking a file needs nothing of the database, so the campaign loader checks `hypotheses.knowledge`
files here, and the ledger imports their entries (`orchestrator.ledger.knowledge`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import SpecError
from planners.hypotheses.claims import first_problem, parse_claim

FORMAT = "peirce-knowledge"
VERSION = 1


class KnowledgeEntry(BaseModel):
    """One hypothesis as another campaign left it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    claim: dict[str, Any]
    statement: str = ""
    status: Literal["open", "supported", "refuted", "retired"] = "open"
    credence: float | None = Field(default=None, ge=0, le=1)
    evidence: int = Field(default=0, ge=0)
    source: Literal["llm", "model", "person"] = "person"
    rationale: str = ""
    reason: str | None = None
    origin: dict[str, Any] | None = None  # where it came from, when it was itself imported


class KnowledgeFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["peirce-knowledge"]
    version: Literal[1]
    campaign: str
    goal: str = ""
    exported_at: str | None = None
    objectives: list[dict[str, Any]] = Field(default_factory=list)
    hypotheses: list[KnowledgeEntry]


# --- reading and checking -----------------------------------------------------------------------------------------


def read_file(path: Path, field: str) -> KnowledgeFile:
    """Read and check a knowledge file; a problem is one SpecError naming `field` (e.g. `hypotheses.knowledge[0]`)
    and, inside the file, the entry at fault (`hypotheses[2].claim: ...`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(field, f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(field, f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(field, f"{path.name} is not JSON: {exc.msg} (line {exc.lineno})") from None
    except RecursionError:  # the JSON parser recurses once per level; thousands of `[` exhaust the stack
        raise SpecError(field, f"{path.name} is nested too deeply to be a knowledge file") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SpecError(field, f'{path.name} is not a peirce knowledge file ("format" must be "{FORMAT}")')
    if data.get("version") != VERSION:
        raise SpecError(
            field, f"{path.name}: knowledge format version {data.get('version')!r} is not supported (only {VERSION})"
        )
    try:
        knowledge = KnowledgeFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".")
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise SpecError(field, f"{path.name}: {where}: {message}") from None
    for j, entry in enumerate(knowledge.hypotheses):
        try:
            parse_claim(entry.claim)
        except ValidationError as exc:
            raise SpecError(field, f"{path.name}: hypotheses[{j}].claim: {first_problem(exc)}") from None
    return knowledge


def check_file(path: Path, field: str) -> None:
    """The spec loader's check: the file is a knowledge file whose claims parse (nothing is checked against the
    campaign's space here; entries that do not fit it are stored as rejected when the campaign is created)."""
    read_file(path, field)
