"""The one strict base of peirce's own pydantic models: unknown fields are refused, instances are frozen.

Campaign files, station specs and the records a decision keeps all derive from it, so a misspelt key is an error
wherever it appears and nothing changes a record after it is read.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
