"""A lab for tests that is a person: every experiment is handed out, its results entered later."""

from __future__ import annotations

from typing import Any

from orchestrator.lab.contract import HandedToPerson, LabResult


class PersonLab:
    """Hands every experiment to a person, with instructions naming its key."""

    candidates = None
    max_concurrency = 4

    def run(self, parameters: Any, key: str, journal: Any = None) -> LabResult:
        raise HandedToPerson({"instructions": f"run {key}"})

    def close(self) -> None:
        return None
