"""The manifest of a campaign archive: what the archive holds, each member's hash and size, and where it came from."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from orchestrator.records.base import StrictModel

ARCHIVE_FORMAT = "peirce-campaign-archive"
ARCHIVE_FORMAT_VERSION = 1


class ArchiveMember(StrictModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class ArchiveManifest(StrictModel):
    format: Literal["peirce-campaign-archive"]
    format_version: Literal[1]
    campaign: str = Field(min_length=1)
    exported_at: str | None = None
    peirce_version: str | None = None
    versions: dict[str, Any] = Field(default_factory=dict)
    schema_revision: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    members: dict[str, ArchiveMember]
    members_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
