"""The hypothesis ledger in the cycle: abduce new claims, set part of each batch to test them, induce credences.

The maths lives in `planners.hypotheses`; this module reads what it needs from the database and writes what was
done, in the same transaction as the decision it belongs to. A campaign's `CampaignLedger` holds what every step
needs and that never changes during a run (settings, planning problem, surrogate cache, seed, safety rules, goal);
its methods take only what varies (the session, the cycle, the results seen):
- `abduce`: an abduction Decision (with the LLM's prompt and answer when an LLM was asked), and one
  Hypothesis row per proposal: `open` when it passed the guards, `rejected` with the reason when it did not;
- `plan_tests`: the experiments of this batch chosen to test open hypotheses (the most informative ones);
- `link_tests`: which hypotheses each planned experiment bears on and what each predicted there;
- `induce`: each open hypothesis's credence after the cycle (a HypothesisCredence row), and its status
  once the credence passes a threshold with enough evidence.

One surrogate is fitted per set of results and shared by the stages of a cycle (`SurrogateCache`).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.records.provenance import abduction_data_hash, content_hash, derive_seed, library_versions
from orchestrator.store.models import (
    Decision,
    Experiment,
    Hypothesis,
    HypothesisCredence,
    HypothesisStatus,
    HypothesisTest,
)
from orchestrator.store.queries import prediction_errors
from orchestrator.store.records import add_event
from planners.base import Observation, PlanningProblem, Prediction, Proposal
from planners.hypotheses.base import Abduction, AbductionRequest, Draft, LedgerEntry, Rejected
from planners.hypotheses.claims import Claim, parse_claim
from planners.hypotheses.guards import GuardError, check_claim, contradiction_reason
from planners.hypotheses.injection import instruction_flags, mark_flagged
from planners.hypotheses.settings import HypothesisSettings
from planners.sampling import sobol_points
from planners.settings import BayesianSettings
from planners.space import Point, point_key

# Candidate experiments scored for each test slot (a random draw of the untried points, plus the points each
# claim is decided on): enough to find an informative one, few enough for a joint posterior draw.
TEST_CANDIDATES = 600
# An experiment "bears on" a hypothesis when it is expected to tell at least this much about it.
BEARING_BITS = 0.01


@dataclass
class SurrogateCache:
    """The last fitted surrogate and the results it was fitted on (a cycle's stages see the same results)."""

    key: str | None = None
    surrogate: Any = None
    fits: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    # What the current surrogate was fitted from (the warm start and the seed of the stage that fitted it first):
    # recorded by the decisions that use it, so replay can fit the same surrogate in another process.
    fitted_from: dict[str, Any] = field(default_factory=dict)

    def get(
        self, problem: PlanningProblem, observations: Sequence[Observation], settings: BayesianSettings, seed: int
    ) -> Any:
        key = content_hash([{"p": o.parameters, "v": dict(o.values), "f": o.feasible} for o in observations])
        if key != self.key:
            from planners.bo.posterior import fit_surrogate  # torch and BoTorch load only when hypotheses are on

            self.fitted_from = {"warm_start": dict(self.hyperparameters), "seed": seed}
            self.surrogate = fit_surrogate(problem, observations, settings, self.hyperparameters, seed)
            self.key, self.fits = key, self.fits + 1
            if self.surrogate is not None:
                self.hyperparameters = self.surrogate.hyperparameters
        return self.surrogate


def widening(session: Session, campaign_id: int) -> dict[str, float]:
    """Per objective, how much wider than its stated standard deviations the model's errors on unseen experiments
    have been (at least 5 of them); 1 when the record is too short or the model was not overconfident.

    A robust scale: median |(measured − predicted) / sd| / 0.6745, which is 1 for a calibrated Gaussian model. The
    root mean square would let two surprises (a reaction that unexpectedly fails) widen every credence of the
    campaign; the median reads the typical miscalibration.
    """
    out = {}
    for name, errors in prediction_errors(session, campaign_id).items():
        if len(errors) >= 5:
            out[name] = max(1.0, statistics.median(abs(e) for e in errors) / 0.6745)
    return out


def model_settings(planner: Any) -> BayesianSettings:
    """The surrogate's settings: the campaign's Bayesian planner's, or the defaults under a baseline planner."""
    return planner if isinstance(planner, BayesianSettings) else BayesianSettings(kind="bayesian")


def ledger(session: Session, campaign_id: int, include_rejected: bool = False) -> list[LedgerEntry]:
    """The campaign's hypotheses as abductors and guards see them (rejected proposals left out unless asked)."""
    rows = session.scalars(
        select(Hypothesis).where(Hypothesis.campaign_id == campaign_id).order_by(Hypothesis.id)
    ).all()
    entries = []
    for row in rows:
        if row.status == HypothesisStatus.REJECTED and not include_rejected:
            continue
        try:
            claim = parse_claim(row.claim)
        except ValueError:
            continue  # a rejected proposal that never was a claim
        entries.append(LedgerEntry(row.id, claim, row.statement, row.source, row.status, row.credence, row.evidence))
    return entries


# --- the ledger of one campaign ---------------------------------------------------------------------------


@dataclass
class CampaignLedger:
    """A campaign's hypothesis ledger as the cycle drives it: what every step needs and that never changes during a
    run, held once (its methods take only what varies: the session, the cycle, the results seen)."""

    campaign_id: int
    settings: HypothesisSettings
    problem: PlanningProblem
    model: BayesianSettings  # the surrogate's settings (`model_settings` of the campaign's planner)
    base_seed: int
    safety: Any
    goal: str
    # The surrogate, fitted once per set of results and shared by a cycle's stages.
    cache: SurrogateCache = field(default_factory=SurrogateCache)

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def abduce(
        self, session: Session, *, cycle_id: int, cycle_index: int, observed: Sequence[tuple[int, Observation]]
    ) -> list[int]:
        """Ask the configured abductor for new hypotheses; store accepted and rejected ones. Returns new open ids."""

        current = ledger(session, self.campaign_id)
        open_now = sum(entry.status == HypothesisStatus.OPEN for entry in current)
        room = min(self.settings.max_new_per_cycle, self.settings.max_open - open_now)
        observations = [o for _, o in observed]
        results = sum(o.feasible for o in observations)
        if room <= 0 or results < self.settings.min_observations:
            return []
        started = time.perf_counter()
        seed = derive_seed(self.base_seed, "abduce", cycle_index)
        surrogate = self.cache.get(self.problem, observations, self.model, seed)
        request = AbductionRequest(
            problem=self.problem,
            goal=self.goal,
            observations=observations,
            ledger=current,
            max_new=room,
            seed=seed,
            notes=_read_notes(self.settings.notes),
        )
        widen = widening(session, self.campaign_id)
        abduction, abductor = _run_abductors(self.settings, request, surrogate, self.safety, widen)

        accepted: list[Draft] = []
        rejected: list[Rejected] = list(abduction.rejected)
        ledger_so_far = list(current)
        for draft in abduction.drafts:
            try:
                claim = check_claim(draft.claim, self.problem, ledger_so_far, self.safety)
            except GuardError as exc:
                rejected.append(Rejected(draft.claim.model_dump(mode="json"), str(exc), draft.source))
                continue
            accepted.append(Draft(claim, draft.rationale, draft.source))
            ledger_so_far.append(LedgerEntry(-len(accepted), claim, claim.statement(), draft.source, "open", None, 0))
        evaluations = _evaluate(
            surrogate,
            {i: d.claim for i, d in enumerate(accepted)},
            self.problem,
            observations,
            self.settings,
            seed,
            (),
            widen,
        )
        decision = Decision(
            campaign_id=self.campaign_id,
            cycle_id=cycle_id,
            stage="abduce",
            planner=f"abductor:{abductor}",
            planner_config=self.settings.model_dump(mode="json"),
            seed=seed,
            data_hash=abduction_data_hash([(i, o.parameters, o.values) for i, o in observed]),
            observation_ids=[i for i, _ in observed],
            pending_ids=[],
            proposals=[
                {"claim": d.claim.model_dump(mode="json"), "rationale": d.rationale, "source": d.source}
                for d in abduction.drafts
            ],
            versions=library_versions(),
            model_state={
                "hyperparameters": self.cache.hyperparameters.get("hyperparameters") if surrogate else None,
                # The abductor's inputs beyond the results, so replay can derive this decision again.
                "inputs": {
                    "ledger": [_entry_record(entry) for entry in current],
                    "max_new": room,
                    "widening": widen,
                    "surrogate": self.cache.fitted_from if surrogate else None,
                },
            },
            warnings=[abduction.error] if abduction.error else None,
            exchange=abduction.exchange,
            wall_time_s=0.0,
        )
        session.add(decision)
        session.flush()
        new_ids: list[int] = []
        for i, draft in enumerate(accepted):
            evaluation = evaluations.get(i)
            credence = None if evaluation is None else evaluation.credence
            reason = (
                None
                if credence is None
                else contradiction_reason(credence, self.settings.contradiction_threshold, results)
            )
            if reason is None and len(new_ids) >= room:
                reason = f"not needed: {room} new hypotheses per cycle at most (max_new_per_cycle / max_open)"
            row = new_hypothesis_row(
                self.campaign_id, cycle_id, decision.id, draft.claim, draft.source, draft.rationale
            )
            if reason is not None:
                row.status, row.reason, row.credence = HypothesisStatus.REJECTED, reason, credence
            else:
                row.credence = credence
                row.predicted = None if evaluation is None else evaluation.predicted()
            session.add(row)
            session.flush()
            if reason is None:
                new_ids.append(row.id)
                if evaluation is not None:
                    session.add(
                        HypothesisCredence(
                            hypothesis_id=row.id,
                            cycle_id=cycle_id,
                            credence=evaluation.credence,
                            evidence=0,
                            observations=results,
                            predicted=evaluation.predicted(),
                        )
                    )
            log_hypothesis(session, self.campaign_id, row)
        for item in rejected:
            row = _rejected_row(self.campaign_id, cycle_id, decision.id, item)
            session.add(row)
            session.flush()
            log_hypothesis(session, self.campaign_id, row)
        decision.wall_time_s = time.perf_counter() - started
        add_event(
            session,
            self.campaign_id,
            "decision",
            decision.id,
            "created",
            detail={"stage": "abduce", "abductor": abductor, "accepted": len(new_ids), "rejected": len(rejected)},
        )
        if abduction.error:
            add_event(
                session, self.campaign_id, "decision", decision.id, "warning", detail={"message": abduction.error}
            )
        return new_ids

    def plan_tests(
        self,
        session: Session,
        *,
        observed: Sequence[tuple[int, Observation]],
        pending: Sequence[Point],
        batch_size: int,
        seed: int,
    ) -> TestPlan:
        """Choose `round(test_share * batch_size)` experiments that best discriminate the open hypotheses."""

        n_tests = min(batch_size, math.floor(self.settings.test_share * batch_size + 0.5))
        open_rows = _open_rows(session, self.campaign_id)
        observations = [o for _, o in observed]
        if n_tests == 0 or not open_rows:
            return TestPlan([], {}, {"tests": 0, "reason": "no open hypotheses" if not open_rows else "test_share 0"})
        surrogate = self.cache.get(self.problem, observations, self.model, seed)
        if surrogate is None:
            return TestPlan([], {}, {"tests": 0, "reason": "too few results for a model"})
        claims = {row.id: parse_claim(row.claim) for row in open_rows}
        widen = widening(session, self.campaign_id)
        plan = select_tests(self.settings, self.problem, observations, pending, surrogate, claims, widen, n_tests, seed)
        # What the choice rested on besides the results, so replay can make it again.
        plan.record["inputs"] = {
            "open": [{"id": h, "claim": claim.model_dump(mode="json")} for h, claim in claims.items()],
            "widening": widen,
            "surrogate": self.cache.fitted_from,
            "n_tests": n_tests,
        }
        return plan

    def link_tests(
        self,
        session: Session,
        *,
        observed: Sequence[tuple[int, Observation]],
        seed: int,
        experiments: Sequence[Experiment],
        chosen: dict[int, tuple[int, dict[str, Any], float]],
    ) -> None:
        """Record, for every experiment of the batch, which open hypotheses it bears on and what each predicted."""
        # lazy: torch and BoTorch load only when a campaign's ledger evaluates claims
        from planners.hypotheses.deduction import information_bits

        open_rows = _open_rows(session, self.campaign_id)
        observations = [o for _, o in observed]
        surrogate = self.cache.get(self.problem, observations, self.model, seed) if open_rows else None
        if surrogate is None:
            return
        claims = {row.id: parse_claim(row.claim) for row in open_rows}
        points = [e.parameters for e in experiments]
        evaluations, samples = _evaluate(
            surrogate,
            claims,
            self.problem,
            observations,
            self.settings,
            seed + 1,
            points,
            widening(session, self.campaign_id),
        )
        noise = {name: surrogate.noise_variance(name) for name in surrogate.models}
        for h, claim in claims.items():
            evaluation = evaluations[h]
            column = samples[claim.objective]
            bits = information_bits(evaluation.holds, column, noise[claim.objective])
            for k, experiment in enumerate(experiments):
                is_test = k in chosen and chosen[k][0] == h
                if not is_test and bits[k] < BEARING_BITS:
                    continue
                predicted = (
                    chosen[k][1]
                    if is_test
                    else {
                        "objective": claim.objective,
                        "mean": float(column[:, k].mean()),
                        "std": float(column[:, k].std()),
                        "credence": evaluation.credence,
                    }
                )
                session.add(
                    HypothesisTest(
                        hypothesis_id=h,
                        experiment_id=experiment.id,
                        chosen=is_test,
                        information_bits=float(chosen[k][2] if is_test else bits[k]),
                        predicted=predicted,
                    )
                )

    def induce(
        self, session: Session, *, cycle_id: int, cycle_index: int, observed: Sequence[tuple[int, Observation]]
    ) -> list[str]:
        """Update each open hypothesis's credence from the results so far; settle those past a threshold.

        Returns one line per hypothesis whose status changed, for the cycle's report.
        """
        open_rows = _open_rows(session, self.campaign_id)
        observations = [o for _, o in observed]
        if not open_rows:
            return []
        seed = derive_seed(self.base_seed, "induce", cycle_index)
        surrogate = self.cache.get(self.problem, observations, self.model, seed)
        if surrogate is None:
            return []
        claims = {row.id: parse_claim(row.claim) for row in open_rows}
        evaluations = _evaluate(
            surrogate, claims, self.problem, observations, self.settings, seed, (), widening(session, self.campaign_id)
        )
        evidence = _evidence(session, claims, observed, self.problem)
        results = sum(o.feasible for o in observations)
        changes: list[str] = []
        for row in open_rows:
            evaluation = evaluations[row.id]
            row.credence, row.evidence, row.predicted = evaluation.credence, evidence[row.id], evaluation.predicted()
            session.add(
                HypothesisCredence(
                    hypothesis_id=row.id,
                    cycle_id=cycle_id,
                    credence=evaluation.credence,
                    evidence=evidence[row.id],
                    observations=results,
                    predicted=evaluation.predicted(),
                )
            )
            recent = session.scalars(
                select(HypothesisCredence.credence)
                .where(HypothesisCredence.hypothesis_id == row.id)
                .order_by(HypothesisCredence.id.desc())
                .limit(self.settings.confirm_cycles)
            ).all()  # this cycle's credence first (just added), then the cycles before it
            status, reason = _settle(evaluation, evidence[row.id], self.settings, list(recent))
            if status is None:
                continue
            previous = row.status
            row.status, row.reason = status, reason
            add_event(
                session,
                self.campaign_id,
                "hypothesis",
                row.id,
                "state",
                from_state=previous,
                to_state=status,
                detail={"credence": evaluation.credence, "evidence": evidence[row.id], "reason": reason},
            )
            changes.append(f"hypothesis {row.id} {status}: {row.statement} ({reason})")
        return changes


# --- abduction -------------------------------------------------------------------------------------------------


def _entry_record(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "claim": entry.claim.model_dump(mode="json"),
        "statement": entry.statement,
        "source": entry.source,
        "status": entry.status,
        "credence": entry.credence,
        "evidence": entry.evidence,
    }


def _run_abductors(
    settings: HypothesisSettings, request: AbductionRequest, surrogate: Any, safety: Any, widen: dict[str, float]
) -> tuple[Abduction, str]:
    # lazy: torch and BoTorch load only when a campaign's ledger evaluates claims
    from planners.hypotheses.model_abductor import ModelAbductor

    model_abductor = ModelAbductor(n_samples=settings.posterior_samples, safety=safety)
    if settings.source == "model":
        return (model_abductor.propose(request, surrogate, widen) if surrogate else Abduction()), "model"
    # lazy: the HTTP client loads only for an LLM campaign
    from planners.hypotheses.llm_abductor import LLMAbductor

    assert settings.llm is not None  # the settings' validator requires it for source llm
    abduction = LLMAbductor(settings.llm).propose(request)
    if (abduction.error or not abduction.drafts) and settings.fallback == "model" and surrogate is not None:
        fallback = model_abductor.propose(request, surrogate, widen)
        abduction.drafts.extend(fallback.drafts)
        note = f"{abduction.error or 'the LLM proposed no valid hypothesis'}; fell back to the model-based abductor"
        abduction.error = note
        return abduction, "llm+model"
    return abduction, "llm"


def _read_notes(paths: Sequence[Path]) -> list[tuple[str, str]]:
    """Each note's text for an LLM, with the lines that read as instructions to an AI model marked as data (the
    prompt also fences every note; see `planners.hypotheses.prompt`)."""
    notes = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            notes.append((path.name, f"(could not be read: {getattr(exc, 'strerror', None) or exc})"))
            continue
        notes.append((path.name, mark_flagged(text, instruction_flags(text))))
    return notes


def new_hypothesis_row(
    campaign_id: int, cycle_id: int | None, decision_id: int | None, claim: Claim, source: str, rationale: str
) -> Hypothesis:
    """An open ledger row for a claim that passed the guards, whoever proposed it."""
    return Hypothesis(
        campaign_id=campaign_id,
        cycle_id=cycle_id,
        decision_id=decision_id,
        kind=claim.kind,
        statement=claim.statement(),
        claim=claim.model_dump(mode="json"),
        source=source,
        rationale=rationale[:4000],
        status=HypothesisStatus.OPEN,
        evidence=0,
    )


def _rejected_row(campaign_id: int, cycle_id: int | None, decision_id: int | None, item: Rejected) -> Hypothesis:
    proposed = item.proposed if isinstance(item.proposed, dict) else {"text": str(item.proposed)[:4000]}
    try:
        statement = parse_claim(proposed).statement()
    except ValueError:
        statement = "(not a valid claim)"
    return Hypothesis(
        campaign_id=campaign_id,
        cycle_id=cycle_id,
        decision_id=decision_id,
        kind=str(proposed.get("kind", "invalid"))[:32],
        statement=statement,
        claim=proposed,
        source=item.source,
        rationale=str(proposed.get("rationale", ""))[:4000],
        status=HypothesisStatus.REJECTED,
        reason=item.reason,
        evidence=0,
    )


def log_hypothesis(session: Session, campaign_id: int, row: Hypothesis, **extra: Any) -> None:
    """The Event of a new ledger row, whoever wrote it (abduction, a person, a knowledge import)."""
    add_event(
        session,
        campaign_id,
        "hypothesis",
        row.id,
        "created",
        to_state=row.status,
        detail={
            "statement": row.statement,
            "source": row.source,
            "reason": row.reason,
            "credence": row.credence,
            **extra,
        },
    )


def _evaluate(
    surrogate: Any,
    claims: dict[int, Claim],
    problem: PlanningProblem,
    observations: Sequence[Observation],
    settings: HypothesisSettings,
    seed: int,
    extra_points: Sequence[Point] = (),
    widen: dict[str, float] | None = None,
) -> Any:
    if surrogate is None or not claims:
        return {} if not extra_points else ({}, {})
    # lazy: torch and BoTorch load only when a campaign's ledger evaluates claims
    from planners.hypotheses.credence import evaluate_claims

    evaluations, extra = evaluate_claims(
        surrogate, claims, problem.space, observations, settings.posterior_samples, seed, extra_points, widen
    )
    return evaluations if not extra_points else (evaluations, extra)


# --- deduction -------------------------------------------------------------------------------------------------


@dataclass
class TestPlan:
    """The part of a batch chosen to test hypotheses, and what is needed to link the rest of the batch."""

    __test__ = False  # not a pytest test class, whatever its name says

    proposals: list[Proposal]
    chosen: dict[int, tuple[int, dict[str, Any], float]]  # proposal index -> (hypothesis id, predicted, bits)
    record: dict[str, Any]


def select_tests(
    settings: HypothesisSettings,
    problem: PlanningProblem,
    observations: Sequence[Observation],
    pending: Sequence[Point],
    surrogate: Any,
    claims: dict[int, Any],
    widen: dict[str, float],
    n_tests: int,
    seed: int,
) -> TestPlan:
    """The experiments that best discriminate these claims under this surrogate (no database: replay calls it)."""
    # lazy: torch and BoTorch load only when a campaign's ledger evaluates claims
    from planners.hypotheses.deduction import choose_tests

    candidates = _test_candidates(problem, observations, pending, seed)
    evaluations, samples = _evaluate(surrogate, claims, problem, observations, settings, seed, candidates, widen)
    noise = {name: surrogate.noise_variance(name) for name in surrogate.models}
    choices = choose_tests(
        evaluations, {h: c.objective for h, c in claims.items()}, candidates, samples, noise, n_tests
    )
    proposals, chosen = [], {}
    for index, choice in enumerate(choices):
        claim = claims[choice.hypothesis]
        evaluation = evaluations[choice.hypothesis]
        predicted = {
            "objective": claim.objective,
            "mean": choice.predicted_mean,
            "std": choice.predicted_std,
            "credence": evaluation.credence,
        }
        rationale = (
            f"tests hypothesis {choice.hypothesis} ({claim.statement()}): expected to settle "
            f"{choice.information_bits:.2f} of its {_entropy(evaluation.credence):.2f} bits"
        )
        # The samples were widened by the ledger's factor: stated with it, so the planner's track record reads
        # this prediction against the model's own sd (`planners.calibration`).
        prediction = Prediction(
            mean=choice.predicted_mean, std=choice.predicted_std, spread=widen.get(claim.objective, 1.0)
        )
        proposals.append(
            Proposal(parameters=choice.point, predicted={claim.objective: prediction}, rationale=rationale)
        )
        chosen[index] = (choice.hypothesis, predicted, choice.information_bits)
    return TestPlan(
        proposals,
        chosen,
        {"tests": len(proposals), "candidates": len(candidates), "open": len(claims)},
    )


def _test_candidates(
    problem: PlanningProblem, observations: Sequence[Observation], pending: Sequence[Point], seed: int
) -> list[Point]:
    """Untried points that could be run: a random draw of a finite space's rest, or Sobol points otherwise."""
    space = problem.space
    rng = np.random.default_rng(seed)
    seen = {point_key(o.parameters) for o in observations} | {point_key(p) for p in pending}
    if space.is_finite and space.grid_size <= 200_000:
        left = [p for p in space.grid() if point_key(p) not in seen]
        if len(left) > TEST_CANDIDATES:
            left = [left[i] for i in sorted(rng.choice(len(left), TEST_CANDIDATES, replace=False))]
        return left
    drawn = (space.from_unit(u) for u in sobol_points(len(space.parameters), 4 * TEST_CANDIDATES, rng))
    return [p for p in drawn if space.feasible(p) and point_key(p) not in seen][:TEST_CANDIDATES]


def _open_rows(session: Session, campaign_id: int) -> list[Hypothesis]:
    return list(
        session.scalars(
            select(Hypothesis)
            .where(Hypothesis.campaign_id == campaign_id, Hypothesis.status == HypothesisStatus.OPEN)
            .order_by(Hypothesis.id)
        ).all()
    )


def _entropy(p: float) -> float:
    # lazy: torch and BoTorch load only when a campaign's ledger evaluates claims
    from planners.hypotheses.credence import binary_entropy

    return float(binary_entropy(p))


# --- induction -------------------------------------------------------------------------------------------------


def _settle(
    evaluation: Any, evidence: int, settings: HypothesisSettings, recent: list[float]
) -> tuple[str | None, str]:
    """The new status of an open claim, if any, and why. `recent`: its latest credences, newest first."""
    if evaluation.demonstrated:
        return HypothesisStatus.SUPPORTED, "a measured result already passes the stated value"
    if evidence < settings.min_evidence or len(recent) < settings.confirm_cycles:
        return None, ""
    held = f"for {settings.confirm_cycles} cycles" if settings.confirm_cycles > 1 else "this cycle"
    if all(c >= settings.support_threshold for c in recent):
        return (
            HypothesisStatus.SUPPORTED,
            f"credence {evaluation.credence:.3f} ≥ {settings.support_threshold} {held}, "
            f"with {evidence} results bearing on it",
        )
    if all(c <= settings.refute_threshold for c in recent):
        return (
            HypothesisStatus.REFUTED,
            f"credence {evaluation.credence:.3f} ≤ {settings.refute_threshold} {held}, "
            f"with {evidence} results bearing on it",
        )
    return None, ""


def _evidence(
    session: Session,
    claims: dict[int, Claim],
    observed: Sequence[tuple[int, Observation]],
    problem: PlanningProblem,
) -> dict[int, int]:
    """Completed results that bore on each hypothesis: those planned as bearing on it (HypothesisTest rows), and
    those whose point the claim speaks about directly (e.g. either level of a contrast)."""
    # lazy: torch and BoTorch load only when a campaign's ledger evaluates claims
    from planners.hypotheses.credence import bears_on

    finished = {experiment_id for experiment_id, o in observed if o.feasible}
    linked: dict[int, set[int]] = {h: set() for h in claims}
    for h, experiment_id in session.execute(
        select(HypothesisTest.hypothesis_id, HypothesisTest.experiment_id).where(
            HypothesisTest.hypothesis_id.in_(list(claims))
        )
    ):
        if experiment_id in finished:
            linked[h].add(experiment_id)
    for h, claim in claims.items():
        for experiment_id, observation in observed:
            if observation.feasible and bears_on(claim, observation.parameters, problem.space):
                linked[h].add(experiment_id)
    return {h: len(ids) for h, ids in linked.items()}
