"""Replay: derive every planning decision of a campaign again from its record, and say whether it matches.

For each `deduce` decision, in order, the record gives the planner's configuration and seed, the ids of the
results it saw and of the experiments still pending, the previous decision's fitted state it warm-started from,
and, through its artifact, the fitted state it produced. Replay rebuilds exactly those inputs from the database,
checks them against the record (the data hash, the artifact's hash), asks the same planner again and compares
the proposals. A campaign that learns from related campaigns recorded which of their results it was given (their
ids); replay reads those rows again, checks them with the rest in the data hash, and gives them to the planner.
On the same machine, library versions and thread count the proposals match exactly; elsewhere floating-point
results can differ in the last digits and then the optimiser may pick another point, which the table reports with
the versions that differ.

The part of a batch chosen to test hypotheses is chosen again from what its record keeps (the open claims, the
widening, the surrogate's warm start and seed) and compared; the planner then gets the recorded tests as pending,
as it did. Abductions by the fitted model are derived again the same way (their record keeps the ledger as it
stood); an LLM's answer cannot be asked for again, so those rows point to the prompt and answer in the record.

Counterfactual replay (`planner=` other settings) asks another planner at each cycle, given the same history,
and compares, under a model fitted to that history, the predicted value of its choices with that of the
experiments actually run. It cannot run the experiments; it shows what the model believed of each choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select

from orchestrator.campaign.spec import CampaignSpec
from orchestrator.cycle.deduce import plan_batch, with_related
from orchestrator.cycle.observations import RelatedObserved, data_hash, related_seen
from orchestrator.errors import CampaignConflict, RecordError, SpecError
from orchestrator.lab.build import build_lab
from orchestrator.ledger.hypotheses import model_settings, select_tests
from orchestrator.records.decisions import (
    AbductionState,
    DeductionState,
    LedgerEntryRecord,
    PlannedProposal,
    ProposedClaim,
    TestSelection,
)
from orchestrator.records.provenance import (
    abduction_data_hash,
    content_hash,
    library_versions,
    runtime_settings,
)
from orchestrator.store.artifacts import ArtifactError
from orchestrator.store.database import Database
from orchestrator.store.models import CampaignStatus, Cycle, Decision, Experiment
from orchestrator.store.queries import observation_of
from orchestrator.store.records import find_campaign
from planners.base import Observation, Plan, PlanningProblem, Proposal
from planners.hypotheses.base import AbductionRequest, LedgerEntry
from planners.hypotheses.claims import parse_claim
from planners.registry import build_planner
from planners.settings import PlannerSettings

_T = TypeVar("_T")
_PLANNED = TypeAdapter(list[PlannedProposal])
_CLAIMED = TypeAdapter(list[ProposedClaim])

# Versions whose difference can change a re-derived decision (the rest are recorded for the reader).
_NUMERIC = (
    "torch", "botorch", "gpytorch", "numpy", "scipy", "rdkit", "peirce", "torch_threads", "cpu_capability", "device",
    "platform",
)  # fmt: skip


@dataclass(frozen=True)
class ReplayRow:
    cycle: int
    decision_id: int
    stage: str
    planner: str
    proposals: int
    status: str  # match | mismatch | not re-derived | counterfactual
    max_difference: float | None
    note: str
    recorded: list[dict[str, Any]] = field(default_factory=list)
    rederived: list[dict[str, Any]] = field(default_factory=list)
    recorded_value: float | None = None  # counterfactual: the model's best predicted value among what was run
    alternative_value: float | None = None  # … and among the other planner's choices


@dataclass
class ReplayReport:
    campaign: str
    status: str
    finished: bool
    rows: list[ReplayRow]
    version_differences: dict[str, tuple[Any, Any]]
    counterfactual: dict[str, Any] | None = None

    def all_match(self) -> bool:
        derived = [r for r in self.rows if r.status in ("match", "mismatch")]
        return bool(derived) and all(r.status == "match" for r in derived)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(row) for row in self.rows]


class CandidateSource(Protocol):
    """What replay needs of a lab: the only points it can run (None: any point of the space)."""

    @property
    def candidates(self) -> list[dict[str, Any]] | None: ...


def replay_campaign(
    db: Database, ref: str, planner: dict[str, Any] | None = None, *, lab: CandidateSource | None = None
) -> ReplayReport:
    """Re-derive (or, with `planner`, ask another planner about) every decision of campaign `ref`, in order.

    `lab`: where the candidates come from; by default the lab the stored spec describes (a lookup campaign needs
    its table where the spec names it; elsewhere, pass a lab built from a spec that names the table here)."""
    with db.session() as session:
        campaign = find_campaign(session, ref)
        spec = CampaignSpec.model_validate(campaign.spec)
        decisions = session.scalars(
            select(Decision).where(Decision.campaign_id == campaign.id).order_by(Decision.id)
        ).all()
        experiments = {
            e.id: e for e in session.scalars(select(Experiment).where(Experiment.campaign_id == campaign.id))
        }
        for experiment in experiments.values():
            _ = experiment.measurements  # loaded now, read after the session closes
        cycles = {c.id: c.index for c in session.scalars(select(Cycle).where(Cycle.campaign_id == campaign.id))}
        name, status = campaign.name, campaign.status
        related = {d.id: _related_of(session, spec, d) for d in decisions if d.stage == "deduce"}
    if not decisions:
        raise CampaignConflict(f"CAMPAIGN: '{name}' has no decisions to replay yet")
    finished = status in (CampaignStatus.COMPLETED, CampaignStatus.STOPPED, CampaignStatus.FAILED)
    settings = _planner_settings(spec, planner)
    problem = spec.problem(candidates=(lab if lab is not None else build_lab(spec)).candidates)
    chosen_planner = build_planner(settings)
    store = db.artifacts
    objectives = [o.name for o in spec.objectives]
    rows: list[ReplayRow] = []
    warm_start: dict[str, Any] | None = None  # the previous deduction's planner state
    recorded_versions: dict[str, Any] = {}
    for decision in decisions:
        cycle = cycles.get(decision.cycle_id, 0)
        if decision.stage != "deduce":
            if planner is None:
                rows.append(_abduction(cycle, decision, spec, problem, experiments, objectives))
            else:
                rows.append(_row(cycle, decision, "not re-derived", None, "abduction: only planners are asked"))
            continue
        recorded_versions = decision.versions or recorded_versions
        state = _parsed(decision, "model_state", DeductionState.model_validate, decision.model_state)
        proposals = _parsed(decision, "proposals", _PLANNED.validate_python, decision.proposals)
        seen = related.get(decision.id, [])
        checked = seen if isinstance(seen, str) else _check_record(decision, experiments, store, objectives, seen)
        if isinstance(checked, str):
            rows.append(_row(cycle, decision, "mismatch", None, checked))
            warm_start = state.planner
            continue
        observed, pending = checked
        tests = state.tests
        test_records, own_records = proposals[:tests], proposals[tests:]
        own = [p.parameters for p in own_records]
        test_points = [p.parameters for p in test_records]
        selection = state.hypothesis_tests
        test_note = (
            _rederive_tests(decision, selection, spec, problem, observed, pending, test_records)
            if tests and selection is not None
            else None
        )
        observations = [o for _, o in observed]
        recorded_tests = [Proposal(parameters=p) for p in test_points]
        # The related campaigns' results the decision saw (checked with the data hash), as the stage gave them.
        asked = with_related(problem, seen if not isinstance(seen, str) else [])
        if planner is None:
            # The stage's own pure step: the planner fills the batch around the recorded tests from its warm start.
            batch = plan_batch(
                asked, chosen_planner, observations, pending, recorded_tests, tests + len(own), decision.seed,
                warm_start,
            )  # fmt: skip
            rows.append(_compare(cycle, decision, own_records, batch.planned, tests, test_note))
        else:
            batch = plan_batch(
                asked, chosen_planner, observations, pending, recorded_tests, tests + max(1, len(own)),
                decision.seed, None,
            )  # fmt: skip
            rows.append(_counterfactual(cycle, decision, problem, spec, observed, own, batch.planned))
        warm_start = state.planner
    now = {**library_versions(), **runtime_settings()}
    differences = {
        key: (recorded_versions.get(key), now.get(key))
        for key in sorted(set(recorded_versions) | set(now))
        if key in _NUMERIC and key != "device" and recorded_versions.get(key) != now.get(key)
    }
    if "device" in recorded_versions and recorded_versions["device"] != _device_now(settings):
        differences["device"] = (recorded_versions["device"], _device_now(settings))
    counterfactual = None if planner is None else {"planner": settings.model_dump(mode="json")}
    return ReplayReport(name, status, finished, rows, differences, counterfactual)


def _parsed(decision: Decision, column: str, parse: Callable[[Any], _T], value: Any) -> _T:
    """A decision's JSON column as its record type; a record that is not one is named (decision and column)."""
    try:
        return parse(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RecordError(f"decision {decision.id}: {column}{'.' + where if where else ''}: {first['msg']}") from None


# --- inputs ---------------------------------------------------------------------------------------------------


def _planner_settings(spec: CampaignSpec, override: dict[str, Any] | None) -> Any:
    if override is None:
        return spec.planner
    data = {"seed": spec.planner.seed, **override}
    try:
        return TypeAdapter(PlannerSettings).validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"] if p not in ("random", "sobol", "bayesian"))
        raise SpecError(f"--planner{'.' + where if where else ''}", first["msg"]) from None


def _related_of(session: Any, spec: CampaignSpec, decision: Decision) -> RelatedObserved | str:
    """The related campaigns' results a deduction recorded, read again by their ids (none for most campaigns); a
    record that cannot be parsed is left to the main loop, which names it."""
    try:
        seen = DeductionState.model_validate(decision.model_state).related
    except ValidationError:
        return []
    return related_seen(session, spec, seen) if seen else []


def _check_record(
    decision: Decision,
    experiments: dict[int, Experiment],
    store: Any,
    objectives: list[str],
    related: RelatedObserved,
) -> tuple[list[tuple[int, Observation]], list[dict[str, Any]]] | str:
    """The decision's inputs rebuilt from the database, or why they cannot be (named)."""
    missing = [i for i in [*decision.observation_ids, *decision.pending_ids] if i not in experiments]
    if missing:
        return f"experiments {missing} named by the record are not in the database"
    observed = [(i, observation_of(experiments[i], objectives)) for i in decision.observation_ids]
    pending_rows = [experiments[i] for i in decision.pending_ids]
    digest = data_hash(observed, pending_rows, related)
    if digest != decision.data_hash:
        return "the results in the database are not those the decision saw (data hash differs): changed since"
    for label, sha in (decision.artifacts or {}).items():
        try:
            stored = store.get(sha)
        except ArtifactError as exc:
            return f"{label}: {exc}"
        if label == "model_state" and content_hash(stored) != content_hash(decision.model_state):
            return f"model_state artifact {sha[:12]}… differs from the decision row's model_state"
    return observed, [e.parameters for e in pending_rows]


def _device_now(settings: Any) -> str:
    if getattr(settings, "kind", "") != "bayesian":
        return "cpu"
    from planners.bo.device import resolve_device  # torch loads only when the planner is Bayesian

    return str(resolve_device(settings.device))


# --- comparison -----------------------------------------------------------------------------------------------


def _difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest difference over parameters: absolute for numbers, 1 for a different level (or a missing one)."""
    worst = 0.0
    for key in set(a) | set(b):
        x, y = a.get(key), b.get(key)
        if isinstance(x, int | float) and isinstance(y, int | float) and not isinstance(x, bool):
            worst = max(worst, abs(float(x) - float(y)))
        elif x != y:
            worst = max(worst, 1.0)
    return worst


def _rederive_tests(
    decision: Decision,
    selection: TestSelection,
    spec: CampaignSpec,
    problem: PlanningProblem,
    observed: list[tuple[int, Observation]],
    pending: list[dict[str, Any]],
    recorded: list[PlannedProposal],
) -> str | None:
    """Choose the batch's hypothesis tests again from the record's inputs; None if they match, else why not."""
    inputs = selection.inputs
    if inputs is None:
        return "hypothesis tests recorded before their inputs were kept: taken from the record"
    from planners.bo.posterior import fit_surrogate  # torch and BoTorch load only when a record needs a model

    observations = [o for _, o in observed]
    fit = inputs.surrogate
    surrogate = fit_surrogate(problem, observations, model_settings(spec.planner), fit.warm_start, fit.seed)
    claims = {entry.id: parse_claim(entry.claim) for entry in inputs.open}
    plan = select_tests(
        spec.hypotheses, problem, observations, pending, surrogate, claims, inputs.widening, inputs.n_tests,
        decision.seed,
    )  # fmt: skip
    again = [dict(p.parameters) for p in plan.proposals]
    if again != [p.parameters for p in recorded]:
        return f"hypothesis tests differ: {len(again)} re-derived, {len(recorded)} recorded"
    tested = [plan.chosen[k][0] for k in range(len(again))]
    linked = [p.tests_hypothesis for p in recorded]
    if any(h is not None and h != t for h, t in zip(linked, tested, strict=True)):
        return f"hypothesis tests differ: re-derived to test hypotheses {tested}, recorded as testing {linked}"
    return None


def _compare(
    cycle: int,
    decision: Decision,
    own: list[PlannedProposal],
    plan: Plan,
    tests: int,
    test_note: str | None = None,
) -> ReplayRow:
    recorded = [p.parameters for p in own]
    again = [dict(p.parameters) for p in plan.proposals]
    if len(again) != len(recorded):
        note = f"{len(again)} proposals re-derived, {len(own)} recorded"
        return _row(cycle, decision, "mismatch", None, note, recorded, again)
    worst = max((_difference(a, b) for a, b in zip(recorded, again, strict=True)), default=0.0)
    recorded_means = [v.mean for p in own for v in p.predicted.values()]
    again_means = [v.mean for p in plan.proposals for v in p.predicted.values()]
    if len(recorded_means) == len(again_means):
        worst = max(worst, max((abs(a - b) for a, b in zip(recorded_means, again_means, strict=True)), default=0.0))
    if test_note is not None:
        if test_note.startswith("hypothesis tests differ"):
            return _row(cycle, decision, "mismatch", None, test_note, recorded, again)
        note = f"{test_note}; "
    else:
        note = f"{tests} hypothesis test(s) chosen again; " if tests else ""
    if worst == 0.0:
        return _row(cycle, decision, "match", 0.0, note + "identical", recorded, again)
    return _row(
        cycle,
        decision,
        "mismatch",
        worst,
        note + "re-derived proposals differ (floating point of another version, device or thread count can)",
        recorded,
        again,
    )


def _counterfactual(
    cycle: int,
    decision: Decision,
    problem: PlanningProblem,
    spec: CampaignSpec,
    observed: list[tuple[int, Observation]],
    own: list[dict[str, Any]],
    plan: Plan,
) -> ReplayRow:
    alternative = [dict(p.parameters) for p in plan.proposals]
    objective = spec.objectives[0]
    recorded_value = alternative_value = None
    note = ""
    try:
        from planners.bo.posterior import fit_surrogate  # torch and BoTorch load only when a model is needed

        surrogate = fit_surrogate(problem, [o for _, o in observed], model_settings(spec.planner), seed=decision.seed)
    except Exception as exc:  # a model that cannot be fitted on this history is reported, not fatal
        surrogate, note = None, f"no model on this history: {exc}"
    if surrogate is None:
        note = "too few results for a model"
    else:
        pick = max if objective.direction == "maximize" else min
        if own:
            recorded_value = float(pick(surrogate.predict(objective.name, own)[0]))
        if alternative:
            alternative_value = float(pick(surrogate.predict(objective.name, alternative)[0]))
    return ReplayRow(
        cycle=cycle,
        decision_id=decision.id,
        stage=decision.stage,
        planner=decision.planner,
        proposals=len(own),
        status="counterfactual",
        max_difference=max((_difference(a, b) for a, b in zip(own, alternative, strict=False)), default=None),
        note=note,
        recorded=own,
        rederived=alternative,
        recorded_value=_finite(recorded_value),
        alternative_value=_finite(alternative_value),
    )


def _abduction(
    cycle: int,
    decision: Decision,
    spec: CampaignSpec,
    problem: PlanningProblem,
    experiments: dict[int, Experiment],
    objectives: list[str],
) -> ReplayRow:
    """Derive a model abduction again: the same results, the same surrogate (same warm start and seed), the ledger
    and widening it saw (from its record), the same abductor. An LLM's answer cannot be derived again: its prompt
    and answer are in the record, and the row says so."""
    claims = _parsed(decision, "proposals", _CLAIMED.validate_python, decision.proposals)
    recorded = [p.claim for p in claims]
    if decision.planner != "abductor:model":
        return _row(cycle, decision, "not re-derived", None, "abduction by an LLM: prompt and answer in the record")
    inputs = _parsed(decision, "model_state", AbductionState.model_validate, decision.model_state).inputs
    if inputs is None:
        return _row(cycle, decision, "not re-derived", None, "recorded before abductions kept their inputs")
    missing = [i for i in decision.observation_ids if i not in experiments]
    if missing:
        return _row(cycle, decision, "mismatch", None, f"experiments {missing} named by the record are missing")
    observed = [(i, observation_of(experiments[i], objectives)) for i in decision.observation_ids]
    if abduction_data_hash([(i, o.parameters, o.values) for i, o in observed]) != decision.data_hash:
        return _row(cycle, decision, "mismatch", None, "the results are not those the abduction saw (data hash)")
    if inputs.surrogate is None:
        return _row(cycle, decision, "match" if not recorded else "mismatch", 0.0, "no model yet: nothing proposed")
    # torch and BoTorch load only when a record needs a model (the model abductor reads the fitted surrogate).
    from planners.bo.posterior import fit_surrogate
    from planners.hypotheses.model_abductor import ModelAbductor

    observations = [o for _, o in observed]
    fit = inputs.surrogate
    surrogate = fit_surrogate(problem, observations, model_settings(spec.planner), fit.warm_start, fit.seed)
    if surrogate is None:
        return _row(cycle, decision, "mismatch", None, "no model could be fitted again on the results it saw")
    ledger = [_ledger_entry(entry) for entry in inputs.ledger]
    request = AbductionRequest(problem, spec.goal, observations, ledger, inputs.max_new, decision.seed)
    abductor = ModelAbductor(n_samples=spec.hypotheses.posterior_samples, safety=spec.safety)
    again = [d.claim.model_dump(mode="json") for d in abductor.propose(request, surrogate, inputs.widening).drafts]
    if again == recorded:
        return _row(cycle, decision, "match", 0.0, f"{len(recorded)} claim(s) proposed; identical")
    return _row(
        cycle, decision, "mismatch", None, f"{len(again)} claim(s) re-derived, {len(recorded)} recorded, differing"
    )


def _ledger_entry(entry: LedgerEntryRecord) -> LedgerEntry:
    return LedgerEntry(
        entry.id, parse_claim(entry.claim), entry.statement, entry.source, entry.status, entry.credence, entry.evidence
    )


def _row(
    cycle: int,
    decision: Decision,
    status: str,
    worst: float | None,
    note: str,
    recorded: list[dict[str, Any]] | None = None,
    again: list[dict[str, Any]] | None = None,
) -> ReplayRow:
    return ReplayRow(
        cycle=cycle,
        decision_id=decision.id,
        stage=decision.stage,
        planner=decision.planner,
        proposals=len(decision.proposals),
        status=status,
        max_difference=worst,
        note=note,
        recorded=list(recorded or []),
        rederived=list(again or []),
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
