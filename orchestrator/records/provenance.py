"""What a decision record needs besides the decision: seeds, data hashes, library versions."""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from orchestrator.store.artifacts import canonical_bytes

_LIBRARIES = (
    "peirce",
    "numpy",
    "scipy",
    "pandas",
    "torch",
    "botorch",
    "gpytorch",
    "rdkit",
    "sqlalchemy",
    "prefect",
    "pydantic",
)


def derive_seed(base_seed: int, *labels: int | str) -> int:
    """A seed for one act (e.g. cycle 7's planning), reproducible from the campaign's base seed."""
    digest = hashlib.sha256(":".join(str(x) for x in (base_seed, *labels)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def content_hash(data: Any) -> str:
    """SHA-256 of the canonical JSON of `data` (sorted keys, no whitespace): the name the artifact store gives the
    same data, so a record's hash of its model state is the hash of its artifact."""
    return hashlib.sha256(canonical_bytes(data)).hexdigest()


@cache
def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def runtime_settings() -> dict[str, Any]:
    """Settings of this process that change floating-point results: torch's intra-op thread count (sums are
    split differently across threads) and the CPU's vector capability. Replay compares them with the record's."""
    torch = sys.modules.get("torch")  # never imported here: a process that has not loaded torch has no threads
    if torch is None:
        return {}
    # The CPU's vector kernels torch dispatches to (AVX2, AVX512, …): the same code and versions on another CPU can
    # differ in the last digits, and a model-based choice with them.
    return {"torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def planning_data_hash(
    observed: Sequence[tuple[int, Mapping[str, Any], Mapping[str, float], bool]],
    pending: Sequence[tuple[int, Mapping[str, Any]]],
    related: Sequence[tuple[str, Sequence[tuple[int, Mapping[str, Any], Mapping[str, float], bool]]]] = (),
) -> str:
    """The hash a planning (`deduce`) decision records of the data it saw: each result as (experiment id,
    parameters, objective values, feasible) and each pending experiment as (id, parameters); and, for a campaign
    that learns from related campaigns, each one's name and results the same way. One formula for the stage that
    writes it, replay that checks it, and the archive that carries it to new ids. Without related results the hash
    is what it was before they existed, so older decisions verify unchanged."""
    data: dict[str, Any] = {
        "observations": [_result(i, p, v, f) for i, p, v, f in observed],
        "pending": [{"id": i, "parameters": dict(p)} for i, p in pending],
    }
    if related:
        data["related"] = [
            {"campaign": name, "observations": [_result(i, p, v, f) for i, p, v, f in results]}
            for name, results in related
        ]
    return content_hash(data)


def _result(i: int, parameters: Mapping[str, Any], values: Mapping[str, float], feasible: bool) -> dict[str, Any]:
    return {"id": i, "parameters": dict(parameters), "values": dict(values), "feasible": feasible}


def abduction_data_hash(observed: Sequence[tuple[int, Mapping[str, Any], Mapping[str, float]]]) -> str:
    """The hash an abduction decision records of the results it saw: (experiment id, parameters, values)."""
    return content_hash([{"id": i, "p": dict(p), "v": dict(v)} for i, p, v in observed])
