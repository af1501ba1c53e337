"""Literature notes: text files a scientist puts beside a campaign (`hypotheses.notes`), read as knowledge.

A note is prose (Markdown or plain text) with, optionally, a YAML front matter between two `---` lines saying
where it comes from and what it claims, in the campaign's own names:

    ---
    citation: L. Trotochaud et al., J. Am. Chem. Soc. 136, 6744 (2014)
    claims:
      - {kind: effect, objective: overpotential_mv, parameter: fe, from_value: 0, to_value: 0.15,
         direction: lowers, rationale: "Fe in Ni oxyhydroxide raises OER activity some thirty-fold"}
    ---
    Nickel oxyhydroxide alone is a poor OER catalyst; ...

The claims are the scientist's reading of the paper. They enter the ledger as open hypotheses when the campaign is
created (`orchestrator.ledger.notes`), through the same guards as any other, so the model-based abductor's
campaign tests them offline; an LLM abductor also reads the whole note. Every line is scanned for text that reads
as an instruction to an AI model (`planners.hypotheses.injection`): flagged lines are recorded, marked as data for
an LLM, and a note whose front matter is flagged gives no claims.

A malformed note (missing, unreadable, front matter that is not YAML or names unknown keys, a claim that is not in
the claim schema) is refused when the campaign file is loaded, before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.campaign.yaml_file import load_yaml
from orchestrator.errors import SpecError
from planners.hypotheses.claims import first_problem, parse_claim
from planners.hypotheses.injection import InstructionFlag, instruction_flags

MAX_NOTE_CHARS = 200_000  # a note is a page or a few of text; a larger file is not a note
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*$\r?\n?", re.DOTALL | re.MULTILINE)
FRONT_MATTER_KEYS = ("citation", "claims")


@dataclass(frozen=True)
class NoteClaim:
    data: dict[str, Any]  # the claim as written, without its rationale
    rationale: str = ""


@dataclass(frozen=True)
class Note:
    path: Path
    text: str  # the whole file
    citation: str = ""
    claims: list[NoteClaim] = field(default_factory=list)
    front_lines: int = 0  # lines taken by the front matter, its `---` lines included (0: none)
    flags: list[InstructionFlag] = field(default_factory=list)

    @property
    def front_flags(self) -> list[InstructionFlag]:
        """Flags inside the front matter: its claims are then not taken."""
        return [flag for flag in self.flags if flag.first <= self.front_lines]


def read_note(path: Path, where: str) -> Note:
    """Read and check one note; a problem is one SpecError naming `where` (e.g. `hypotheses.notes[2]`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(where, f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(where, f"cannot read {path}: {exc}") from None
    if len(text) > MAX_NOTE_CHARS:
        raise SpecError(where, f"{path.name} has {len(text)} characters; a note has at most {MAX_NOTE_CHARS}")
    flags = instruction_flags(text)
    match = _FRONT_MATTER.match(text)
    if match is None:
        return Note(path=path, text=text, flags=flags)
    front_lines = text[: match.end()].count("\n") + (0 if match.group(0).endswith("\n") else 1)
    data = load_yaml(match.group(1), f"{where} ({path.name} front matter)")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(where, f"{path.name}: the front matter must be a mapping (citation, claims)")
    unknown = [str(key) for key in data if key not in FRONT_MATTER_KEYS]
    if unknown:
        raise SpecError(where, f"{path.name}: front matter: unknown key '{unknown[0]}' (keys: citation, claims)")
    citation = data.get("citation") or ""
    if not isinstance(citation, str):
        raise SpecError(where, f"{path.name}: citation must be text")
    raw_claims = data.get("claims") or []
    if not isinstance(raw_claims, list):
        raise SpecError(where, f"{path.name}: claims must be a list of claims")
    claims = []
    for j, item in enumerate(raw_claims):
        if not isinstance(item, dict):
            raise SpecError(where, f"{path.name}: claims[{j}] must be a mapping (a claim)")
        rationale = item.get("rationale", "")
        if not isinstance(rationale, str):
            raise SpecError(where, f"{path.name}: claims[{j}].rationale must be text")
        claim = {key: value for key, value in item.items() if key != "rationale"}
        try:
            parse_claim(claim)
        except ValidationError as exc:
            raise SpecError(where, f"{path.name}: claims[{j}]: {first_problem(exc)}") from None
        claims.append(NoteClaim(claim, rationale))
    return Note(path, text, citation.strip(), claims, front_lines, flags)


def check_note(path: Path, where: str) -> None:
    """The spec loader's check: the note can be read and its front matter parses (whether each claim fits the
    campaign is decided when the campaign is created; a misfit is stored as rejected)."""
    read_note(path, where)
