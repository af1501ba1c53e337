"""Content-addressed artifacts: bytes named by their SHA-256, kept in the database's `artifacts` table.

A decision's fitted model state (hyper-parameters, encoding, timings) is written here as canonical JSON and the
decision row holds its hash, so a reviewer can tell that the state replay starts from is the state the planner
had: bytes that no longer hash to their name are refused by name, a missing artifact is named.

In the database, so `peirce replay` finds them from any folder and any host that reaches the database (they once
went to `./peirce-artifacts` under whatever folder a PostgreSQL campaign ran in). Where they are written:
- with the caller's session (`put(data, session)`): in that session's transaction, committed with the row that
  names them;
- without one, on PostgreSQL (any server database): in a transaction of their own, before the row that names
  them is committed;
- without one, on a SQLite file: in the folder `<db>.artifacts/` beside the file, as before. A second writer on
  SQLite would wait for the lock held by the caller's own open session; pass the session to keep them in the file.

Read from the table first, then from the folders artifacts were written to before they moved into the database
(`$PEIRCE_ARTIFACTS`, `<db>.artifacts/` beside a SQLite file, `./peirce-artifacts` for PostgreSQL), so a
database written by an older peirce still replays.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from instruments.arrays import ArrayData
from orchestrator.errors import PeirceError
from orchestrator.store.models import Artifact

ENV = "PEIRCE_ARTIFACTS"
# Where a PostgreSQL campaign's artifacts went before they were stored in the database (relative to the caller).
LEGACY_SERVER_FOLDER = Path("peirce-artifacts")


class ArtifactError(PeirceError):
    """An artifact is missing, or its bytes do not match its hash (changed after it was written)."""

    exit_code = 2


def canonical_bytes(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()


class ArtifactStore:
    """The artifacts of one database: `put` and `get` by hash, in its `artifacts` table (folder: see the module)."""

    def __init__(self, engine: Engine, folder: Path | None = None) -> None:
        self.engine = engine
        # SQLite: where a put without a session writes, and where artifacts of an older peirce are read from.
        self.root = folder if folder is not None else _folder_for(engine)

    @classmethod
    def for_engine(cls, engine: Engine) -> ArtifactStore:
        return cls(engine)

    @property
    def _sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def path(self, digest: str) -> Path:
        """The file an artifact has (or had) in the folder store."""
        return self.root / digest[:2] / f"{digest}.json"

    def put(self, data: Any, session: Session | None = None) -> str:
        """Write `data` as canonical JSON (once: the same content has the same name); returns its SHA-256."""
        raw = canonical_bytes(data)
        digest = hashlib.sha256(raw).hexdigest()
        self.put_bytes(digest, raw, session)
        return digest

    def put_bytes(self, digest: str, raw: bytes, session: Session | None = None) -> None:
        if hashlib.sha256(raw).hexdigest() != digest:
            raise ArtifactError(f"artifact {digest}: content does not match its hash")
        if session is not None:
            if session.get(Artifact, digest) is None:
                session.add(Artifact(sha256=digest, content=raw, size=len(raw)))
                session.flush()
            return
        if self._sqlite:
            self._put_file(digest, raw)
            return
        try:
            with Session(self.engine) as own, own.begin():
                if own.get(Artifact, digest) is None:
                    own.add(Artifact(sha256=digest, content=raw, size=len(raw)))
        except IntegrityError:
            pass  # written meanwhile by another runner: the same bytes, since the name is their hash

    def get_bytes(self, digest: str) -> bytes:
        with Session(self.engine) as session:
            raw = session.scalar(select(Artifact.content).where(Artifact.sha256 == digest))
        where = "the database"
        if raw is None:
            found = self._read_folders(digest)
            if found is None:
                folders = ", ".join(str(folder) for folder in self._folders())
                raise ArtifactError(f"artifact {digest} is missing (looked in the database and in {folders})")
            where, raw = str(found[0]), found[1]
        if hashlib.sha256(raw).hexdigest() != digest:
            raise ArtifactError(f"artifact {digest} has been changed: its bytes no longer match its hash ({where})")
        return bytes(raw)

    def get(self, digest: str) -> Any:
        return json.loads(self.get_bytes(digest))

    def _put_file(self, digest: str, raw: bytes) -> None:
        target = self.path(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written to a temporary name and renamed: a crash never leaves a half-written file under a valid hash.
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
            handle.write(raw)
        os.replace(handle.name, target)

    def _folders(self) -> list[Path]:
        folders = [self.root]
        if not self._sqlite and LEGACY_SERVER_FOLDER not in folders:
            folders.append(LEGACY_SERVER_FOLDER)
        return folders

    def _read_folders(self, digest: str) -> tuple[Path, bytes] | None:
        for folder in self._folders():
            target = folder / digest[:2] / f"{digest}.json"
            try:
                return target, target.read_bytes()
            except FileNotFoundError:
                continue
        return None


def store_arrays(detail: dict[str, Any], store: ArtifactStore, session: Session) -> dict[str, Any]:
    """An action's journal detail with each array of its result (a spectrum, a pattern) stored as an artifact in
    `session` and replaced by a reference: `{kind: array, artifact: <sha256>, points, x_axis, y_axis}`. The event
    stays small, the array is kept once by its content hash, and a reviewer reloads it by that hash."""
    result = detail.get("result")
    if not isinstance(result, dict) or not any(_is_array(v) for v in result.values()):
        return detail
    stored = {}
    for name, value in result.items():
        if _is_array(value):
            digest = store.put(value, session)
            value = {
                "kind": "array",
                "artifact": digest,
                "points": len(value["x"]),
                "x_axis": value["x_axis"],
                "y_axis": value["y_axis"],
            }
        stored[name] = value
    return {**detail, "result": stored}


def is_array_reference(value: Any) -> bool:
    """A stored array's reference in an event (see `store_arrays`)."""
    return isinstance(value, dict) and value.get("kind") == "array" and "artifact" in value


def load_array(store: ArtifactStore, reference: Any) -> ArrayData:
    """The array an event's reference names (`{kind: array, artifact: <sha256>, ...}`, see `store_arrays`), read
    back from its artifact. ArtifactError when the reference names no array, or the artifact is missing, changed
    (its bytes no longer hash to its name) or holds something other than the array the reference describes."""
    if not is_array_reference(reference):
        raise ArtifactError(f"not a stored array's reference: {str(reference)[:80]}")
    digest = str(reference["artifact"])
    data = store.get(digest)
    try:
        array = ArrayData.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"artifact {digest[:12]}… is not an array ({exc})") from None
    if "points" in reference and array.points != reference["points"]:
        raise ArtifactError(
            f"artifact {digest[:12]}… holds {array.points} points, its reference says {reference['points']}"
        )
    return array


def _is_array(value: Any) -> bool:
    return isinstance(value, dict) and value.get("kind") == "array" and "x" in value and "y" in value


def _folder_for(engine: Engine) -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).with_name(Path(url.database).name + ".artifacts")
    return LEGACY_SERVER_FOLDER
