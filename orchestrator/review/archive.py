"""Campaign archives: one zip file that carries a campaign to another database, for review elsewhere.

`export_archive` writes everything a reviewer needs to see and replay a campaign: every row of every table that
belongs to it (one JSON member per table, rows in id order, all columns), its spec as written and as parsed, and
the content-addressed artifacts its decisions name. A `manifest.json` lists each member with its SHA-256 and size,
and a hash over all of them, so that `import_archive` can refuse an archive that was changed or damaged on the
way, naming the member, before it touches the target database.

Members: `manifest.json`, `spec.yaml` (the text the person wrote), `spec.json` (as stored), `<table>.json` for each
of TABLES (`{"table", "columns", "rows": [{column: value}]}`; datetimes ISO-8601 in UTC; JSON columns as JSON;
non-finite floats as JSON's `NaN`/`Infinity` extension), and `artifacts/<sha256>.json`. An archive written by an
older schema still reads: a table added since (LATER_TABLES) may be absent (no rows), a nullable column added since
reads as null.

Import inserts the rows in one transaction with new primary keys and remaps every reference to them: foreign
keys (read from the schema, so a new one is remapped without a change here), the experiment ids in
`decisions.observation_ids` and `pending_ids`, `events.entity_id` according to `events.entity`, the hypothesis a
planned proposal tests (its `tests_hypothesis`, read from the rationale in archives older than that field, and
the rationale's mention of that hypothesis with it), and the ids a guard's reason names (`duplicate of hypothesis
3 (…)` in a rejected hypothesis's reason and in its event's detail: the guards give them as text only). What
an LLM was sent and answered (`decisions.exchange`, LLM rationales) is the record of an exchange and is kept
verbatim, ids and all. A decision's `data_hash` covers the
ids of the results it saw; it is checked against the archived rows with the archive's ids and, where it holds,
re-computed over the new ids, so replay verifies it in the target database as it did in the source (one that did
not hold is kept as it was, and replay reports it). The runner's lease is cleared; the status is kept. One
`imported` event says where the campaign came from and which id here was which id there.

The hashes protect against damage and casual edits, not against a forger who rewrites the manifest too: an
archive is not signed. Artifacts are the exception: their names are their hashes, checked whatever the manifest
says.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import JSON, DateTime, Table, insert, null, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from orchestrator.errors import CampaignConflict, PeirceError
from orchestrator.records.decisions import AbductionState, DeductionState, PlannedProposal
from orchestrator.records.events import Entity, EventKind, ImportedDetail
from orchestrator.records.manifest import ARCHIVE_FORMAT, ARCHIVE_FORMAT_VERSION, ArchiveManifest
from orchestrator.records.provenance import abduction_data_hash, library_versions, planning_data_hash
from orchestrator.store.artifacts import ArtifactError, ArtifactStore, is_array_reference
from orchestrator.store.database import Database
from orchestrator.store.models import Base, Campaign, ExperimentState
from orchestrator.store.records import add_event, find_campaign

MANIFEST = "manifest.json"
SPEC_TEXT = "spec.yaml"
SPEC_JSON = "spec.json"
# In the order they are inserted: each table's references point only to tables before it (decisions' references
# to experiments and hypotheses live in JSON and are written once those exist).
TABLES = (
    "campaigns",
    "cycles",
    "decisions",
    "experiments",
    "measurements",
    "hypotheses",
    "hypothesis_credences",
    "hypothesis_tests",
    "person_requests",
    "events",
)
# Tables newer than the archive format: an archive written before one was added lacks its member, and reads as if
# the campaign had no rows in it (an older campaign had none: nothing it did could write them).
LATER_TABLES = frozenset({"person_requests"})
# `events.entity` -> the table its `entity_id` points into.
ENTITY_TABLES = {
    Entity.CAMPAIGN: "campaigns",
    Entity.CYCLE: "cycles",
    Entity.EXPERIMENT: "experiments",
    Entity.DECISION: "decisions",
    Entity.HYPOTHESIS: "hypotheses",
}
# Singular names for error messages ("event 12 names experiment 99 …").
_SINGULAR = {
    "campaigns": "campaign",
    "cycles": "cycle",
    "decisions": "decision",
    "experiments": "experiment",
    "measurements": "measurement",
    "hypotheses": "hypothesis",
    "hypothesis_credences": "credence",
    "hypothesis_tests": "test",
    "person_requests": "request",
    "events": "event",
}
# Columns of JSON lists of experiment ids.
_EXPERIMENT_ID_LISTS = (("decisions", "observation_ids"), ("decisions", "pending_ids"))
# The ids a guard's reason names (planners/hypotheses/guards.py), its only record of them. A negative id (a draft
# of the same abduction, never a row) matches nothing and stays.
_GUARD_MENTION = re.compile(r"\b(duplicate of hypothesis|same question as hypothesis) (\d+) \(")
_PLANNED = TypeAdapter(list[PlannedProposal])
_ARTIFACT_MEMBER = re.compile(r"artifacts/([0-9a-f]{64})\.json")
_MANIFEST_LIMIT = 64 * 1024 * 1024  # bytes: a manifest lists hashes; anything larger is not one of ours


def _schema() -> dict[str, Table]:
    return dict(Base.metadata.tables)


class ArchiveError(PeirceError):
    """An archive cannot be written (a missing artifact) or read (damaged, changed, not ours): one line naming the
    member and what is wrong."""

    exit_code = 2


@dataclass(frozen=True)
class Archive:
    """A verified archive's contents: the manifest, the spec, each table's rows (archive ids) and the artifacts."""

    manifest: ArchiveManifest
    spec_text: str
    spec: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]]
    artifacts: dict[str, bytes]

    @property
    def name(self) -> str:
        return self.manifest.campaign

    def counts(self) -> dict[str, int]:
        return {**{table: len(rows) for table, rows in self.tables.items()}, "artifacts": len(self.artifacts)}


@dataclass(frozen=True)
class ExportResult:
    path: Path
    name: str
    counts: dict[str, int]
    size: int


@dataclass(frozen=True)
class ImportResult:
    name: str
    campaign_id: int
    counts: dict[str, int]
    ids: dict[str, dict[int, int]] = field(repr=False)  # table -> archive id -> id here
    rehashed: int  # decisions whose data hash was verified and re-computed over the new ids
    unverified: list[int]  # archive ids of decisions whose data hash did not hold in the archive


# --- export ----------------------------------------------------------------------------------------------------


def export_archive(db: Database, ref: str | int, out: Path) -> Path:
    """Write campaign `ref` of `db` to the zip file `out` (replaced if it exists); returns `out`.

    Nothing is written unless everything is: the file is built under a temporary name beside `out` and renamed.
    """
    return write_archive(db, ref, Path(out)).path


def write_archive(db: Database, ref: str | int, out: Path | None) -> ExportResult:
    """`export_archive` with what was written (path, campaign, row counts, size); `out` None: `NAME.archive.zip`."""
    with db.session() as session:
        _snapshot(session)
        campaign = find_campaign(session, ref)
        name, spec_text, spec = campaign.name, campaign.spec_text, campaign.spec
        tables = _read_tables(session, campaign.id)
        schema = _schema_revision(session)
    out = out if out is not None else Path(f"{name}.archive.zip")
    if out.is_dir():
        raise ArchiveError(f"--out: {out} is a folder; name the archive file to write")
    if not out.parent.is_dir():
        raise ArchiveError(f"--out: folder {out.parent} does not exist")
    members: dict[str, bytes] = {
        SPEC_TEXT: spec_text.encode("utf-8"),
        SPEC_JSON: _json_bytes(spec),
        **{f"{table}.json": _table_bytes(table, rows) for table, rows in tables.items()},
    }
    artifacts = _read_artifacts(db, tables["decisions"], tables["events"])
    members.update({f"artifacts/{sha}.json": raw for sha, raw in artifacts.items()})
    hashes = {member: hashlib.sha256(raw).hexdigest() for member, raw in members.items()}
    versions = library_versions()
    counts = {**{table: len(rows) for table, rows in tables.items()}, "artifacts": len(artifacts)}
    exported_at = datetime.now(UTC)
    manifest = ArchiveManifest.model_validate(
        {
            "format": ARCHIVE_FORMAT,
            "format_version": ARCHIVE_FORMAT_VERSION,
            "campaign": name,
            "exported_at": exported_at.isoformat(),
            "peirce_version": versions.get("peirce"),
            "versions": versions,
            "schema_revision": schema,
            "counts": counts,
            "members": {m: {"sha256": hashes[m], "size": len(members[m])} for m in sorted(members)},
            "members_sha256": members_digest(hashes.values()),
        }
    )
    size = _write_zip(out, manifest, members, exported_at)
    return ExportResult(out, name, counts, size)


def members_digest(hashes: Iterable[str]) -> str:
    """SHA-256 over the members' hashes, sorted, one per line: one value that changes when any member does."""
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def _snapshot(session: Session) -> None:
    """Read every table from one snapshot, so an export taken while the campaign runs is consistent (an event
    never names an experiment the archive lacks). PostgreSQL: a repeatable-read transaction. SQLite: the Python
    driver begins a transaction only before a write, so reads are begun explicitly (WAL readers see one snapshot
    from their first read to the end of the transaction)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    elif connection.dialect.name == "sqlite":
        driver: Any = connection.connection.dbapi_connection
        if driver is not None and not driver.in_transaction:
            connection.exec_driver_sql("BEGIN")


def _schema_revision(session: Session) -> str | None:
    return MigrationContext.configure(session.connection()).get_current_revision()


def _read_tables(session: Session, campaign_id: int) -> dict[str, list[dict[str, Any]]]:
    meta = _schema()
    experiments = select(meta["experiments"].c.id).where(meta["experiments"].c.campaign_id == campaign_id)
    hypotheses = select(meta["hypotheses"].c.id).where(meta["hypotheses"].c.campaign_id == campaign_id)
    out: dict[str, list[dict[str, Any]]] = {}
    for name in TABLES:
        table = meta[name]
        if name == "campaigns":
            where = table.c.id == campaign_id
        elif "campaign_id" in table.c:
            where = table.c.campaign_id == campaign_id
        elif name == "measurements":
            where = table.c.experiment_id.in_(experiments)
        else:  # hypothesis_credences, hypothesis_tests
            where = table.c.hypothesis_id.in_(hypotheses)
        rows = session.execute(select(table).where(where).order_by(table.c.id)).mappings()
        out[name] = [{column.name: _plain(row[column.name]) for column in table.columns} for row in rows]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        # SQLite hands back naive datetimes; peirce writes UTC (models.utcnow), so naive means UTC.
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()
    return value


def _read_artifacts(db: Database, decisions: list[dict[str, Any]], events: list[dict[str, Any]]) -> dict[str, bytes]:
    """The artifacts the campaign's rows name: decisions' fitted states, and the arrays (spectra, patterns) its
    station's events refer to."""
    store = db.artifacts
    found: dict[str, bytes] = {}
    named = [
        (f"decision {decision['id']} ({label})", sha)
        for decision in decisions
        for label, sha in sorted((decision["artifacts"] or {}).items())
    ]
    named += [(f"event {event['id']} ({name})", sha) for event in events for name, sha in _event_arrays(event)]
    for what, sha in named:
        if sha in found:
            continue
        try:
            found[sha] = store.get_bytes(str(sha))  # refuses a missing or changed artifact by name
        except ArtifactError as exc:
            raise ArchiveError(f"archive: {what}: {exc}; nothing written") from None
    return found


