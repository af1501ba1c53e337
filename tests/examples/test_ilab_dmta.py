"""The iLab DMTA template: the shipped library against RDKit's own copy of the NCI file, the surrogate's stated
optimum against an independent computation over the whole library, and a few cycles through the real CLI, checked
from the database: failed syntheses end infeasible, made molecules carry the oracle's values."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from rdkit import Chem, DataStructs, RDConfig
from rdkit.Chem import QED, rdFingerprintGenerator
from sqlalchemy import select

from orchestrator.campaign.spec import load_spec
from orchestrator.store.database import open_database
from orchestrator.store.models import Decision, Experiment, Measurement
from planners.space import MoleculeParameter
from simulators.templates import ilab
from tests.orchestrator.cli.helpers import invoke

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "ilab_dmta"
OSIMERTINIB = "COc1cc(N(C)CCN(C)C)c(NC(=O)C=C)cc1Nc1nccc(-c2cn(C)c3ccccc23)n1"


def _library() -> dict[str, str]:
    lines = (TEMPLATE / "library.smi").read_text().splitlines()
    return dict(reversed(line.split()) for line in lines if line and not line.startswith("#"))  # type: ignore[misc]


def test_the_library_is_rdkits_nci_file_less_unparsable_and_repeated_structures() -> None:
    source = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    expected, seen = {}, set()
    for line in source.read_text().splitlines():
        smiles, number = line.split()
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or Chem.MolToSmiles(mol) in seen:
            continue
        seen.add(Chem.MolToSmiles(mol))
        expected[f"nci_{number}"] = smiles
    assert _library() == expected
    assert len(expected) == 4892
    spec, _ = load_spec(TEMPLATE / "campaign.yaml")
    molecule = spec.space[0]
    assert isinstance(molecule, MoleculeParameter)
    assert molecule.smiles == expected and molecule.values_from == "library.smi"


def test_the_stated_optimum_is_the_best_of_the_whole_library() -> None:
    # Independently of the module: FCFP4 as RDKit's older API spells it (feature invariants), and QED.
    reference = Chem.MolFromSmiles(OSIMERTINIB)
    fp = rdFingerprintGenerator.GetMorganGenerator(
        radius=2, fpSize=2048, atomInvariantsGenerator=rdFingerprintGenerator.GetMorganFeatureAtomInvGen()
    )
    target = fp.GetFingerprint(reference)
    scores = {}
    for name, smiles in _library().items():
        mol = Chem.MolFromSmiles(smiles)
        scores[name] = QED.qed(mol) * DataStructs.TanimotoSimilarity(target, fp.GetFingerprint(mol))
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)
    assert ranked[0] == ilab.KNOWN_BEST
    assert scores[ranked[0]] == pytest.approx(ilab.KNOWN_BEST_ACTIVITY, abs=5e-5)
    assert scores[ranked[1]] == pytest.approx(ilab.KNOWN_SECOND_ACTIVITY, abs=5e-5)
    assert ilab.activity_proxy(_library()[ranked[0]]) == pytest.approx(scores[ranked[0]], abs=1e-12)
    # The Pareto front with the SA score computed by RDKit's Contrib module itself, loaded here on its own.
    spec = importlib.util.spec_from_file_location(
        "sa_for_test", Path(RDConfig.RDContribDir) / "SA_Score" / "sascorer.py"
    )
    assert spec is not None and spec.loader is not None
    sascorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sascorer)
    sa = {name: sascorer.calculateScore(Chem.MolFromSmiles(smiles)) for name, smiles in _library().items()}
    front, best = [], -1.0
    for name in sorted(scores, key=lambda n: (sa[n], -scores[n])):  # easiest first; kept if more active than all before
        if scores[name] > best:
            front.append(name)
            best = scores[name]
    assert front == list(ilab.KNOWN_PARETO)


def test_make_fails_more_often_the_harder_the_molecule_and_the_same_key_says_the_same() -> None:
    assert ilab.failure_probability(4.0) == pytest.approx(0.5)
    assert ilab.failure_probability(2.5) == pytest.approx(1 / (1 + math.exp(3)))
    easy, hard = "CCO", _library()["nci_3107"]
    assert ilab.sa_score(easy) < 2.5 and ilab.sa_score(hard) > 4.5
    outcomes = {
        smiles: [ilab.make_and_test({"m": "x"}, smiles={"m": smiles}, key=f"k{i}") for i in range(200)]
        for smiles in (easy, hard)
    }
    failed = {smiles: sum(r.infeasible for r in results) for smiles, results in outcomes.items()}
    assert failed[easy] < 20 < failed[hard]
    again = ilab.make_and_test({"m": "x"}, smiles={"m": hard}, key="k3")
    assert again == outcomes[hard][3]
    made = next(r for r in outcomes[easy] if not r.infeasible)
    assert made.values["activity"] == pytest.approx(ilab.activity_proxy(easy), abs=4 * 0.005)
    assert made.values["sa_score"] == ilab.sa_score(easy)


@pytest.mark.slow
def test_a_few_cycles_through_the_cli(tmp_path: Path) -> None:
    text = (TEMPLATE / "campaign.yaml").read_text()
    assert "experiments: 48" in text
    folder = tmp_path / "ilab_dmta"
    folder.mkdir()
    (folder / "library.smi").write_text((TEMPLATE / "library.smi").read_text())
    campaign = folder / "campaign.yaml"
    campaign.write_text(text.replace("experiments: 48", "experiments: 16"))
    db_url = f"sqlite:///{tmp_path / 'i.db'}"
    result = invoke("run", str(campaign), "--db", db_url, "--engine", "inline", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "budget of 16 experiments spent" in result.stdout

    library = _library()
    db = open_database(db_url)
    with db.session() as session:
        experiments = session.scalars(select(Experiment).order_by(Experiment.seq)).all()
        measured: dict[int, dict[str, float]] = {}
        for m in session.scalars(select(Measurement)):
            measured.setdefault(m.experiment_id, {})[m.name] = m.value
        decisions = session.scalars(select(Decision).order_by(Decision.id)).all()
        assert len(experiments) == 16
        assert {e.state for e in experiments} <= {"completed", "infeasible"}
        names = [e.parameters["molecule"] for e in experiments]
        assert len(set(names)) == 16 and set(names) <= set(library)
        for experiment in experiments:
            smiles = library[experiment.parameters["molecule"]]
            if experiment.state == "infeasible":
                assert experiment.id not in measured
                continue
            values = measured[experiment.id]
            assert values["sa_score"] == pytest.approx(ilab.sa_score(smiles), abs=1e-9)
            assert values["activity"] == pytest.approx(ilab.activity_proxy(smiles), abs=4 * 0.005)
        # The first batch is a space-filling design; the second was chosen by the model after it screened every
        # molecule not yet made (the library less the first batch) down to a shortlist.
        first, second = ((d.model_state or {})["planner"] for d in decisions)
        assert first["phase"] == "space-filling"
        assert second["phase"] == "model" and second["acquisition"] == "qLogNEHVI"
        assert second["candidates"] == len(library) - 8 and second["screened_to"] == 256
