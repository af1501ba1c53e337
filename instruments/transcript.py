"""A transcript of the bytes between peirce and one instrument: every line sent and every line received.

Reviewers read it to see exactly what a device was told and said; the station slices it per action and stores
each slice with the action's Event, so a fault is always shown beside the experiment it hit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class TranscriptEntry:
    at: float  # seconds since the epoch
    direction: str  # tx (sent) | rx (received) | discarded (stale bytes thrown away) | note
    data: str  # the line, terminator stripped; non-ASCII bytes as \x escapes

    def as_dict(self) -> dict[str, object]:
        return {"at": round(self.at, 6), "dir": self.direction, "data": self.data}


class Transcript:
    """Thread-safe, append-only list of entries; `mark()` and `since(mark)` cut out one action's share."""

    def __init__(self, limit: int = 100_000) -> None:
        self._entries: list[TranscriptEntry] = []
        self._lock = threading.Lock()
        self._limit = limit  # oldest entries are dropped past this, so a week-long campaign cannot fill memory
        self._dropped = 0

    def record(self, direction: str, data: bytes | str) -> None:
        text = data if isinstance(data, str) else data.decode("ascii", "backslashreplace")
        with self._lock:
            self._entries.append(TranscriptEntry(time.time(), direction, text))
            if len(self._entries) > self._limit:
                del self._entries[0]
                self._dropped += 1

    def mark(self) -> int:
        with self._lock:
            return self._dropped + len(self._entries)

    def since(self, mark: int) -> list[TranscriptEntry]:
        with self._lock:
            start = max(0, mark - self._dropped)
            return list(self._entries[start:])

    @property
    def entries(self) -> list[TranscriptEntry]:
        return self.since(0)
