"""A surrogate of a design-make-test-analyse (DMTA) loop after AstraZeneca's iLab, the automated drug-design
laboratory (the "make" and "test" halves; the planner designs and the campaign analyses).

Nothing here is AstraZeneca's chemistry, assay or data. The chemistry is a library of molecules (the template's
`library.smi`, 4,892 structures of the NCI open database as RDKit ships them), and both halves are computed from a
molecule's structure with RDKit:

- make: synthesis succeeds with a probability that falls as the molecule's synthetic accessibility (SA) score
  rises (P. Ertl and A. Schuffenhauer, J. Cheminform. 1, 8 (2009); RDKit's Contrib/SA_Score, 1 easy to 10 hard):
  P(fail) = 1 / (1 + exp(-(SA - `sa_midpoint`) / `sa_width`)); by default half of the molecules of SA 4 fail, one in
  twenty of SA 2.5, nine in ten of SA 5.1. Whether a given experiment fails is drawn from its idempotency key, so a
  retry of the same experiment says the same. A failed synthesis is `infeasible`: the science said no.
- test: an RDKit-computable oracle stands in for the assay. The activity proxy is QED (G. R. Bickerton et al., Nat.
  Chem. 4, 90 (2012)) times the Tanimoto similarity of FCFP4 (Morgan radius 2 on pharmacophoric atom features, 2,048
  bits) to osimertinib, AstraZeneca's third-generation EGFR inhibitor: a GuacaMol-style objective (N. Brown et al.,
  J. Chem. Inf. Model. 59, 1096 (2019)), similar in spirit to its osimertinib MPO, not the same function. It is
  0 to 1; each measurement adds seeded scatter of `noise` (default 0.005), like an assay's replicate error.
- the second objective, synthesisability, is the SA score itself, reported by the make step (lower is easier).

Known optimum over the library (computed from the structures, no scatter; the test recomputes it independently):
best activity proxy 0.3165 for nci_3585 (COC1=CC(=C2N=CC=CC2=C1)NC(=O)CCN3CCOCC3, SA 2.09); see KNOWN_* below and
the template's README for the Pareto front.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from rdkit import Chem, DataStructs, RDConfig, rdBase
from rdkit.Chem import QED, rdFingerprintGenerator

from simulators.base import SimulationResult

Journal = Callable[[str, dict[str, Any]], None]

rdBase.DisableLog("rdApp.*")

REFERENCE_NAME = "osimertinib"
REFERENCE_SMILES = "COc1cc(N(C)CCN(C)C)c(NC(=O)C=C)cc1Nc1nccc(-c2cn(C)c3ccccc23)n1"
ROBOT = "ilab"  # the instrument the twin's steps are journalled under

KNOWN_BEST = "nci_3585"
KNOWN_BEST_ACTIVITY = 0.3165  # QED x FCFP4 similarity to osimertinib, rounded to 4 places
KNOWN_SECOND_ACTIVITY = 0.2083
# The library's Pareto front (activity up, SA score down), from the easiest molecule to the most active.
KNOWN_PARETO = (
    "nci_4708",
    "nci_4129",
    "nci_3131",
    "nci_3793",
    "nci_4687",
    "nci_3135",
    "nci_4004",
    "nci_4461",
    "nci_3585",
)


@lru_cache(maxsize=1)
def _sascorer() -> ModuleType:
    """RDKit's SA score module (Contrib, not importable as a package): loaded from the installed RDKit's files."""
    path = Path(RDConfig.RDContribDir) / "SA_Score" / "sascorer.py"
    spec = importlib.util.spec_from_file_location("peirce_sascorer", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"RDKit's SA score module is missing ({os.path.basename(path)})")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=1)
def _fcfp4() -> Any:
    return rdFingerprintGenerator.GetMorganGenerator(
        radius=2, fpSize=2048, atomInvariantsGenerator=rdFingerprintGenerator.GetMorganFeatureAtomInvGen()
    )


@lru_cache(maxsize=1)
def _reference() -> Any:
    return _fcfp4().GetFingerprint(Chem.MolFromSmiles(REFERENCE_SMILES))


def _molecule(smiles: str) -> Chem.Mol:
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None:
        raise ValueError(f"RDKit cannot parse SMILES '{smiles}'")
    return mol


def sa_score(smiles: str) -> float:
    """Synthetic accessibility, 1 (easy) to 10 (hard)."""
    return float(_sascorer().calculateScore(_molecule(smiles)))


def activity_proxy(smiles: str) -> float:
    """QED times the FCFP4 Tanimoto similarity to osimertinib, 0 to 1, without scatter."""
    mol = _molecule(smiles)
    similarity = DataStructs.TanimotoSimilarity(_reference(), _fcfp4().GetFingerprint(mol))
    return float(QED.qed(mol) * similarity)


def failure_probability(sa: float, midpoint: float = 4.0, width: float = 0.5) -> float:
    return 1.0 / (1.0 + math.exp(-(sa - midpoint) / width))


def _draw(seed: int, key: str, what: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{key}:{what}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def make_and_test(
    parameters: Mapping[str, Any],
    *,
    smiles: Mapping[str, str],
    key: str = "",
    journal: Journal | None = None,
    seed: int = 0,
    noise: float = 0.005,
    sa_midpoint: float = 4.0,
    sa_width: float = 0.5,
) -> SimulationResult:
    """Make the chosen molecule and assay it: `{"activity": ..., "sa_score": ...}`, or infeasible when the synthesis
    fails. `smiles` is {parameter: SMILES} (the Python-function lab passes it); the one molecule parameter is used."""
    if len(smiles) != 1:
        raise ValueError(f"expected one molecule parameter, got {len(smiles)}")
    [(parameter, structure)] = smiles.items()
    name = str(parameters[parameter])
    write = journal or (lambda kind, detail: None)
    sa = sa_score(structure)
    p_fail = failure_probability(sa, sa_midpoint, sa_width)
    made = _draw(seed, key, "make").random() >= p_fail
    write(
        "action-done",
        {
            "instrument": ROBOT,
            "action": "make",
            "args": {"molecule": name, "smiles": structure},
            "result": {"made": made, "sa_score": round(sa, 3), "p_fail": round(p_fail, 3)},
        },
    )
    if not made:
        return SimulationResult(
            infeasible=True, reason=f"synthesis of {name} failed (SA score {sa:.2f}, P(fail) {p_fail:.2f})"
        )
    measured = activity_proxy(structure) + noise * float(_draw(seed, key, "test").standard_normal())
    write(
        "action-done",
        {"instrument": ROBOT, "action": "assay", "args": {"molecule": name}, "result": {"activity": measured}},
    )
    return SimulationResult(values={"activity": measured, "sa_score": sa})
