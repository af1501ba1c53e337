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
from gpytorch.kernels import Kernel, MaternKernel, ProductKernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import GammaPrior
from torch import Tensor

from planners.bo.encoding import FeatureLayout, SpaceEncoding
from planners.settings import LengthScalePrior


class TanimotoKernel(Kernel):
    """MinMax (Tanimoto for counts) similarity: sum(min(x, y)) / sum(max(x, y)); 1 for identical fingerprints.

    Positive definite for non-negative vectors (Ralaivola et al., 2005), no hyper-parameters of its own.
    """

    has_lengthscale = False

    def forward(self, x1: Tensor, x2: Tensor, diag: bool = False, **params: Any) -> Tensor:
        if diag:
            return torch.ones(x1.shape[:-1], dtype=x1.dtype, device=x1.device)
        if x1.requires_grad or x2.requires_grad:
            return _minmax(x1, x2)
        # An acquisition over a library asks for the same few molecules again and again (each candidate beside
        # the whole baseline and the pending points): the kernel is computed once per pair of distinct rows and
        # gathered. Fingerprint rows come from a table, so they carry no gradient to lose.
        rows1, back1 = _distinct_rows(x1.reshape(-1, x1.shape[-1]))
        rows2, back2 = _distinct_rows(x2.reshape(-1, x2.shape[-1]))
        asked = math.prod(torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])) * x1.shape[-2] * x2.shape[-2]
        if rows1.shape[0] * rows2.shape[0] > asked:
            # Pairs only within each batch (a library's candidates each with itself): the table of all distinct
            # pairs would be larger than what was asked.
            return _minmax(x1, x2)
        table = _minmax(rows1, rows2, counts=_whole_counts(rows1) and _whole_counts(rows2))
        return table[back1.reshape(x1.shape[:-1]).unsqueeze(-1), back2.reshape(x2.shape[:-1]).unsqueeze(-2)]


def _distinct_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct rows of `x` (`n x F`) and, for each row, the index of its copy among them. Rows are told apart
    by a random projection (sorting whole rows costs ten times more) and the grouping is then checked exactly:
    should two different rows ever project alike, the rows are sorted after all."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    direction = torch.rand(x.shape[-1], generator=generator, dtype=torch.float64).to(x.device, x.dtype)
    _, first, back = _unique_keys(x @ direction)
    rows = x[first]
    if not torch.equal(rows[back], x):
        rows, back = torch.unique(x, dim=0, return_inverse=True)
    return rows, back


