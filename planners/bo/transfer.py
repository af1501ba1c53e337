"""Transfer learning: surrogates that also learn from the results of related campaigns (related tasks).

When a campaign names earlier campaigns as related (`PlanningProblem.related`), each model output (an objective,
or feasibility) gets one multi-task GP instead of a single-task one: BoTorch's `MultiTaskGP`, the intrinsic
coregionalisation model (Bonilla et al., 2007; Swersky et al., 2013), whose covariance is the campaign's own data
kernel (`surrogate.make_kernel`, unchanged) times a `PositiveIndexKernel` over a task column: task 0 is this
campaign (the target), task i is the i-th related campaign. The task kernel's correlations are fitted with the
other hyper-parameters, so a related campaign that behaves alike lends its results and one that does not is
discounted; they are constrained to be non-negative (BoTorch's default), so a task can at worst be ignored, not
mirrored. Each task has its own mean, noise and outcome scale (outcomes are standardised per task), so a related
campaign whose values sit on another level (a less reactive substrate) still tells where the good region lies.

Inputs: the task column is column 0 of the model's inputs, before the search representation
(`... x (1 + d)`); `TaskFeatureMap` passes it through untouched and applies the space's feature map to the rest.
Column 0 because BoTorch reads the task column by the same index in the raw inputs (the likelihood's noise per
task, during fitting) and in the transformed ones (the kernel): only the first column keeps its index when the
feature map widens the others. The data kernel's columns are shifted by one to skip it.

Predictions and the acquisition are for the target task only (`output_tasks=[0]`): the models take the
`n x d` search representation as before (BoTorch adds the task column), so the acquisition, the finite-space
enumeration and the optimisers are unchanged.

A related result whose point this campaign's space does not hold (a level it does not offer, a value out of
bounds) is left out, and so is a related campaign with fewer than two results for an output (a task's
standardisation needs two); both are counted in the record. Past `max_fit_points` results in all, a random draw of
the related results (the generator's) is left out so that the model stays that size, this campaign's own results
always kept.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from botorch.exceptions.warnings import OptimizationWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, MultiTaskGP, SingleTaskGP
from botorch.models.transforms.input import InputTransform
from botorch.models.transforms.outcome import StratifiedStandardize
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch import Tensor

from planners.base import PlanningProblem
from planners.bo.encoding import FeatureLayout, FeatureMap, SpaceEncoding
from planners.bo.surrogate import (
    LengthScalePrior,
    fit_gp,
    hyperparameters,
    make_kernel,
    readable_hyperparameters,
)

FEASIBILITY = "__feasibility__"  # the planner's name for the feasibility output (`bo.planner`)
TARGET_TASK = 0
MAX_FIT_ITERATIONS = 50  # L-BFGS-B iterations of a multi-task fit (see `fit_multitask_gp`)


class TaskFeatureMap(InputTransform, torch.nn.Module):
    """[task, search representation] (`... x (1 + d)`) -> [task, model features] (`... x (1 + F)`)."""

    def __init__(self, feature_map: FeatureMap) -> None:
        super().__init__()
        self.transform_on_train = True
        self.transform_on_eval = True
        self.transform_on_fantasize = True
        self.feature_map = feature_map

    def transform(self, X: Tensor) -> Tensor:
        return torch.cat([X[..., :1], self.feature_map.transform(X[..., 1:])], dim=-1)


class TaskStandardize(StratifiedStandardize):
    """Outcomes standardised per task (BoTorch's `StratifiedStandardize` on the task column), reading inputs without
    a task column as the target's.

    `MultiTaskGP.posterior` un-standardises with the inputs it was given; the planner gives the `... x d` search
    representation without a task column (the model's output task is the target), where the stratified transform
    would read the first parameter as the task. Inputs `d` wide are those; any other width has the task first."""

    def __init__(self, n_tasks: int, search_width: int, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(stratification_idx=0, all_task_values=torch.arange(n_tasks, device=device), dtype=dtype)
        self._search_width = search_width

    def _get_per_input_means_stdvs(self, X: Tensor, include_stdvs_sq: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        if X.shape[-1] == self._search_width:
            X = torch.cat([torch.full_like(X[..., :1], TARGET_TASK), X], dim=-1)
        return super()._get_per_input_means_stdvs(X, include_stdvs_sq)


@dataclass
class _Task:
    """One related campaign's usable results: search representation, model outputs (NaN where not measured)."""

    name: str
    X: Tensor  # m x d
    Y: Tensor  # m x k, in the planner's signed units; the feasibility column 1 / 0
    outside_space: int = 0
    record: dict[str, Any] = field(default_factory=dict)


def related_tasks(encoding: SpaceEncoding, problem: PlanningProblem, model_names: Sequence[str]) -> list[_Task]:
    """The related campaigns' results as rows of the planner's model outputs `model_names` (the objectives, signed
    so that larger is better, then the feasibility output when the planner fits one)."""
    signs = {o.name: 1.0 if o.direction == "maximize" else -1.0 for o in problem.objectives}
    with_feasibility = FEASIBILITY in model_names
    tasks = []
    for related in problem.related:
        rows, X_points, outside = [], [], 0
        for o in related.observations:
            if not problem.space.contains(o.parameters):
                outside += 1
                continue
            if not o.feasible and not with_feasibility:
                continue  # an infeasible result informs only a feasibility model
            row = []
            for name in model_names:
                if name == FEASIBILITY:
                    row.append(1.0 if o.feasible else 0.0)
                else:
                    value = o.values.get(name) if o.feasible else None
                    row.append(float(value) * signs[name] if value is not None else math.nan)
            rows.append(row)
            X_points.append(o.parameters)
        X = encoding.encode(X_points) if X_points else torch.empty(0, encoding.dim, dtype=encoding.dtype)
        Y = torch.tensor(rows, dtype=encoding.dtype).reshape(len(rows), len(model_names))
        tasks.append(_Task(related.name, X.to(encoding.device), Y.to(encoding.device), outside))
    return tasks


def _shifted(layout: FeatureLayout) -> FeatureLayout:
    """The layout of the model features one column to the right (the task column comes first)."""
    return FeatureLayout(
        continuous_dims=[d + 1 for d in layout.continuous_dims],
        numeric_dims=[d + 1 for d in layout.numeric_dims],
        tanimoto_blocks=[(start + 1, stop + 1) for start, stop in layout.tanimoto_blocks],
        width=layout.width + 1,
    )


def fit_multitask_gp(
    encoding: SpaceEncoding,
    X: Tensor,
    y: Tensor,
    related: Sequence[tuple[Tensor, Tensor]],
    warm: Mapping[str, list[float]] | None = None,
    length_scale_prior: LengthScalePrior = "dimension-scaled",
) -> tuple[MultiTaskGP, bool]:
    """A fitted multi-task GP whose output is the target task: `X` (`n x d`), `y` (`n x 1`) are this campaign's
    results, `related` the (X, y) of each related task in order (task 1, 2, ...). `warm`: the previous decision's
    hyper-parameters, the starting point when they fit this model's shape (the same related campaigns); returns
    whether they did."""
    parts_X = [torch.cat([torch.full_like(X[:, :1], TARGET_TASK), X], dim=-1)]
    parts_y = [y]
    for task, (X_r, y_r) in enumerate(related, start=1):
        parts_X.append(torch.cat([torch.full_like(X_r[:, :1], task), X_r], dim=-1))
        parts_y.append(y_r)
    train_X, train_y = torch.cat(parts_X), torch.cat(parts_y)
    model = MultiTaskGP(
        train_X,
        train_y,
        task_feature=0,
        covar_module=make_kernel(_shifted(encoding.layout), length_scale_prior),
        output_tasks=[TARGET_TASK],
        outcome_transform=TaskStandardize(len(related) + 1, X.shape[-1], X.dtype, X.device),
        input_transform=TaskFeatureMap(encoding.feature_map),
    )
    warm_started = _warm_start(model, warm)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with warnings.catch_warnings():
        # The task kernel's interpolation builds a sparse tensor and torch says once per process that it does not
        # check sparse invariants: nothing a person watching a campaign can act on.
        warnings.filterwarnings("ignore", message="Sparse invariant checks", category=UserWarning)
        warnings.simplefilter("ignore", OptimizationWarning)
        # The marginal likelihood is flat near its optimum along the task kernel's parameters: L-BFGS-B crawls.
        # Measured on 10 target and 120 related results of the Buchwald-Hartwig table (two busy cores): unbounded,
        # 43 s to a log-likelihood of -1.4286 per result; 200 iterations, 24 s and -1.4421; 50 iterations, 6 s and
        # -1.4443, with task correlations within 0.07 of the unbounded fit's. Each decision starts from the last.
        fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": MAX_FIT_ITERATIONS}})
    model.eval()
    return model, warm_started


def _warm_start(model: MultiTaskGP, state: Mapping[str, list[float]] | None) -> bool:
    """Load `state` (raw hyper-parameters by name) into `model` when every name and size matches."""
    parameters = dict(model.named_parameters())
    if not state or set(parameters) != set(state) or any(len(state[n]) != p.numel() for n, p in parameters.items()):
        return False
    with torch.no_grad():
        for name, p in parameters.items():
            p.copy_(torch.tensor(state[name], dtype=p.dtype, device=p.device).reshape(p.shape))
    return True


def task_correlations(model: MultiTaskGP) -> list[float]:
    """The fitted correlation of each related task with the target (task 1, 2, ...)."""
    task_kernel = model.covar_module.kernels[-1]
    with torch.no_grad():
        K = task_kernel.covar_matrix.to_dense() if hasattr(task_kernel.covar_matrix, "to_dense") else None
        if K is None:
            K = torch.as_tensor(task_kernel.covar_matrix)
        scale = K.diagonal().clamp_min(1e-12).sqrt()
        corr = K / (scale.unsqueeze(-1) * scale.unsqueeze(-2))
    return [float(c) for c in corr[TARGET_TASK, 1:].cpu()]


def fit_transfer_models(
    encoding: SpaceEncoding,
    X: Tensor,
    Y: Tensor,
    model_names: list[str],
    problem: PlanningProblem,
    max_fit_points: int | None = None,
    generator: torch.Generator | None = None,
    warm: Mapping[str, Mapping[str, list[float]]] | None = None,
    length_scale_prior: LengthScalePrior = "dimension-scaled",
) -> tuple[ModelListGP, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One GP per column of `Y` (`n x k`, this campaign's results; NaN rows are left out of that column), each a
    multi-task GP over this campaign and its related campaigns where those have results for that output, a
    single-task GP (as `surrogate.fit_models` fits) where none has.

    Returns the model list, the raw hyper-parameters, a readable record per model (as `surrogate.fit_models`), and
    the transfer record: which related campaigns, how many of their results were used and left out, and each
    one's fitted correlation with this campaign per output."""
    tasks = related_tasks(encoding, problem, model_names)
    models: list[MultiTaskGP | SingleTaskGP] = []
    state: dict[str, Any] = {}
    record: dict[str, Any] = {}
    used = {t.name: {"results": 0, "outside_space": t.outside_space, "over_limit": 0} for t in tasks}
    correlations: dict[str, dict[str, float]] = {}
    for k, name in enumerate(model_names):
        keep = torch.isfinite(Y[:, k])
        X_k, y_k = X[keep], Y[keep, k : k + 1]
        pairs, names = [], []
        for task in tasks:
            rows = torch.isfinite(task.Y[:, k])
            if int(rows.sum()) >= 2:
                pairs.append((task.X[rows], task.Y[rows, k : k + 1]))
                names.append(task.name)
        pairs, over = _within_limit(X_k.shape[0], pairs, max_fit_points, generator)
        if not pairs:
            model, fit_record = fit_gp(
                encoding, X_k, y_k, (warm or {}).get(name), max_fit_points, generator, length_scale_prior
            )
            models.append(model)
            state[name] = hyperparameters(model)
            record[name] = fit_record
            continue
        model, warm_started = fit_multitask_gp(encoding, X_k, y_k, pairs, (warm or {}).get(name), length_scale_prior)
        models.append(model)
        state[name] = hyperparameters(model)
        related_rows = sum(int(p[0].shape[0]) for p in pairs)
        record[name] = {
            "observations": int(X_k.shape[0]),
            "related_observations": related_rows,
            "fitted_on": int(X_k.shape[0]) + related_rows,
            "warm_started": warm_started,
            "hyperparameters": readable_hyperparameters(model),
        }
        correlations[name] = dict(zip(names, task_correlations(model), strict=True))
        for task_name, (X_r, _), dropped in zip(names, pairs, over, strict=True):
            used[task_name]["results"] = max(used[task_name]["results"], int(X_r.shape[0]))
            used[task_name]["over_limit"] = max(used[task_name]["over_limit"], dropped)
    transfer = {
        "model": "multi-task GP (ICM: data kernel x positive task index kernel), target task 0",
        "campaigns": [{"name": n, **counts} for n, counts in used.items()],
        "correlation": correlations,
    }
    return ModelListGP(*models), state, record, transfer


def _within_limit(
    n_target: int,
    pairs: list[tuple[Tensor, Tensor]],
    max_fit_points: int | None,
    generator: torch.Generator | None,
) -> tuple[list[tuple[Tensor, Tensor]], list[int]]:
    """The related tasks' rows, a random draw of them left out when the model would exceed `max_fit_points` rows
    (each task keeps a share in proportion to its size, and at least two); and how many each lost."""
    total = sum(int(X_r.shape[0]) for X_r, _ in pairs)
    if max_fit_points is None or n_target + total <= max_fit_points:
        return pairs, [0] * len(pairs)
    room = max(2 * len(pairs), max_fit_points - n_target)
    kept, over = [], []
    for X_r, y_r in pairs:
        m = int(X_r.shape[0])
        share = max(2, (m * room) // total)
        if share >= m:
            kept.append((X_r, y_r))
            over.append(0)
            continue
        pick = torch.randperm(m, generator=generator)[:share].to(X_r.device)
        kept.append((X_r[pick], y_r[pick]))
        over.append(m - share)
    return kept, over
