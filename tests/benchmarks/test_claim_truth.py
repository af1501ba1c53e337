"""The benchmark's ground truth: each kind of claim decided on a small table whose answers are known by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from claim_truth import claim_is_true

from planners.hypotheses.claims import parse_claim

# yield = catalyst base (A 10, B 30) + 0.5 * temperature, except one outlier: A at 80 degrees gives 100.
POINTS = [{"catalyst": c, "temperature": t} for c in "AB" for t in (20, 50, 80)]
VALUES = [10 + 0.5 * t if c == "A" else 30 + 0.5 * t for c in "AB" for t in (20, 50, 80)]
VALUES[2] = 100.0  # A at 80: the table's best row


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        # Mean over temperatures: A = (20 + 35 + 100) / 3 = 51.7, B = (40 + 55 + 70) / 3 = 55, so B beats A.
        ({"kind": "contrast", "objective": "y", "parameter": "catalyst", "better": "B", "worse": "A"}, True),
        ({"kind": "contrast", "objective": "y", "parameter": "catalyst", "better": "A", "worse": "B"}, False),
        # Held at 80 degrees A wins (100 against 70).
        (
            {
                "kind": "contrast",
                "objective": "y",
                "parameter": "catalyst",
                "better": "A",
                "worse": "B",
                "context": {"temperature": 80},
            },
            True,
        ),
        (
            {
                "kind": "effect",
                "objective": "y",
                "parameter": "temperature",
                "from_value": 20,
                "to_value": 80,
                "direction": "raises",
            },
            True,
        ),
        (
            {
                "kind": "effect",
                "objective": "y",
                "parameter": "temperature",
                "from_value": 20,
                "to_value": 80,
                "direction": "lowers",
            },
            False,
        ),
        ({"kind": "region", "objective": "y", "where": [{"parameter": "catalyst", "levels": ["A"]}]}, True),
        ({"kind": "region", "objective": "y", "where": [{"parameter": "temperature", "at_most": 50}]}, False),
        ({"kind": "attainability", "objective": "y", "value": 99}, True),
        ({"kind": "attainability", "objective": "y", "value": 100}, False),
        ({"kind": "attainability", "objective": "y", "value": 25, "relation": "below"}, True),
    ],
)
def test_claims_are_decided_as_by_hand(claim: dict, expected: bool) -> None:
    assert claim_is_true(parse_claim(claim), POINTS, VALUES, "maximize") is expected
