"""Content-addressed artifacts: files named by the SHA-256 of their bytes, beside the database or in a store.

A decision's fitted model state (hyper-parameters, encoding, timings) is written here as canonical JSON and the
decision row holds its hash, so a reviewer can tell that the state replay starts from is the state the planner
had: a file whose bytes no longer hash to its name is refused by name, a missing one is named.

Where: `$PEIRCE_ARTIFACTS` if set; else, for a SQLite file `x.db`, the folder `x.db.artifacts/` beside it; else
(PostgreSQL) `./peirce-artifacts`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from orchestrator.errors import PeirceError

ENV = "PEIRCE_ARTIFACTS"


class ArtifactError(PeirceError):
    """An artifact is missing, or its bytes do not match its hash (changed after it was written)."""

    exit_code = 2


def canonical_bytes(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_engine(cls, engine: Engine) -> ArtifactStore:
        if os.environ.get(ENV):
            return cls(Path(os.environ[ENV]))
        url = engine.url
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return cls(Path(url.database).with_name(Path(url.database).name + ".artifacts"))
        return cls(Path("peirce-artifacts"))

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.json"

    def put(self, data: Any) -> str:
        """Write `data` as canonical JSON (once: the same content has the same name); returns its SHA-256."""
        raw = canonical_bytes(data)
        digest = hashlib.sha256(raw).hexdigest()
        self.put_bytes(digest, raw)
        return digest

    def put_bytes(self, digest: str, raw: bytes) -> None:
        if hashlib.sha256(raw).hexdigest() != digest:
            raise ArtifactError(f"artifact {digest}: content does not match its hash")
        target = self.path(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written to a temporary name and renamed: a crash never leaves a half-written file under a valid hash.
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
            handle.write(raw)
        os.replace(handle.name, target)

    def get_bytes(self, digest: str) -> bytes:
        target = self.path(digest)
        try:
            raw = target.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"artifact {digest} is missing (looked in {self.root})") from None
        if hashlib.sha256(raw).hexdigest() != digest:
            raise ArtifactError(f"artifact {digest} has been changed: its bytes no longer match its hash ({target})")
        return raw

    def get(self, digest: str) -> Any:
        return json.loads(self.get_bytes(digest))
