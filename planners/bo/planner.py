"""The Bayesian planner: Gaussian-process surrogates and batch acquisition on BoTorch, over any space of the spec.

One call of `propose`:
1. encode the space (`bo.encoding`) and the observations; objectives are signed so that larger is better;
2. while fewer than `min_observations` results exist, propose a space-filling design (maximin over the candidates
   of a finite space, scrambled Sobol otherwise): a GP fitted to one point says nothing;
3. fit one GP per objective, warm-started from the previous decision's hyper-parameters (`bo.surrogate`), plus a
   feasibility GP when some experiments were infeasible, so the planner learns where not to go;
4. build qLogNEI / qLogNEHVI with the pending experiments and the outcome constraints (`bo.acquisition`);
5. maximise it exactly over a finite space's candidates (past a few thousand, over those a screen of every
   candidate by the model ranks best), or by gradient / alternating search otherwise (`bo.optimize`);
6. return each point with the model's predicted mean and standard deviation per objective, and the model state.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gpytorch
import numpy as np
import torch
from linear_operator.utils.warnings import NumericalWarning
from scipy.optimize import linprog

from planners.base import Observation, Plan, PlanningError, PlanningProblem, Prediction, Proposal
from planners.baselines import MAX_ENUMERATED_POINTS, SobolPlanner
from planners.bo.acquisition import FEASIBLE_LEVEL, OutputConstraint, build_acquisition
from planners.bo.device import DTYPE, describe, resolve_device
from planners.bo.encoding import SpaceEncoding
from planners.bo.optimize import (
    OptimizerSettings,
    acquisition_values,
    optimize_finite,
    optimize_infinite,
    screen,
)
from planners.bo.surrogate import fit_models, is_constant
from planners.bo.transfer import fit_transfer_models
from planners.calibration import spread, standardized_errors
from planners.molecules import MoleculeError
from planners.settings import BayesianSettings
from planners.space import ContinuousParameter, Point, Space, constraints_satisfiable, point_key

# GPyTorch solves with conjugate gradients past 800 results by default: on a CPU that is slower than a Cholesky
# factor up to many thousands of results (1,000 results, batch of 4: 15.7 s with CG, 9.1 s exact, same proposals)
# and only approximate. Exact solves up to this size; 20,000 results take a 3 GB kernel matrix.
EXACT_SOLVES_UP_TO = 20_000
# From this many results the acquisition's search uses LOVE's fast predictive variances (see `_propose`).
FAST_VARIANCES_FROM = 500


class BayesianPlanner:
    name = "bayesian"

    def __init__(self, settings: BayesianSettings) -> None:
        self.settings = settings
        self.seed = settings.seed
        self.optimizer = OptimizerSettings(num_restarts=settings.num_restarts, raw_samples=settings.raw_samples)

    def config(self) -> dict[str, Any]:
        return self.settings.model_dump(mode="json")

    def propose(
        self,
        problem: PlanningProblem,
        observations: Sequence[Observation],
        pending: Sequence[Point],
        batch_size: int,
        seed: int,
        warm_start: Mapping[str, Any] | None = None,
    ) -> Plan:
        # Jitter added to a nearly singular kernel matrix, and an optimiser restart that ended early, are routine in
        # GP fitting and acquisition; they are not for the person watching a campaign. Timings and the fitted state
        # that would reveal a real problem are in the decision record.
        with warnings.catch_warnings(), gpytorch.settings.max_cholesky_size(EXACT_SOLVES_UP_TO):
            warnings.simplefilter("ignore", NumericalWarning)
            warnings.filterwarnings("ignore", message="Optimization failed", category=RuntimeWarning)
            return self._propose(problem, observations, pending, batch_size, seed, warm_start)

    def _propose(
        self,
        problem: PlanningProblem,
        observations: Sequence[Observation],
        pending: Sequence[Point],
        batch_size: int,
        seed: int,
        warm_start: Mapping[str, Any] | None = None,
    ) -> Plan:
        started = time.perf_counter()
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        device = resolve_device(self.settings.device)
        space = problem.space
        try:
            encoding = SpaceEncoding(space, self.settings.molecule_encoding, device=device, dtype=DTYPE)
        except MoleculeError as exc:
            raise PlanningError(f"the model cannot encode the space: {exc}") from None
        choices = _finite_choices(space, observations, pending)
        if choices is None:
            _check_polytope(space)

        names = [o.name for o in problem.objectives]
        valued = [o for o in observations if o.feasible and all(n in o.values for n in names)]
        state: dict[str, Any] = {"device": describe(device), "encoding": encoding.describe()}
        if len(valued) < self.settings.min_observations:
            proposals = self._space_filling(problem, encoding, choices, observations, pending, batch_size, seed)
            state.update(phase="space-filling", seconds={"total": time.perf_counter() - started})
            return Plan(proposals, model_state=state)

        signs = torch.tensor([1.0 if o.direction == "maximize" else -1.0 for o in problem.objectives], dtype=DTYPE)
        X = encoding.encode([o.parameters for o in valued])
        Y = torch.tensor([[o.values[n] for n in names] for o in valued], dtype=DTYPE, device=device)
        Y = Y * signs.to(device)
        notices = [
            f"objective '{name}' has the same value ({float(Y[0, k] * signs[k]):g}) in all {len(valued)} results: "
            "the model cannot tell good from bad yet, so this batch explores where it is most uncertain"
            for k, name in enumerate(names)
            if is_constant(Y[:, k])
        ]
        infeasible = [o for o in observations if not o.feasible]
        model_names = list(names)
        if infeasible:
            # Feasibility is one more output: 1 where an experiment gave a result, 0 where the science said no.
            both = valued + infeasible
            X_all = encoding.encode([o.parameters for o in both])
            labels = torch.tensor([1.0] * len(valued) + [0.0] * len(infeasible), dtype=DTYPE, device=device)
            Y_all = torch.full((len(both), len(names) + 1), float("nan"), dtype=DTYPE, device=device)
            Y_all[: len(valued), : len(names)] = Y
            Y_all[:, -1] = labels
            X_fit, Y_fit = X_all, Y_all
            model_names.append("__feasibility__")
        else:
            X_fit, Y_fit = X, Y

        fit_started = time.perf_counter()
        transfer: dict[str, Any] | None = None
        if problem.related:
            # Results of related campaigns: one multi-task GP per output (`bo.transfer`); without any, as before.
            model, hyper, fit_record, transfer = fit_transfer_models(
                encoding,
                X_fit,
                Y_fit,
                model_names,
                problem,
                self.settings.max_fit_points,
                generator,
                warm=(warm_start or {}).get("hyperparameters"),
                length_scale_prior=self.settings.length_scale_prior,
            )
        else:
            model, hyper, fit_record = fit_models(
                encoding,
                X_fit,
                Y_fit,
                model_names,
                warm=(warm_start or {}).get("hyperparameters"),
                max_fit_points=self.settings.max_fit_points,
                generator=generator,
                length_scale_prior=self.settings.length_scale_prior,
            )
        fit_seconds = time.perf_counter() - fit_started

        constraints = [
            OutputConstraint(names.index(c.outcome), float(signs[names.index(c.outcome)]), c.operator, c.value)
            for c in problem.outcome_constraints
        ]
        if infeasible:
            constraints.append(OutputConstraint(len(names), 1.0, ">=", FEASIBLE_LEVEL))
        X_pending = encoding.encode(pending) if pending else None
        references = [o.reference for o in problem.objectives]
        reference_point = (
            [float(r * s) for r, s in zip(references, signs.tolist(), strict=True)]
            if all(r is not None for r in references)
            else None
        )
        acquisition_started = time.perf_counter()
        acqf, acquisition_name = build_acquisition(
            model,
            X_baseline=X,
            n_objectives=len(names),
            constraints=constraints,
            X_pending=X_pending,
            mc_samples=self.settings.mc_samples,
            seed=seed,
            reference_point=reference_point,
            Y_baseline=Y,
        )
        screened: int | None = None
        # Past a few hundred results, each of the search's thousands of posterior calls solved the kernel matrix
        # against the trial batch afresh. With fast predictive variances (LOVE) the inverse kernel matrix's root is
        # computed once and each call is a matrix product (1,000 results, batch of 4: 9.1 s -> 2.4 s, the same
        # proposals). A Lanczos root of rank 100 instead of the Cholesky root saved nothing more at 2,000.
        # Only the search uses it: the predictions stated for the chosen batch below are computed exactly.
        with gpytorch.settings.fast_pred_var(len(valued) >= FAST_VARIANCES_FROM):
            if choices is not None:
                X_choices = encoding.encode(choices)
                if X_choices.shape[0] > self.optimizer.screen_above:
                    shortlist = screen(model, X_choices, self.optimizer.screen_keep, self.optimizer.screen_beta)
                    X_choices, screened = X_choices[shortlist], int(shortlist.numel())
                chosen = optimize_finite(acqf, batch_size, X_choices, self.optimizer)
            else:
                chosen = optimize_infinite(acqf, batch_size, encoding, self.optimizer)
        acquisition_seconds = time.perf_counter() - acquisition_started

        points = encoding.decode(chosen)
        record = {name: standardized_errors(observations, name) for name in names}
        spreads = {name: spread(errors) for name, errors in record.items()}
        predictions = _predict(model, chosen, names, signs, spreads)
        scores = acquisition_values(acqf, chosen)
        proposals = [
            Proposal(
                parameters=point,
                predicted=predicted,
                rationale=f"{acquisition_name} {score:.3g}; "
                + ", ".join(f"{n} {p.mean:.4g} ± {p.std:.2g}" for n, p in predicted.items()),
            )
            for point, predicted, score in zip(points, predictions, scores, strict=True)
        ]
        state.update(
            phase="model",
            acquisition=acquisition_name,
            observations=len(valued),
            infeasible=len(infeasible),
            pending=len(pending),
            candidates=None if choices is None else len(choices),
            screened_to=screened,
            hyperparameters=hyper,
            fit=fit_record,
            calibration={name: {"spread": spreads[name], "checked_predictions": len(record[name])} for name in names},
            seconds={
                "fit": fit_seconds,
                "acquisition": acquisition_seconds,
                "total": time.perf_counter() - started,
            },
        )
        if transfer is not None:
            state["transfer"] = transfer
        return Plan(proposals, model_state=state, warnings=notices)

    def _space_filling(
        self,
        problem: PlanningProblem,
        encoding: SpaceEncoding,
        choices: list[Point] | None,
        observations: Sequence[Observation],
        pending: Sequence[Point],
        batch_size: int,
        seed: int,
    ) -> list[Proposal]:
        """A design that covers the space before any model exists."""
        if choices is None:
            return SobolPlanner(seed=self.seed).propose(problem, observations, pending, batch_size, seed).proposals
        rng = np.random.default_rng(seed)
        if len(choices) > self.optimizer.screen_above:
            # Over thousands of candidates in hundreds of feature dimensions a maximin design picks outliers, not a
            # cover: over a library of 4,892 fingerprinted molecules it chose the largest and strangest, and 15 of
            # its first 16 could not be made (the library's rate is 12 %). A uniform draw represents the library.
            rationale = "a uniform draw from the candidates (too many for a maximin design) before the model has data"
            picked = [int(i) for i in rng.choice(len(choices), size=min(batch_size, len(choices)), replace=False)]
            return [Proposal(parameters=choices[i], rationale=rationale) for i in picked]
        rationale = "space-filling design (maximin over the candidates' features) before the model has data"
        taken = [o.parameters for o in observations] + list(pending)
        picked = _maximin(encoding, choices, taken, batch_size, rng)
        return [Proposal(parameters=choices[i], rationale=rationale) for i in picked]


def _finite_choices(space: Space, observations: Sequence[Observation], pending: Sequence[Point]) -> list[Point] | None:
    """The points a finite space can still offer (feasible, neither tried nor pending), or None for other spaces."""
    if not (space.is_finite and space.grid_size <= MAX_ENUMERATED_POINTS):
        return None
    grid = list(space.grid())
    if not grid:
        raise PlanningError(f"no point of the finite space satisfies the constraints ({_describe(space)})")
    seen = {point_key(o.parameters) for o in observations} | {point_key(p) for p in pending}
    left = [p for p in grid if point_key(p) not in seen]
    if not left:
        raise PlanningError(
            f"every point of the finite space ({len(grid)} feasible points) has already been tried or is pending"
        )
    return left


def _check_polytope(space: Space) -> None:
    """Refuse linear constraints (and mixtures) that no point of the box satisfies, naming them (a linear programme
    decides)."""
    if space.mixtures:
        if not constraints_satisfiable(space.parameters, space.constraints, space.mixtures):
            raise PlanningError(f"no point of the space satisfies the constraints ({_describe(space)})")
        return
    if not space.constraints:
        return
    names = space.names
    bounds = []
    for p in space.parameters:
        if isinstance(p, ContinuousParameter) or hasattr(p, "bounds"):
            bounds.append(tuple(float(b) for b in p.bounds))
        elif p.is_numeric:
            bounds.append((min(p.values), max(p.values)))
        else:
            bounds.append((0.0, 0.0))
    rows, rhs = [], []
    for c in space.constraints:
        sign = 1.0 if c.operator == "<=" else -1.0
        rows.append([sign * c.coefficients.get(n, 0.0) for n in names])
        rhs.append(sign * c.rhs)
    result = linprog(np.zeros(len(names)), A_ub=np.array(rows), b_ub=np.array(rhs), bounds=bounds, method="highs")
    if result.status == 2:
        raise PlanningError(f"no point of the space satisfies the constraints ({_describe(space)})")


def _maximin(
    encoding: SpaceEncoding, choices: list[Point], taken: Sequence[Point], k: int, rng: np.random.Generator
) -> list[int]:
    """Indices of `k` choices, each as far (in model features) as possible from those taken or picked before."""
    features = encoding.feature_map(encoding.encode(choices)).cpu().numpy()
    scale = np.maximum(features.max(axis=0) - features.min(axis=0), 1e-12)
    features = features / scale
    if taken:
        ref = encoding.feature_map(encoding.encode(taken)).cpu().numpy() / scale
        # One taken point at a time: all at once is a choices x taken x features array, gigabytes for a library
        # of thousands of fingerprinted molecules.
        nearest = np.full(len(choices), np.inf)
        for row in ref:
            nearest = np.minimum(nearest, ((features - row) ** 2).sum(-1))
        first: list[int] = []
    else:
        first = [int(rng.integers(len(choices)))]
        nearest = ((features - features[first[0]]) ** 2).sum(-1)
    picked = first
    while len(picked) < min(k, len(choices)):
        nearest[picked] = -1.0
        best = int(np.argmax(nearest))
        picked.append(best)
        nearest = np.minimum(nearest, ((features - features[best]) ** 2).sum(-1))
    return picked


def _predict(
    model: Any, X: torch.Tensor, names: list[str], signs: torch.Tensor, spreads: Mapping[str, float]
) -> list[dict[str, Prediction]]:
    """The predicted measurement of each objective at each row of `X`, in the objectives' own units: the posterior
    mean, and the standard deviation of a measurement there (the latent function's posterior and the fitted
    measurement noise) times the objective's spread factor (`planners.calibration`). The latent sd alone is the
    model's doubt about the function, not about what the instrument will read; and the model's sd at the points
    it proposes understates its errors there two- to threefold, which the campaign's track record corrects."""
    with torch.no_grad():
        posterior = model.posterior(X, observation_noise=True)
        mean = posterior.mean.detach().cpu()[:, : len(names)] * signs
        std = posterior.variance.clamp_min(0).sqrt().detach().cpu()[:, : len(names)]
    return [
        {
            name: Prediction(mean=float(mean[i, k]), std=float(std[i, k]) * spreads[name], spread=spreads[name])
            for k, name in enumerate(names)
        }
        for i in range(X.shape[0])
    ]


def _describe(space: Space) -> str:
    return "; ".join([*(m.describe() for m in space.mixtures), *(c.describe() for c in space.constraints)])
