"""Maximising the acquisition function over the space, by the method that suits its shape.

- finite spaces (a lookup table's rows, a library of molecules, a grid of levels): every candidate is scored and the
  batch is built greedily, one point at a time with the chosen ones pending (`optimize_acqf_discrete`): exact over
  the candidates, no rounding of a continuous optimum. Past `screen_above` candidates (a virtual screen of a
  library of thousands) every candidate is first scored by the model alone (`screen`), and the batch is chosen
  exactly among the best `screen_keep`: a noisy hypervolume acquisition evaluates the joint posterior of the
  baseline and each candidate, which for 5,000 molecules costs minutes where the marginal posterior costs a second;
- continuous spaces: multi-start L-BFGS-B from the best of many quasi-random raw samples (`optimize_acqf`),
  sequential-greedy over the batch, linear constraints and mixtures' equalities honoured;
- mixed spaces (continuous with integer, discrete, categorical or molecule parameters, too many combinations to
  enumerate): BoTorch's alternating optimiser (`optimize_acqf_mixed_alternating`), which alternates gradient steps
  on the continuous part with local search over neighbouring discrete values, so the cost grows with the number of
  parameters, not with the number of combinations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.models.model import Model
from botorch.optim import optimize_acqf, optimize_acqf_discrete
from botorch.optim.optimize_mixed import optimize_acqf_mixed_alternating
from botorch.utils.multi_objective.pareto import is_non_dominated
from torch import Tensor

from planners.bo.encoding import SpaceEncoding


@dataclass(frozen=True)
class OptimizerSettings:
    num_restarts: int = 8
    raw_samples: int = 256
    max_iterations: int = 200
    discrete_chunk: int = 2048  # candidates scored per forward pass on a finite space
    # Alternating search: BoTorch's defaults (64 rounds, 100 relaxation iterations) cost tens of seconds per batch on
    # two cores; past about 16 rounds the acquisition value improved by less than 1e-3 in our measurements.
    max_alternating_rounds: int = 16
    max_relaxation_iterations: int = 50
    # Finite spaces up to this size are scored exactly by the acquisition (every table of the examples is smaller);
    # larger ones are screened by the model first and the acquisition chooses among the best `screen_keep`.
    screen_above: int = 2048
    screen_keep: int = 256
    screen_beta: float = 2.0  # upper confidence bound of the screen: mean + beta * standard deviation


def screen(model: Model, choices: Tensor, keep: int, beta: float = 2.0, chunk: int = 2048) -> Tensor:
    """Indices of the `keep` most promising rows of `choices` (`N x d`) under `model`, from each row's marginal
    posterior alone: the rows whose upper confidence bounds (`mean + beta * std` of every output, larger is better;
    a feasibility model's output included) are non-dominated, then the next layer, and so on, the last layer
    taken by the sum of its standardised bounds. With one output this is the top `keep` by its bound."""
    if choices.shape[0] <= keep:
        return torch.arange(choices.shape[0], device=choices.device)
    bounds = []
    with torch.no_grad():
        for start in range(0, choices.shape[0], chunk):
            posterior: Any = model.posterior(choices[start : start + chunk].unsqueeze(-2))  # one point at a time
            mean = posterior.mean.squeeze(-2)
            std = posterior.variance.clamp_min(0).sqrt().squeeze(-2)
            bounds.append(mean + beta * std)
    ucb = torch.cat(bounds)
    ucb = (ucb - ucb.mean(0)) / ucb.std(0).clamp_min(1e-12)
    left = torch.arange(ucb.shape[0], device=ucb.device)
    kept: list[Tensor] = []
    taken = 0
    while taken < keep:
        front = is_non_dominated(ucb[left], deduplicate=False)
        layer = left[front]
        if taken + layer.numel() > keep:
            order = torch.argsort(ucb[layer].sum(-1), descending=True, stable=True)
            layer = layer[order[: keep - taken]]
        kept.append(layer)
        taken += layer.numel()
        left = left[~front]
    return torch.sort(torch.cat(kept)).values


def optimize_finite(acqf: AcquisitionFunction, q: int, choices: Tensor, settings: OptimizerSettings) -> Tensor:
    """Best `q` rows of `choices` (`N x d`, already free of points tried or pending), chosen greedily."""
    q = min(q, choices.shape[0])
    X, _ = optimize_acqf_discrete(acqf, q=q, choices=choices, max_batch_size=settings.discrete_chunk, unique=True)
    return X


def optimize_infinite(
    acqf: AcquisitionFunction, q: int, encoding: SpaceEncoding, settings: OptimizerSettings
) -> Tensor:
    """Best batch of `q` points of a space with at least one continuous parameter."""
    constraints = encoding.inequality_constraints() or None
    equalities = encoding.equality_constraints() or None
    options: dict[str, bool | float | int | str] = {
        "maxiter": settings.max_iterations,
        "batch_limit": settings.num_restarts,
    }
    if not encoding.discrete_dims and not encoding.cat_dims:
        X, _ = optimize_acqf(
            acqf,
            bounds=encoding.bounds,
            q=q,
            num_restarts=settings.num_restarts,
            raw_samples=settings.raw_samples,
            inequality_constraints=constraints,
            equality_constraints=equalities,
            sequential=True,
            options=options,
            # A restart whose line search ends "abnormally" (flat log-acquisition far from the data) still leaves
            # the other restarts' optima; starting the whole batch over doubles the cost for nothing we measured.
            retry_on_optimization_warning=False,
        )
        return X
    X, _ = optimize_acqf_mixed_alternating(
        acqf,
        bounds=encoding.bounds,
        discrete_dims=encoding.discrete_dims or None,
        cat_dims=encoding.cat_dims or None,
        q=q,
        num_restarts=settings.num_restarts,
        raw_samples=settings.raw_samples,
        inequality_constraints=constraints,
        equality_constraints=equalities,
        sequential=True,
        options={
            "maxiter_alternating": settings.max_alternating_rounds,
            "maxiter_init": settings.max_relaxation_iterations,
        },
    )
    return X


def acquisition_values(acqf: AcquisitionFunction, X: Tensor) -> list[float]:
    """The acquisition value of each point of a batch on its own (for the record: how promising each looked)."""
    with torch.no_grad():
        return acqf(X.unsqueeze(-2)).detach().cpu().tolist()
