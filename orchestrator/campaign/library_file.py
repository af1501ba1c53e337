"""A library of molecules read from a SMILES file: `{name: m, type: molecule, values_from: library.smi}`.

The file holds one molecule a line, its SMILES and then, after white space, its name (the rest of the line); blank
lines and lines starting with `#` are skipped. A line without a name is named `<parameter>_<line number>`. The path is
relative to the campaign file. The molecules are read when the campaign file is loaded and written into the spec
(`smiles`), so a stored campaign never reads the file again; each fault is one line naming the field and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError
from planners.molecules import canonical_smiles


def resolve_libraries(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """`data` (a campaign file's mapping) with each molecule parameter's `values_from` read into its `smiles`."""
    space = data.get("space")
    if not isinstance(space, list) or not any(_reads_a_file(p) for p in space):
        return data
    resolved = []
    for i, parameter in enumerate(space):
        if _reads_a_file(parameter):
            if parameter.get("smiles") is not None:
                raise SpecError(f"space[{i}].smiles", "give the molecules either here or in values_from, not both")
            smiles = read_library(base_dir, parameter["values_from"], str(parameter.get("name", "m")), i)
            parameter = {**parameter, "smiles": smiles}
        resolved.append(parameter)
    return {**data, "space": resolved}


def _reads_a_file(parameter: Any) -> bool:
    return isinstance(parameter, dict) and parameter.get("type") == "molecule" and "values_from" in parameter


def read_library(base_dir: Path, value: Any, parameter: str, index: int) -> dict[str, str]:
    """{name: SMILES} of the file `value` names (relative to `base_dir`); SpecError naming `space[index].values_from`
    and the line at fault."""
    field = f"space[{index}].values_from"
    if not isinstance(value, str) or not value.strip():
        raise SpecError(field, "must name a SMILES file")
    path = base_dir / value
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(field, f"file not found: {value}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(field, f"cannot read {value}: {exc}") from None
    smiles: dict[str, str] = {}
    named_on: dict[str, int] = {}
    structure_on: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        written = parts[0]
        name = parts[1].strip() if len(parts) > 1 else f"{parameter}_{number}"
        canonical = canonical_smiles(written)
        if canonical is None:
            raise SpecError(field, f"line {number} of {value}: RDKit cannot parse SMILES '{written}'")
        if name in named_on:
            raise SpecError(field, f"line {number} of {value}: the name '{name}' is also on line {named_on[name]}")
        if canonical in structure_on:
            first, other = structure_on[canonical]
            raise SpecError(field, f"line {number} of {value}: the same structure as line {first} ('{other}')")
        named_on[name] = number
        structure_on[canonical] = (number, name)
        smiles[name] = written
    if len(smiles) < 2:
        raise SpecError(field, f"{value} holds {len(smiles)} molecule(s); a choice needs at least two")
    return smiles
