"""A fitted surrogate seen from outside BoTorch: predictions and joint posterior samples in the objectives' units.

The hypothesis ledger needs more than the acquisition does: the probability that a claim about the *whole*
response is true. That takes joint samples of the latent function at many points at once (a claim such as "the
best yield lies where temperature ≥ 105" is a statement about an argmax over the space), so the samples must be
drawn jointly, not point by point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from botorch.models import SingleTaskGP

from planners.base import Observation, PlanningProblem
from planners.bo.device import DTYPE, resolve_device
from planners.bo.encoding import SpaceEncoding
from planners.bo.surrogate import fit_models
from planners.settings import BayesianSettings
from planners.space import Point


@dataclass
class Surrogate:
    """One fitted GP per objective; values in and out are in the objective's own units and direction."""

    encoding: SpaceEncoding
    models: dict[str, SingleTaskGP]
    signs: dict[str, float]  # +1 for maximised objectives, -1 for minimised ones (the GPs model sign * value)
    hyperparameters: dict[str, Any]
    observations: int
    inputs: torch.Tensor | None = None  # `n x d` search representation of the results the GPs were fitted on

    def calibration(self, objective: str) -> float:
        """How much wider than the GP's own standard deviations its leave-one-out errors are (1 when calibrated).

        For each result, the GP conditioned on all the others predicts it with a mean and a standard deviation, in
        closed form from the inverse kernel matrix (Rasmussen & Williams, eq. 5.12): error_i = [K⁻¹y]_i / [K⁻¹]_ii,
        variance_i = 1 / [K⁻¹]_ii. The root mean square of error / sd is the factor by which the posterior
        understates its uncertainty; with few results, fitted length-scales often make it 1.5 or more, and
        credences drawn from the raw posterior would be overconfident. Never below 1: a GP that looks
        underconfident is left as it is.
        """
        model = self.models[objective]
        if self.inputs is None or self.inputs.shape[0] < 4:
            return 1.0
        with torch.no_grad():
            features = self.encoding.feature_map.transform(self.inputs)
            y = model.train_targets.reshape(-1)  # standardised outcomes, as the GP sees them
            if features.shape[0] != y.shape[0]:
                return 1.0  # fitted on another set of rows (e.g. infeasible ones left out): no comparison
            noise = model.likelihood.noise.reshape(-1)[0]
            K = model.covar_module(features).to_dense() + noise * torch.eye(y.shape[0], dtype=y.dtype, device=y.device)
            residual = y - model.mean_module(features).reshape(-1)
            try:
                L = torch.linalg.cholesky(K + 1e-8 * torch.eye(K.shape[0], dtype=K.dtype, device=K.device))
            except RuntimeError:
                return 1.0
            K_inv = torch.cholesky_inverse(L)
            diagonal = K_inv.diagonal().clamp_min(1e-12)
            z = (K_inv @ residual) / diagonal * diagonal.sqrt()
        return float(max(1.0, min(3.0, z.pow(2).mean().sqrt().item())))

    def predict(self, objective: str, points: Sequence[Point]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent function at `points` (`n` each)."""
        model, sign = self.models[objective], self.signs[objective]
        with torch.no_grad():
            posterior = model.posterior(self.encoding.encode(points))
            mean = posterior.mean.squeeze(-1).cpu().numpy() * sign
            std = posterior.variance.clamp_min(0).sqrt().squeeze(-1).cpu().numpy()
        return mean, std

    def sample(
        self, objective: str, points: Sequence[Point], n_samples: int, seed: int, widen: float = 1.0
    ) -> np.ndarray:
        """`n_samples x n` joint samples of the latent function (no observation noise) at `points`.

        `widen` > 1 scales every sample's deviation from the posterior mean by that factor (a tempered posterior with
        the same correlations), e.g. by `calibration(objective)` so probabilities are not overconfident.
        """
        model, sign = self.models[objective], self.signs[objective]
        X = self.encoding.encode(points)
        torch.manual_seed(seed)
        with torch.no_grad():
            posterior = model.posterior(X)
            samples = posterior.rsample(torch.Size([n_samples]))
            if widen != 1.0:
                samples = posterior.mean + widen * (samples - posterior.mean)
        return samples.squeeze(-1).cpu().numpy() * sign

    def noise_variance(self, objective: str) -> float:
        """Variance of one measurement around the latent function, in the objective's units squared."""
        model = self.models[objective]
        X = model.train_inputs[0][:1]
        with torch.no_grad():
            latent = model.posterior(X).variance
            observed = model.posterior(X, observation_noise=True).variance
        return float((observed - latent).clamp_min(0).squeeze())


def fit_surrogate(
    problem: PlanningProblem,
    observations: Sequence[Observation],
    settings: BayesianSettings,
    warm_start: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Surrogate | None:
    """Fit one GP per objective to the feasible results, as the Bayesian planner does; None with too few results."""
    names = [o.name for o in problem.objectives]
    valued = [o for o in observations if o.feasible and all(n in o.values for n in names)]
    if len(valued) < 2:
        return None
    device = resolve_device(settings.device)
    encoding = SpaceEncoding(problem.space, settings.molecule_encoding, device=device, dtype=DTYPE)
    signs = {o.name: 1.0 if o.direction == "maximize" else -1.0 for o in problem.objectives}
    X = encoding.encode([o.parameters for o in valued])
    Y = torch.tensor([[o.values[n] * signs[n] for n in names] for o in valued], dtype=DTYPE, device=device)
    model, hyper, _ = fit_models(
        encoding,
        X,
        Y,
        names,
        warm=(warm_start or {}).get("hyperparameters"),
        max_fit_points=settings.max_fit_points,
        generator=torch.Generator().manual_seed(seed),
        length_scale_prior=settings.length_scale_prior,
    )
    return Surrogate(
        encoding=encoding,
        # fit_models builds one SingleTaskGP per objective; the ModelListGP holds them in an untyped ModuleList.
        models=dict(zip(names, cast(list[SingleTaskGP], list(model.models)), strict=True)),
        signs=signs,
        hyperparameters={"hyperparameters": hyper},
        observations=len(valued),
        inputs=X,
    )
