"""RDKit helpers for molecule parameters: parsing, and the numeric features a surrogate model sees.

Two featurisations are offered, because which suits a reaction screen is an empirical question (see
`docs/planner.md` for the measurement that chose the default):
- `descriptors`: RDKit's 2D descriptors (about 200 per molecule), standardised and reduced by PCA to the few
  directions in which the molecules of *this* parameter actually differ, scaled to [0, 1];
- `fingerprints`: Morgan count fingerprints (radius 2), compared by a Tanimoto (MinMax) kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import Descriptors, rdFingerprintGenerator

# RDKit prints parse failures to stderr; we report them ourselves, once, with the field that holds them.
rdBase.DisableLog("rdApp.*")

FINGERPRINT_BITS = 2048
# Share of the descriptors' variance the PCA keeps; the rest is mostly noise between near-identical molecules.
DESCRIPTOR_VARIANCE_KEPT = 0.8


class MoleculeError(ValueError):
    """A SMILES string that RDKit rejects; the message names the molecule."""


# Larger than a library of a few thousand molecules, so checking the same library again (every time a stored campaign
# is read) finds every molecule parsed already.
@lru_cache(maxsize=32768)
def canonical_smiles(smiles: str) -> str | None:
    """RDKit's canonical SMILES for `smiles`, or None when RDKit rejects it."""
    if not smiles or not smiles.strip():
        return None
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def _molecule(name: str, smiles: str) -> Chem.Mol:
    mol = Chem.MolFromSmiles(smiles) if smiles and smiles.strip() else None
    if mol is None:
        raise MoleculeError(f"molecule '{name}': RDKit cannot parse SMILES '{smiles}'")
    return mol


def descriptor_features(named_smiles: Sequence[tuple[str, str]]) -> np.ndarray:
    """One row per molecule: PCA scores of its standardised RDKit 2D descriptors, each column scaled to [0, 1].

    k molecules differ in at most k - 1 directions, so at most k - 1 columns come back (at least one).
    """
    rows = []
    for name, smiles in named_smiles:
        values = Descriptors.CalcMolDescriptors(_molecule(name, smiles), missingVal=np.nan)
        rows.append([float(v) for v in values.values()])
    table = np.asarray(rows, dtype=float)
    table = table[:, np.all(np.isfinite(table), axis=0)]
    spread = table.std(axis=0)
    table = table[:, spread > 1e-12]
    if table.shape[1] == 0:  # identical descriptors: the molecules are indistinguishable to this featurisation
        return np.zeros((len(rows), 1))
    standardised = (table - table.mean(axis=0)) / table.std(axis=0)
    _, singular, vt = np.linalg.svd(standardised, full_matrices=False)
    explained = np.cumsum(singular**2) / np.sum(singular**2)
    keep = int(np.searchsorted(explained, DESCRIPTOR_VARIANCE_KEPT) + 1)
    keep = max(1, min(keep, len(rows) - 1))
    scores = standardised @ vt[:keep].T
    low, high = scores.min(axis=0), scores.max(axis=0)
    return (scores - low) / np.where(high - low > 0, high - low, 1.0)


def fingerprint_features(named_smiles: Sequence[tuple[str, str]]) -> np.ndarray:
    """One row per molecule: Morgan count fingerprint (radius 2), bits that are equal for all molecules dropped."""
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FINGERPRINT_BITS)
    table = np.asarray(
        [generator.GetCountFingerprintAsNumPy(_molecule(name, smiles)) for name, smiles in named_smiles],
        dtype=float,
    )
    varying = table.max(axis=0) != table.min(axis=0)
    return table[:, varying] if varying.any() else table[:, :1]
