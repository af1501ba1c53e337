"""What a decision records, read as types: both shapes of a deduction's state, the tested hypothesis of a proposal
(a field, or the rationale of a record older than it), an abduction's inputs, and records that are not of their
type refused by field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.records.decisions import AbductionState, DeductionState, PlannedProposal
from orchestrator.records.manifest import ArchiveManifest

PLANNER = {"device": "cpu", "phase": "model", "hyperparameters": {"yield": {"raw_noise": [0.1]}}}
SELECTION = {
    "tests": 1,
    "candidates": 600,
    "open": 1,
    "inputs": {
        "open": [{"id": 3, "claim": {"kind": "region", "objective": "yield"}}],
        "widening": {"yield": 1.5},
        "surrogate": {"warm_start": {}, "seed": 7},
        "n_tests": 1,
    },
}


def test_a_deduction_state_reads_the_same_from_both_shapes() -> None:
    split = DeductionState.model_validate({"planner": PLANNER, "hypothesis_tests": SELECTION})
    merged = DeductionState.model_validate({**PLANNER, "hypothesis_tests": SELECTION})  # before the split
    assert split == merged
    assert split.planner == PLANNER and split.tests == 1
    assert split.hypothesis_tests is not None and split.hypothesis_tests.inputs is not None
    assert split.hypothesis_tests.inputs.open[0].id == 3 and split.hypothesis_tests.inputs.surrogate.seed == 7


def test_a_deduction_without_tests_or_state() -> None:
    assert DeductionState.model_validate(None) == DeductionState()
    assert DeductionState.model_validate(PLANNER) == DeductionState(planner=PLANNER)
    assert DeductionState.model_validate(PLANNER).tests == 0
    assert DeductionState().stored() is None
    assert DeductionState(planner=PLANNER).stored() == {"planner": PLANNER, "hypothesis_tests": None}


def test_a_selection_that_is_not_one_is_refused_by_field() -> None:
    with pytest.raises(ValidationError) as caught:
        DeductionState.model_validate({"planner": PLANNER, "hypothesis_tests": {"tests": "many"}})
    assert caught.value.errors()[0]["loc"] == ("hypothesis_tests", "tests")
    with pytest.raises(ValidationError):
        DeductionState.model_validate({"planner": PLANNER, "hypothesis_tests": {"tests": 1, "chosen": [1]}})


def test_the_tested_hypothesis_is_the_field_and_in_old_records_the_rationale() -> None:
    rationale = "tests hypothesis 12 (the best yield lies where base is KOAc): expected to settle 0.07 bits"
    base = {"parameters": {"base": "KOAc"}, "predicted": {"yield": {"mean": 70.0, "std": 5.0}}}

    def link(**record: object) -> int | None:
        return PlannedProposal.model_validate({**base, **record}).tests_hypothesis

    assert link(rationale=rationale) == 12
    assert link(rationale=rationale, tests_hypothesis=4) == 4
    # A record with the field says what it says, even when its rationale mentions a hypothesis.
    assert link(rationale=rationale, tests_hypothesis=None) is None
    assert link(rationale="qLogNEI 1.2; see hypothesis 3 (") is None


def test_an_abduction_state_with_and_without_inputs() -> None:
    entry = {"id": 1, "claim": {"kind": "region"}, "statement": "s", "source": "model", "status": "open"}
    state = AbductionState.model_validate(
        {"hyperparameters": None, "inputs": {"ledger": [entry], "max_new": 2, "widening": {}, "surrogate": None}}
    )
    assert state.inputs is not None and state.inputs.ledger[0].credence is None and state.inputs.surrogate is None
    assert AbductionState.model_validate({"hyperparameters": {"yield": {}}}).inputs is None  # before inputs were kept
    assert AbductionState.model_validate(None) == AbductionState()


def test_a_manifest_names_the_field_at_fault() -> None:
    manifest = {
        "format": "peirce-campaign-archive",
        "format_version": 1,
        "campaign": "c",
        "members": {"spec.yaml": {"sha256": "0" * 64, "size": 3}},
        "members_sha256": "f" * 64,
    }
    assert ArchiveManifest.model_validate(manifest).members["spec.yaml"].size == 3
    with pytest.raises(ValidationError) as caught:
        ArchiveManifest.model_validate({**manifest, "members": {"spec.yaml": {"sha256": "x", "size": 3}}})
    assert caught.value.errors()[0]["loc"] == ("members", "spec.yaml", "sha256")