def _unique_keys(keys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Distinct values of `keys`, the index of one occurrence of each, and each key's group."""
    values, back = torch.unique(keys, return_inverse=True)
    first = torch.empty(values.shape[0], dtype=torch.long, device=keys.device)
    first.scatter_(0, back, torch.arange(keys.shape[0], device=keys.device))
    return values, first, back


def _minmax(x1: Tensor, x2: Tensor, counts: bool = False) -> Tensor:
    """sum(min(a, b)) / sum(max(a, b)) for every pair of rows (`... x n x F`, `... x m x F` -> `... x n x m`)."""
    low = _sum_of_minima_of_counts(x1, x2) if counts else torch.minimum(x1.unsqueeze(-2), x2.unsqueeze(-3)).sum(-1)
    high = x1.sum(-1).unsqueeze(-1) + x2.sum(-1).unsqueeze(-2) - low  # sum(max) = sum(a) + sum(b) - sum(min)
    return torch.where(high > 0, low / high.clamp_min(1e-12), torch.ones_like(high))


def _whole_counts(x: Tensor) -> bool:
    return bool(torch.all(x >= 0)) and bool(torch.all(x == torch.round(x)))


def _sum_of_minima_of_counts(x1: Tensor, x2: Tensor) -> Tensor:
    """sum(min(a, b)) over the features of every pair of rows of non-negative whole counts (`n x F`, `m x F` ->
    `n x m`).

    The direct form materialises an `n x m x F` tensor: gigabytes for a library of thousands of molecules with
    2,000-bit fingerprints. Here min(a, b) is split as the sum over t = 1..L of [a >= t][b >= t] (L matrix products
    of indicator matrices) plus min(a - L, b - L) where both exceed L, taken directly, a block of rows at a time,
    over the few bits where rows on both sides count past L (most fingerprint counts are 0, 1 or 2)."""
    low = torch.zeros((x1.shape[0], x2.shape[0]), dtype=x1.dtype, device=x1.device)
    for level in range(1, _MATMUL_LEVELS + 1):
        low = low + (x1 >= level).to(x1.dtype) @ (x2 >= level).to(x2.dtype).mT
    bits = (x1 > _MATMUL_LEVELS).any(0) & (x2 > _MATMUL_LEVELS).any(0)
    if bool(bits.any()):
        rest1 = (x1[:, bits] - _MATMUL_LEVELS).clamp_min(0)
        rest2 = (x2[:, bits] - _MATMUL_LEVELS).clamp_min(0)
        step = max(1, _BLOCK_ELEMENTS // max(1, x2.shape[0] * int(bits.sum())))
        for start in range(0, x1.shape[0], step):
            block = torch.minimum(rest1[start : start + step].unsqueeze(1), rest2.unsqueeze(0)).sum(-1)
            low[start : start + step] += block
    return low


# Elements of one block of the direct part (128 MiB of float64).
_BLOCK_ELEMENTS = 1 << 24
# Count levels taken by matrix products; the rest is taken directly on the bits that reach past it.
_MATMUL_LEVELS = 3


def make_kernel(layout: FeatureLayout, length_scale_prior: LengthScalePrior = "dimension-scaled") -> Kernel:
    """The GP's kernel over the model features: Matern 5/2 with one length-scale per continuous feature, times a
    Tanimoto kernel per fingerprint block.

    `length_scale_prior`: "dimension-scaled" is BoTorch's default (LogNormal, median about 10 in the unit cube
    times sqrt of the dimension's growth: long length-scales, no output scale, Hvarfner et al. 2024); "gamma" is the
    Gamma(3, 6) prior with a Gamma(2, 0.15) output scale that EDBO and BayBE use (short length-scales: more
    exploration); "split" gives the space's numeric parameters the Gamma kernel and the levels' one-hot or
    descriptor columns BoTorch's, as a product (a space of one kind gets that kind's kernel alone).
    benchmarks/RESULTS.md compares them by leave-one-problem-out."""
    parts: list[Kernel] = []
    if length_scale_prior == "split":
        numeric_dims = set(layout.numeric_dims)
        numeric = [d for d in layout.continuous_dims if d in numeric_dims]
        levels = [d for d in layout.continuous_dims if d not in numeric_dims]
        if numeric:
            parts.append(_gamma_kernel(numeric))
        if levels:
            parts.append(_dimension_scaled_kernel(levels))
    elif layout.continuous_dims and length_scale_prior == "gamma":
        parts.append(_gamma_kernel(layout.continuous_dims))
    elif layout.continuous_dims:
        parts.append(_dimension_scaled_kernel(layout.continuous_dims))
    parts.extend(TanimotoKernel(active_dims=list(range(start, stop))) for start, stop in layout.tanimoto_blocks)
    return parts[0] if len(parts) == 1 else ProductKernel(*parts)


def _gamma_kernel(dims: list[int]) -> Kernel:
    return ScaleKernel(
        MaternKernel(nu=2.5, ard_num_dims=len(dims), active_dims=dims, lengthscale_prior=GammaPrior(3.0, 6.0)),
        outputscale_prior=GammaPrior(2.0, 0.15),
    )


def _dimension_scaled_kernel(dims: list[int]) -> Kernel:
    return get_covar_module_with_dim_scaled_prior(ard_num_dims=len(dims), active_dims=dims, use_rbf_kernel=False)


def make_gp(
    encoding: SpaceEncoding, X: Tensor, y: Tensor, length_scale_prior: LengthScalePrior = "dimension-scaled"
) -> SingleTaskGP:
    """An unfitted GP on search-representation inputs `X` (`n x d`) and one outcome `y` (`n x 1`)."""
    return SingleTaskGP(
        X,
        y,
        covar_module=make_kernel(encoding.layout, length_scale_prior),
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
    length_scale_prior: LengthScalePrior = "dimension-scaled",
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
    model = make_gp(encoding, fit_X, fit_y, length_scale_prior)
    warm_started = _warm_start(model, warm)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizationWarning)
        fit_gpytorch_mll(mll)
    if fit_X is not X:
        state = model.state_dict()
        model = make_gp(encoding, X, y, length_scale_prior)
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
    length_scale_prior: LengthScalePrior = "dimension-scaled",
) -> tuple[ModelListGP, dict[str, Any], dict[str, Any]]:
    """One GP per column of `Y` (rows with a non-finite value in a column are left out of that column's GP).

    Returns the model list, the raw state for the next warm start, and a readable record per model.
    """
    models, state, record = [], {}, {}
    for k, name in enumerate(names):
        keep = torch.isfinite(Y[:, k])
        model, fit_record = fit_gp(
            encoding,
            X[keep],
            Y[keep, k : k + 1],
            (warm or {}).get(name),
            max_fit_points,
            generator,
            length_scale_prior,
        )
        models.append(model)
        state[name] = hyperparameters(model)
        record[name] = fit_record
    return ModelListGP(*models), state, record


def is_constant(y: Tensor) -> bool:
    """True when an outcome column carries no information to fit (all finite values equal)."""
    finite = y[torch.isfinite(y)]
    return finite.numel() >= 2 and math.isclose(float(finite.max()), float(finite.min()), abs_tol=1e-12)
