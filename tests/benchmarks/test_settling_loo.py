"""The settling-rule replay: a rule applied to a recorded credence history settles a claim where the ledger would."""

from __future__ import annotations

from typing import Any

from benchmarks.settling_loo import Rule, Score, score, settle


def claim(history: list[tuple[int, float, int]], status: str = "open", true: bool | None = True) -> dict[str, Any]:
    """A recorded claim: (results, credence, evidence) per cycle, its status at the end of the recording."""
    return {"history": [list(row) for row in history], "status": status, "true": true}


DEFAULT = Rule(0.95, 0.05, 2, 2)


def test_supported_after_the_confirming_cycles_with_enough_evidence() -> None:
    h = claim([(5, 0.97, 0), (10, 0.96, 3), (15, 0.99, 5)])
    assert settle(h, DEFAULT) == "supported"  # 0.97 and 0.96 at 10 results, with 3 tests
    assert settle(h, Rule(0.95, 0.05, 5, 2)) == "supported"  # only at 15 results, once 5 tests are in
    assert settle(h, Rule(0.95, 0.05, 6, 2)) is None


def test_a_dip_restarts_the_count_and_the_prior_alone_settles_nothing() -> None:
    h = claim([(5, 0.99, 0), (10, 0.90, 4), (15, 0.97, 6), (20, 0.20, 8)])
    assert settle(h, Rule(0.95, 0.05, 1, 1)) == "supported"  # at 15: one cycle suffices
    assert settle(h, DEFAULT) is None  # never two cycles in a row past 0.95 with evidence
    assert settle(claim([(5, 0.99, 0)]), Rule(0.9, 0.1, 1, 1)) is None  # no test yet


def test_refuted_and_demonstrated() -> None:
    assert settle(claim([(5, 0.5, 0), (10, 0.04, 2), (15, 0.01, 4)]), DEFAULT) == "refuted"
    # A claim recorded as supported with settling off was demonstrated by a result: every rule settles it.
    demonstrated = claim([(5, 0.4, 0), (10, 0.7, 10)], status="supported")
    assert settle(demonstrated, Rule(0.99, 0.01, 5, 3)) == "supported"


def test_score_counts_precision_and_rate() -> None:
    run = {
        "experiments": 50,
        "hypotheses": [
            claim([(5, 0.5, 0), (10, 0.99, 3), (15, 0.99, 5)], true=True),
            claim([(5, 0.5, 0), (10, 0.99, 3), (15, 0.99, 5)], true=False),
            claim([(5, 0.5, 0), (10, 0.01, 3), (15, 0.01, 5)], true=False),
            claim([(5, 0.5, 0), (10, 0.5, 3)], true=True),
            {"history": [], "status": "rejected", "true": None},
        ],
    }
    s = score([run], DEFAULT)
    assert (s.settled, s.supported, s.supported_true, s.refuted, s.refuted_false) == (3, 2, 1, 1, 1)
    assert s.rate == 3.0 and s.precision == 2 / 3
    assert not s.meets(0.9) and Score(supported=4, supported_true=4).meets(0.9)
