"""The phases the solid-state simulator knows: each one's formula, molar mass, reference peaks and reference
intensity ratio.

The crystals of the simulated samples diffract where the reference cards say (`instruments.powder.CARDS`, shared
with the phase-identification analysis so that a twin's pattern is one the analysis can read): approximate
published positions for Cu K-alpha, stated as such there.
"""

from __future__ import annotations

from instruments.powder import CARDS, Card, molar_mass

PHASES: dict[str, Card] = dict(CARDS)
TARGET = "YBa2Cu3O6.5"

__all__ = ["PHASES", "TARGET", "Card", "molar_mass"]
