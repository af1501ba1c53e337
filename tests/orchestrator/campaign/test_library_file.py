"""A molecule parameter's library read from a SMILES file (`values_from`), relative to the campaign file: its
molecules are written into the stored spec; a missing file, a SMILES RDKit rejects, a repeated name or structure is
refused by `peirce validate` in one line naming the field and the line, exit status 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.campaign.spec import CampaignSpec, json_schema, load_spec
from planners.space import MoleculeParameter
from tests.campaigns import write_spec
from tests.orchestrator.cli.helpers import invoke, one_error

FIELD = "space[1].values_from"


def _campaign(folder: Path, library: str | None, **parameter: Any) -> Path:
    if library is not None:
        (folder / "chem").mkdir(exist_ok=True)
        (folder / "chem" / "lib.smi").write_text(library)
    molecule = {"name": "amine", "type": "molecule", "values_from": "chem/lib.smi", **parameter}
    return write_spec(
        folder / "c.yaml",
        {
            "name": "lib",
            "space": [{"name": "t", "type": "continuous", "bounds": [20, 80]}, molecule],
            "objectives": [{"name": "y", "direction": "maximize"}],
            "budget": {"experiments": 4, "batch_size": 2},
            "lab": {"python": "tests.orchestrator.lab.python_labs:measure"},
        },
    )


def test_the_librarys_molecules_are_read_relative_to_the_campaign_file_and_stored(tmp_path: Path) -> None:
    library = "# amines\n\nCCN ethylamine\nc1ccccc1N  aniline (freshly distilled)\nC1CCNCC1\n"
    campaign = _campaign(tmp_path, library)
    spec, _ = load_spec(campaign)
    molecule = spec.space[1]
    assert isinstance(molecule, MoleculeParameter)
    assert molecule.smiles == {
        "ethylamine": "CCN",
        "aniline (freshly distilled)": "c1ccccc1N",
        "amine_5": "C1CCNCC1",  # no name: the parameter's and the line's
    }
    # The stored spec holds the molecules: read back without the file, it is the same campaign.
    (tmp_path / "chem" / "lib.smi").unlink()
    assert CampaignSpec.model_validate(spec.model_dump(mode="json")) == spec
    checked = invoke("validate", str(_campaign(tmp_path, library)), cwd=tmp_path)
    assert checked.returncode == 0 and "1 molecule" in checked.stdout, checked


@pytest.mark.parametrize(
    ("library", "extra", "field", "expected"),
    [
        (None, {}, FIELD, "file not found: chem/lib.smi"),
        ("CCN a\nCC(C b\n", {}, FIELD, "line 2 of chem/lib.smi: RDKit cannot parse SMILES 'CC(C'"),
        ("CCN a\nCCO b\n\nCCC a\n", {}, FIELD, "line 4 of chem/lib.smi: the name 'a' is also on line 1"),
        ("CCN a\nCCO b\nNCC c\n", {}, FIELD, "line 3 of chem/lib.smi: the same structure as line 1 ('a')"),
        ("CCN a\n", {}, FIELD, "holds 1 molecule(s); a choice needs at least two"),
        ("CCN a\nCCO b\n", {"smiles": {"x": "C", "y": "O"}}, "space[1].smiles", "either here or in values_from"),
    ],
)
def test_a_bad_library_is_one_line_naming_the_field_and_the_line(
    tmp_path: Path, library: str | None, extra: dict[str, Any], field: str, expected: str
) -> None:
    result = invoke("validate", str(_campaign(tmp_path, library, **extra)), cwd=tmp_path)
    line = one_error(result, expected)
    assert line.startswith(f"error: {field}"), line


def test_the_json_schema_takes_a_library_from_a_file_or_inline_but_not_neither(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    data = yaml.safe_load(_campaign(tmp_path, None).read_text())
    assert validator.is_valid(data)
    inline = {k: v for k, v in data["space"][1].items() if k != "values_from"}
    assert validator.is_valid({**data, "space": [data["space"][0], {**inline, "smiles": {"a": "C", "b": "O"}}]})
    assert not validator.is_valid({**data, "space": [data["space"][0], inline]})
