"""RDKit helpers for molecule parameters."""

from __future__ import annotations

from functools import lru_cache

from rdkit import Chem, RDLogger

# RDKit prints parse failures to stderr; we report them ourselves, once, with the field that holds them.
RDLogger.DisableLog("rdApp.*")


@lru_cache(maxsize=4096)
def canonical_smiles(smiles: str) -> str | None:
    """RDKit's canonical SMILES for `smiles`, or None when RDKit rejects it."""
    if not smiles or not smiles.strip():
        return None
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)