def _event_arrays(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(result name, sha256) of each stored array an event's detail refers to (see store_arrays)."""
    detail = event.get("detail")
    result = detail.get("result") if isinstance(detail, dict) else None
    if not isinstance(result, dict):
        return []
    return [(str(name), str(value["artifact"])) for name, value in result.items() if is_array_reference(value)]


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")


def _table_bytes(table: str, rows: list[dict[str, Any]]) -> bytes:
    columns = [column.name for column in _schema()[table].columns]
    return _json_bytes({"table": table, "columns": columns, "rows": rows})


def _write_zip(out: Path, manifest: ArchiveManifest, members: dict[str, bytes], when: datetime) -> int:
    stamp = when.timetuple()[:6]
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as raw:
            with zipfile.ZipFile(raw, "w") as archive:
                for name, data in [(MANIFEST, _json_bytes(manifest.model_dump(mode="json"))), *sorted(members.items())]:
                    info = zipfile.ZipInfo(name, date_time=stamp)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, data)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return out.stat().st_size


# --- reading and verifying -------------------------------------------------------------------------------------


def read_archive(path: Path) -> Archive:
    """Open and verify an archive completely (no database needed); raises ArchiveError naming the first fault."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ArchiveError(f"archive: {path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"archive: {path}: not a zip file ({exc})") from None
    with archive:
        names = [info.filename for info in archive.infolist()]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ArchiveError(f"archive: {duplicated[0]}: present more than once")
        if MANIFEST not in names:
            raise ArchiveError(f"archive: {MANIFEST}: missing (not a peirce campaign archive)")
        manifest = _read_manifest(_read_member(archive, MANIFEST, _MANIFEST_LIMIT))
        listed = manifest.members
        present = set(names) - {MANIFEST}
        extra, missing = sorted(present - set(listed)), sorted(set(listed) - present)
        if extra:
            raise ArchiveError(f"archive: {extra[0]}: not listed in the manifest (added after export?)")
        if missing:
            raise ArchiveError(f"archive: {missing[0]}: listed in the manifest but missing from the archive")
        data: dict[str, bytes] = {}
        for name, entry in sorted(listed.items()):
            info = archive.getinfo(name)
            if info.file_size != entry.size:
                raise ArchiveError(
                    f"archive: {name}: {info.file_size} bytes, the manifest says {entry.size} (tampered or corrupted)"
                )
            raw = _read_member(archive, name, entry.size)
            if hashlib.sha256(raw).hexdigest() != entry.sha256:
                raise ArchiveError(f"archive: {name}: SHA-256 mismatch (tampered or corrupted)")
            data[name] = raw
    if members_digest(entry.sha256 for entry in listed.values()) != manifest.members_sha256:
        raise ArchiveError(f"archive: {MANIFEST}: members_sha256 does not match the members' hashes (edited?)")
    result = _parse_members(manifest, data)
    _check_references(result)
    return result


def _read_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        with archive.open(name) as handle:
            raw = handle.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise ArchiveError(f"archive: {name}: corrupted, cannot be read ({exc})") from None
    if len(raw) > limit:
        raise ArchiveError(f"archive: {name}: larger than {limit} bytes (tampered or corrupted)")
    return raw


def _read_manifest(raw: bytes) -> ArchiveManifest:
    where = f"archive: {MANIFEST}"
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArchiveError(f"{where}: not valid JSON ({exc})") from None
    # The format and its version first: another file's or another version's manifest is named as such, not by
    # whichever of its fields this version's model happens to trip on.
    if not isinstance(data, dict) or data.get("format") != ARCHIVE_FORMAT:
        raise ArchiveError(f"{where}: not a peirce campaign archive (format is not '{ARCHIVE_FORMAT}')")
    version = data.get("format_version")
    if version != ARCHIVE_FORMAT_VERSION:
        raise ArchiveError(
            f"{where}: format version {version!r} is not supported (this peirce reads {ARCHIVE_FORMAT_VERSION})"
        )
    try:
        manifest = ArchiveManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ArchiveError(f"{where}: {field}: {first['msg']}") from None
    members = manifest.members
    expected = {SPEC_TEXT, SPEC_JSON, *(f"{table}.json" for table in TABLES)}
    unlisted = sorted(expected - set(members) - {f"{table}.json" for table in LATER_TABLES})
    if unlisted:
        raise ArchiveError(f"{where}: does not list {unlisted[0]}")
    foreign = sorted(name for name in set(members) - expected if not _ARTIFACT_MEMBER.fullmatch(name))
    if foreign:
        raise ArchiveError(f"archive: {foreign[0]}: not a member a campaign archive has")
    return manifest


def _parse_members(manifest: ArchiveManifest, data: dict[str, bytes]) -> Archive:
    def parsed(name: str) -> Any:
        try:
            return json.loads(data[name])
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArchiveError(f"archive: {name}: not valid JSON ({exc})") from None

    try:
        spec_text = data[SPEC_TEXT].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArchiveError(f"archive: {SPEC_TEXT}: not UTF-8 text ({exc})") from None
    spec = parsed(SPEC_JSON)
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in TABLES:
        member = f"{table}.json"
        if member not in data and table in LATER_TABLES:
            tables[table] = []  # written before the table existed
            continue
        content = parsed(member)
        if not isinstance(content, dict) or content.get("table") != table or not isinstance(content.get("rows"), list):
            raise ArchiveError(f"archive: {member}: not the rows of table {table}")
        tables[table] = _rows_of_today(member, _schema()[table], content)
    artifacts: dict[str, bytes] = {}
    for name, raw in data.items():
        match = _ARTIFACT_MEMBER.fullmatch(name)
        if match is None:
            continue
        if hashlib.sha256(raw).hexdigest() != match.group(1):
            raise ArchiveError(f"archive: {name}: content does not hash to its name (changed after export)")
        artifacts[match.group(1)] = raw
    return Archive(manifest, spec_text, spec, tables, artifacts)


def _rows_of_today(member: str, table: Table, content: dict[str, Any]) -> list[dict[str, Any]]:
    """The member's rows with this database's columns. A nullable column the archive lacks was added after it was
    written (`experiments.original_parameters`, migration 0007): its rows read it as null, as the migration left
    the rows of that time. A column this database does not have, or a required one the archive lacks, is refused:
    the archive is not of this schema."""
    written = set(content.get("columns") or ())
    columns = {column.name for column in table.columns}
    added = {column.name for column in table.columns if column.nullable and not column.primary_key} - written
    if written | added != columns:
        missing = sorted(columns - written - added)
        unknown = sorted(written - columns)
        raise ArchiveError(
            f"archive: {member}: its columns are not this database's (missing: {', '.join(missing) or 'none'}; "
            f"unknown: {', '.join(unknown) or 'none'})"
        )
    rows = []
    for index, row in enumerate(content["rows"]):
        if not isinstance(row, dict) or set(row) != written:
            raise ArchiveError(f"archive: {member}: row {index + 1} does not have the table's columns")
        if not isinstance(row["id"], int) or isinstance(row["id"], bool):
            raise ArchiveError(f"archive: {member}: row {index + 1} has no integer id")
        rows.append({**row, **dict.fromkeys(added)})
    return rows


def _check_references(archive: Archive) -> None:
    """Every reference resolves inside the archive, so the import can remap all of them (and nothing points into
    whatever else the target database holds)."""
    campaigns = archive.tables["campaigns"]
    if len(campaigns) != 1:
        raise ArchiveError(f"archive: campaigns.json: {len(campaigns)} campaigns, an archive holds one")
    campaign = campaigns[0]
    if campaign["name"] != archive.name:
        raise ArchiveError(
            f"archive: campaigns.json: campaign '{campaign['name']}', the manifest says '{archive.name}'"
        )
    if campaign["spec"] != archive.spec:
        raise ArchiveError(f"archive: {SPEC_JSON}: differs from the campaign row's spec")
    if campaign["spec_text"] != archive.spec_text:
        raise ArchiveError(f"archive: {SPEC_TEXT}: differs from the campaign row's spec text")
    ids: dict[str, set[int]] = {}
    for table, rows in archive.tables.items():
        ids[table] = {row["id"] for row in rows}
        if len(ids[table]) != len(rows):
            raise ArchiveError(f"archive: {table}.json: the same id appears twice")

    def resolve(table: str, row: dict[str, Any], what: str, target: str, value: Any) -> None:
        if value is not None and value not in ids[target]:
            raise ArchiveError(
                f"archive: {table}.json: {_SINGULAR[table]} {row['id']} names {what} {value!r}, "
                "which is not in the archive"
            )

    for table, column, target in foreign_keys():
        for row in archive.tables[table]:
            resolve(table, row, column, target, row[column])
    for table, column in _EXPERIMENT_ID_LISTS:
        for row in archive.tables[table]:
            if not isinstance(row[column], list):
                raise ArchiveError(f"archive: {table}.json: {_SINGULAR[table]} {row['id']}: {column} is not a list")
            for value in row[column]:
                resolve(table, row, f"{column} experiment", "experiments", value)
    for row in archive.tables["events"]:
        entity_table = ENTITY_TABLES.get(row["entity"])
        if entity_table is None:
            raise ArchiveError(f"archive: events.json: event {row['id']} is about an unknown entity {row['entity']!r}")
        resolve("events", row, row["entity"], entity_table, row["entity_id"])
    for row in archive.tables["decisions"]:
        if row["stage"] == "deduce":
            for proposal in _planned(row):
                resolve("decisions", row, "tested hypothesis", "hypotheses", proposal.tests_hypothesis)
        for named in _recorded_inputs(row):
            for hypothesis in named:
                resolve("decisions", row, "hypothesis (in its recorded inputs)", "hypotheses", hypothesis)
        for label, sha in (row["artifacts"] or {}).items():
            if sha not in archive.artifacts:
                raise ArchiveError(
                    f"archive: decisions.json: decision {row['id']} names artifact {sha} ({label}), "
                    "which is not in the archive"
                )
    for row in archive.tables["events"]:
        for name, sha in _event_arrays(row):
            if sha not in archive.artifacts:
                raise ArchiveError(
                    f"archive: events.json: event {row['id']} refers to array {sha} ({name}), "
                    "which is not in the archive"
                )


def foreign_keys() -> list[tuple[str, str, str]]:
    """(table, column, referenced table) for every foreign key among TABLES, read from the schema."""
    out = []
    for name in TABLES:
        for column in _schema()[name].columns:
            for key in column.foreign_keys:
                out.append((name, column.name, key.column.table.name))
    return out


# --- import ----------------------------------------------------------------------------------------------------


def import_archive(db: Database, path: Path) -> str:
    """Verify the archive at `path`, then insert its campaign into `db` in one transaction; returns its name.

    Refused, with nothing written to the database: a damaged, changed or foreign archive (ArchiveError), and a
    campaign whose name the target already has (CampaignConflict)."""
    return insert_archive(db, read_archive(path), Path(path)).name


def insert_archive(db: Database, archive: Archive, path: Path) -> ImportResult:
    """`import_archive` of an archive already read and verified (`read_archive`), with what was inserted."""
    store = db.artifacts
    try:
        with db.session() as session:
            _refuse_clash(session, db, archive.name)
            # In the transaction of the rows that name them: all of the campaign is imported, or nothing.
            for sha, raw in sorted(archive.artifacts.items()):
                store.put_bytes(sha, raw, session)
            return _insert(session, archive, path, store)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ArchiveError(
            f"archive: {path.name}: the database refused the rows ({reason}); nothing imported"
        ) from None


def _refuse_clash(session: Session, db: Database, name: str) -> None:
    if session.scalar(select(Campaign.id).where(Campaign.name == name)) is not None:
        raise CampaignConflict(
            f"archive: campaign '{name}' already exists in {db.url}; import the archive into another database (--db)"
        )


def _insert(session: Session, archive: Archive, path: Path, store: ArtifactStore) -> ImportResult:
    meta = _schema()
    keys: dict[str, dict[str, str]] = {}
    for table, column, target in foreign_keys():
        keys.setdefault(table, {})[column] = target
    ids: dict[str, dict[int, int]] = {table: {} for table in TABLES}

    def mapped(target: str, value: Any) -> Any:
        return None if value is None else ids[target][value]

    for table in TABLES[:-1]:  # events last, with their final values (the table is append-only)
        rows = archive.tables[table]
        if table == "campaigns":
            rows = [{**row, "runner": None, "heartbeat_at": None} for row in rows]  # nobody runs it here yet
        values = [{**row, **{c: mapped(t, row[c]) for c, t in keys.get(table, {}).items()}} for row in rows]
        ids[table] = _insert_rows(session, meta[table], values)
    hypothesis_ids = ids["hypotheses"]
    for row in archive.tables["hypotheses"]:
        reason = _remap_guard_mentions(row["reason"], hypothesis_ids)
        if reason != row["reason"]:
            _update(session, meta["hypotheses"], hypothesis_ids[row["id"]], row, reason=reason)
    rehash = _Rehash(archive)
    unverified: list[int] = []
    for row in archive.tables["decisions"]:
        changes: dict[str, Any] = {
            column: [ids["experiments"][i] for i in row[column]] for _, column in _EXPERIMENT_ID_LISTS
        }
        if row["stage"] == "deduce":
            changes["proposals"] = _remap_tests(row, hypothesis_ids)
        model_state = _remap_inputs(row, hypothesis_ids)
        if model_state != row["model_state"]:
            changes["model_state"] = model_state
            if "model_state" in (row["artifacts"] or {}):
                # The artifact is the model_state, content-addressed: the remapped one is stored under its own hash.
                changes["artifacts"] = {**row["artifacts"], "model_state": store.put(model_state, session)}
        digest = rehash.over_new_ids(row, ids["experiments"])
        if digest is None:
            unverified.append(row["id"])
        else:
            changes["data_hash"] = digest
        _update(session, meta["decisions"], ids["decisions"][row["id"]], row, **changes)
    events = [
        {
            **row,
            "campaign_id": mapped("campaigns", row["campaign_id"]),
            "entity_id": mapped(ENTITY_TABLES[row["entity"]], row["entity_id"]),
            "detail": _remap_detail(row["detail"], hypothesis_ids),
        }
        for row in archive.tables["events"]
    ]
    ids["events"] = _insert_rows(session, meta["events"], events)
    campaign_id = ids["campaigns"][archive.tables["campaigns"][0]["id"]]
    detail = ImportedDetail(
        archive=path.name,
        members_sha256=archive.manifest.members_sha256,
        exported_at=archive.manifest.exported_at,
        peirce_version=archive.manifest.peirce_version,
        rehashed_decisions=len(archive.tables["decisions"]) - len(unverified),
        unverified_decisions=unverified,
        # Which id here was which id in the source database (events' own ids are named by nothing).
        ids={
            _SINGULAR[table]: {str(old): new for old, new in ids[table].items()}
            for table in ("campaigns", "cycles", "decisions", "experiments", "hypotheses")
        },
    )
    add_event(
        session,
        campaign_id,
        Entity.CAMPAIGN,
        campaign_id,
        EventKind.IMPORTED,
        to_state=archive.tables["campaigns"][0]["status"],
        detail=detail.model_dump(mode="json"),
    )
    session.flush()
    return ImportResult(
        archive.name,
        campaign_id,
        archive.counts(),
        ids,
        len(archive.tables["decisions"]) - len(unverified),
        unverified,
    )


def _insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> dict[int, int]:
    """Insert `rows` (archive values, references already remapped) with new ids; returns archive id -> new id."""
    if not rows:
        return {}
    values = [{c.name: _db_value(c, row[c.name]) for c in table.columns if c.name != "id"} for row in rows]
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    new = session.execute(statement, values).scalars().all()
    return dict(zip((row["id"] for row in rows), new, strict=True))


def _update(session: Session, table: Table, row_id: int, row: dict[str, Any], **changes: Any) -> None:
    # An `onupdate` column (updated_at) keeps the archived value: the import changes no fact about the row.
    kept = {c.name: _db_value(c, row[c.name]) for c in table.columns if c.onupdate is not None}
    values = {name: _db_value(table.c[name], value) for name, value in changes.items()}
    session.execute(update(table).where(table.c.id == row_id).values(**kept, **values))


def _db_value(column: Any, value: Any) -> Any:
    if value is None:
        # SQL NULL, not JSON `null`: `Cycle.best IS NOT NULL` means "this cycle has a best" (records.latest_best).
        return null() if isinstance(column.type, JSON) else None
    if isinstance(column.type, DateTime) and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


def _remap_guard_mentions(text: Any, hypothesis_ids: dict[int, int]) -> Any:
    if not isinstance(text, str):
        return text

    def swap(match: re.Match[str]) -> str:
        old = int(match.group(2))
        return f"{match.group(1)} {hypothesis_ids[old]} (" if old in hypothesis_ids else match.group(0)

    return _GUARD_MENTION.sub(swap, text)


def _remap_detail(detail: Any, hypothesis_ids: dict[int, int]) -> Any:
    """An event's detail; a hypothesis's creation event repeats its reason (`duplicate of hypothesis 3 (…)`)."""
    if not isinstance(detail, dict) or not isinstance(detail.get("reason"), str):
        return detail
    return {**detail, "reason": _remap_guard_mentions(detail["reason"], hypothesis_ids)}


def _remap_tests(row: dict[str, Any], hypothesis_ids: dict[int, int]) -> list[dict[str, Any]]:
    """A deduction's proposals with the hypothesis each test names given its id here: the `tests_hypothesis` field
    (kept absent in a record older than it, whose link is read from the rationale), and the rationale's mention of
    that same hypothesis (`tests hypothesis 3 (…)`), so the text a reader sees names the row it means."""
    out = []
    for stored, proposal in zip(row["proposals"], _planned(row), strict=True):
        old = proposal.tests_hypothesis
        if old is None:
            out.append(stored)
            continue
        new = hypothesis_ids[old]
        remapped = {**stored, "rationale": _renamed_test(proposal.rationale, old, new)}
        if "tests_hypothesis" in stored:
            remapped["tests_hypothesis"] = new
        out.append(remapped)
    return out


def _remap_inputs(row: dict[str, Any], hypothesis_ids: dict[int, int]) -> Any:
    """A decision's model_state with the hypothesis ids its inputs name given their ids here: the open claims a
    test selection weighed (`hypothesis_tests.inputs.open`, at the top of either shape of a deduction's state) and
    the ledger an abduction saw (`inputs.ledger`). Parsed first (`_recorded_inputs`), so the paths exist."""
    state = row["model_state"]
    open_ids, ledger_ids = _recorded_inputs(row)
    if not open_ids and not ledger_ids:
        return state
    state = copy.deepcopy(state)
    if open_ids:
        for entry in state["hypothesis_tests"]["inputs"]["open"]:
            entry["id"] = hypothesis_ids[entry["id"]]
    if ledger_ids:
        for entry in state["inputs"]["ledger"]:
            entry["id"] = hypothesis_ids[entry["id"]]
    return state


def _recorded_inputs(row: dict[str, Any]) -> tuple[list[int], list[int]]:
    """The hypothesis ids a decision's recorded inputs name: (open claims of its test selection, its ledger)."""
    try:
        if row["stage"] == "deduce":
            selection = DeductionState.model_validate(row["model_state"]).hypothesis_tests
            inputs = selection.inputs if selection is not None else None
            return ([claim.id for claim in inputs.open] if inputs is not None else []), []
        abduction = AbductionState.model_validate(row["model_state"]).inputs
        return [], [entry.id for entry in abduction.ledger] if abduction is not None else []
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ArchiveError(
            f"archive: decisions.json: decision {row['id']}: model_state.{where}: {first['msg']}"
        ) from None


def _planned(row: dict[str, Any]) -> list[PlannedProposal]:
    """A deduction's proposals as records; one that is not is named (decision and field)."""
    try:
        return _PLANNED.validate_python(row["proposals"])
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ArchiveError(
            f"archive: decisions.json: decision {row['id']}: proposals.{where}: {first['msg']}"
        ) from None


def _renamed_test(rationale: str, old: int, new: int) -> str:
    mention = f"tests hypothesis {old} ("
    return f"tests hypothesis {new} (" + rationale[len(mention) :] if rationale.startswith(mention) else rationale


class _Rehash:
    """A decision's data hash over the results it saw, as cycle.deduce and ledger.hypotheses (abduce) compute it.

    Both hash the experiments' ids with the data, so the archived hash holds only over the archive's ids. It is
    checked over those first: only a hash that held there is re-computed over the new ids (a stale one stays
    stale, so replay in the target says what it would have said in the source)."""

    def __init__(self, archive: Archive) -> None:
        objectives = [o["name"] for o in archive.tables["campaigns"][0]["spec"].get("objectives", [])]
        latest: dict[int, dict[str, float]] = {}
        experiments = {row["id"]: row for row in archive.tables["experiments"]}
        for m in archive.tables["measurements"]:
            if m["attempt"] == experiments[m["experiment_id"]]["attempts"]:
                latest.setdefault(m["experiment_id"], {})[m["name"]] = m["value"]
        self.experiments = experiments
        self.seen: dict[int, tuple[dict[str, Any], dict[str, float], bool]] = {}
        for i, row in experiments.items():
            if row["state"] == ExperimentState.INFEASIBLE:
                self.seen[i] = (row["parameters"], {}, False)
            else:
                values = latest.get(i, {})
                self.seen[i] = (row["parameters"], {n: values[n] for n in objectives if n in values}, True)

    def _formulas(self, row: dict[str, Any], rename: Callable[[int], int]) -> dict[str, str]:
        observed = [(i, *self.seen[i]) for i in row["observation_ids"]]
        pending = [(i, self.experiments[i]["parameters"]) for i in row["pending_ids"]]
        return {
            "deduce": planning_data_hash(
                [(rename(i), p, v, f) for i, p, v, f in observed], [(rename(i), p) for i, p in pending]
            ),
            "abduce": abduction_data_hash([(rename(i), p, v) for i, p, v, _ in observed]),
        }

    def over_new_ids(self, row: dict[str, Any], experiment_ids: dict[int, int]) -> str | None:
        for formula, digest in self._formulas(row, lambda i: i).items():
            if digest == row["data_hash"]:
                return self._formulas(row, experiment_ids.__getitem__)[formula]
        return None
