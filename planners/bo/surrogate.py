"""Surrogate models: one Gaussian process per objective (and one for feasibility when some points were infeasible).

Kernel: a Matern-5/2 kernel with automatic relevance determination over the numeric, one-hot and descriptor
features, with BoTorch's dimension-scaled log-normal length-scale prior (Hvarfner et al., 2024), times one Tanimoto
kernel per fingerprint block. Outcomes are standardised; inputs are already in [0, 1] (see `encoding`).
Hyper-parameters are fitted by maximising the marginal likelihood (L-BFGS-B), starting from the previous
cycle's values when they fit the model (warm start), which saves most of the optimiser's iterations.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from botorch.exceptions.warnings import OptimizationWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from gpytorch.kernels import Kernel, ProductKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch import Tensor

from planners.bo.encoding import FeatureLayout, SpaceEncoding


class TanimotoKernel(Kernel):
    """MinMax (Tanimoto for counts) similarity: sum(min(x, y)) / sum(max(x, y)); 1 for identical fingerprints.

    Positive definite for non-negative vectors (Ralaivola et al., 2005), no hyper-parameters of its own.
    """

    has_lengthscale = False

    def forward(self, x1: Tensor, x2: Tensor, diag: bool = False, **params: Any) -> Tensor:
        if diag:
            return torch.ones(x1.shape[:-1], dtype=x1.dtype, device=x1.device)
        a, b = x1.unsqueeze(-2), x2.unsqueeze(-3)
        low = torch.minimum(a, b).sum(-1)
        high = torch.maximum(a, b).sum(-1)
        return torch.where(high > 0, low / high.clamp_min(1e-12), torch.ones_like(high))


def make_kernel(layout: FeatureLayout) -> Kernel:
    parts: list[Kernel] = []
    if layout.continuous_dims:
        parts.append(
            get_covar_module_with_dim_scaled_prior(
                ard_num_dims=len(layout.continuous_dims),
                active_dims=layout.continuous_dims,
                use_rbf_kernel=False,
            )
        )
    parts.extend(TanimotoKernel(active_dims=list(range(start, stop))) for start, stop in layout.tanimoto_blocks)
    return parts[0] if len(parts) == 1 else ProductKernel(*parts)


def make_gp(encoding: SpaceEncoding, X: Tensor, y: Tensor) -> SingleTaskGP:
    """An unfitted GP on search-representation inputs `X` (`n x d`) and one outcome `y` (`n x 1`)."""
    return SingleTaskGP(
        X,
        y,
        covar_module=make_kernel(encoding.layout),
        outcome_transform=Standardize(m=1),
        input_transform=encoding.feature_map,
    )


def hyperparameters(model: SingleTaskGP) -> dict[str, list[float]]:
    """The fitted hyper-parameters (raw, as the optimiser sees them), JSON-ready."""
    return {name: p.detach().cpu().reshape(-1).tolist() for name, p in model.named_parameters()}


def readable_hyperparameters(model: SingleTaskGP) -> dict[str, Any]:
    """Length-scales and noise in natural units, for people reading a decision record."""
    out: dict[str, Any] = {"noise": float(model.likelihood.noise.detach().cpu().mean())}
    for name, module in model.covar_module.named_modules():
        if getattr(module, "has_lengthscale", False) and module.lengthscale is not None:
            out[f"lengthscale{('.' + name) if name else ''}"] = module.lengthscale.detach().cpu().reshape(-1).tolist()
    return out


def _warm_start(model: SingleTaskGP, state: Mapping[str, list[float]] | None) -> bool:
    if not state:
        return False
    parameters = dict(model.named_parameters())
    if set(parameters) != set(state) or any(len(state[n]) != p.numel() for n, p in parameters.items()):
        return False  # another model shape (e.g. the space's encoding changed): fit from the prior's defaults
    with torch.no_grad():
        for name, p in parameters.items():
            p.copy_(torch.tensor(state[name], dtype=p.dtype, device=p.device).reshape(p.shape))
    return True


def fit_gp(
    encoding: SpaceEncoding,
    X: Tensor,
    y: Tensor,
    warm: Mapping[str, list[float]] | None = None,
    max_fit_points: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[SingleTaskGP, dict[str, Any]]:
    """Fit one GP by marginal likelihood; returns the model and a record of the fit.

    Past `max_fit_points` observations the hyper-parameters are fitted on a subset (the best quarter plus a random
    draw of the rest: the region that matters most for optimisation stays resolved) and the model is then
    conditioned on every observation with those hyper-parameters. Exact inference on all points is kept; only the
    O(n^3)-per-iteration fitting is bounded.
    """
    n = X.shape[0]
    fit_X, fit_y = X, y
    if max_fit_points is not None and n > max_fit_points:
        order = torch.argsort(y.squeeze(-1), descending=True)
        top = order[: max_fit_points // 4]
        rest = order[max_fit_points // 4 :]
        pick = rest[torch.randperm(rest.numel(), generator=generator, device="cpu").to(rest.device)]
        chosen = torch.cat([top, pick[: max_fit_points - top.numel()]])
        fit_X, fit_y = X[chosen], y[chosen]
    model = make_gp(encoding, fit_X, fit_y)
    warm_started = _warm_start(model, warm)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizationWarning)
        fit_gpytorch_mll(mll)
    if fit_X is not X:
        state = model.state_dict()
        model = make_gp(encoding, X, y)
        model.load_state_dict(state, strict=False)
    model.eval()
    record = {
        "observations": n,
        "fitted_on": int(fit_X.shape[0]),
        "warm_started": warm_started,
        "hyperparameters": readable_hyperparameters(model),
    }
    return model, record


def fit_models(
    encoding: SpaceEncoding,
    X: Tensor,
    Y: Tensor,
    names: list[str],
    warm: Mapping[str, Mapping[str, list[float]]] | None = None,
    max_fit_points: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[ModelListGP, dict[str, Any], dict[str, Any]]:
    """One GP per column of `Y` (rows with a non-finite value in a column are left out of that column's GP).

    Returns the model list, the raw state for the next warm start, and a readable record per model.
    """
    models, state, record = [], {}, {}
    for k, name in enumerate(names):
        keep = torch.isfinite(Y[:, k])
        model, fit_record = fit_gp(
            encoding, X[keep], Y[keep, k : k + 1], (warm or {}).get(name), max_fit_points, generator
        )
        models.append(model)
        state[name] = hyperparameters(model)
        record[name] = fit_record
    return ModelListGP(*models), state, record


def is_constant(y: Tensor) -> bool:
    """True when an outcome column carries no information to fit (all finite values equal)."""
    finite = y[torch.isfinite(y)]
    return finite.numel() >= 2 and math.isclose(float(finite.max()), float(finite.min()), abs_tol=1e-12)
