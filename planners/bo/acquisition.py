"""Acquisition functions: what makes one batch of experiments better than another under the model.

- one objective: qLogNEI (Ament et al., 2023), noisy expected improvement on a log scale, which stays
  optimisable where plain EI is numerically zero;
- several objectives: qLogNEHVI, expected improvement of the hypervolume dominated by the Pareto front, relative to
  a reference point (given per objective, or inferred from the data as BoTorch and Ax do).

Experiments still pending are passed as `X_pending`: the batch is chosen jointly with them, so a new batch can be
planned while the last one runs. Outcome constraints and the feasibility model enter as constraints on the model's
outputs (feasible where the callable is <= 0), weighted by their probability of holding.

Model outputs are ordered: the objectives (signed so that larger is better), then the feasibility model if any.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.cached_cholesky import supports_cache_root
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.multi_objective import logei as multi_objective_logei
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
from botorch.acquisition.objective import GenericMCObjective
from botorch.models.model import Model
from botorch.sampling import SobolQMCNormalSampler
from botorch.utils.multi_objective.hypervolume import infer_reference_point
from botorch.utils.multi_objective.pareto import is_non_dominated
from torch import Tensor

# Outputs of a feasibility model above this are called feasible (labels: 1 feasible, 0 infeasible).
FEASIBLE_LEVEL = 0.5

# qLogNEHVI would otherwise compile a C++ kernel (-march=native) with torch's JIT on its first use: minutes on a
# small machine, a lock file that wedges every later process if the compiling one is killed, and numbers that depend
# on whether a compiler was there. The pure-PyTorch path gives the same decisions on every host, so replay matches.
if hasattr(multi_objective_logei, "_load_attempted"):
    multi_objective_logei._load_attempted = True


@dataclass(frozen=True)
class OutputConstraint:
    """`sign * Z[..., output] <op> value` must hold, Z being the model's (larger-is-better) output."""

    output: int
    sign: float
    operator: str  # "<=" or ">="
    value: float

    def callable(self) -> Callable[[Tensor], Tensor]:
        def constraint(Z: Tensor) -> Tensor:
            y = self.sign * Z[..., self.output]
            return y - self.value if self.operator == "<=" else self.value - y

        return constraint


def _first_output(Z: Tensor, X: Tensor | None = None) -> Tensor:
    """The objective when the model has extra outputs (feasibility): output 0 only (`... x m` -> `...`)."""
    return Z[..., 0]


def build_acquisition(
    model: Model,
    X_baseline: Tensor,
    n_objectives: int,
    constraints: Sequence[OutputConstraint],
    X_pending: Tensor | None,
    mc_samples: int,
    seed: int,
    reference_point: Sequence[float] | None = None,
    Y_baseline: Tensor | None = None,
) -> tuple[AcquisitionFunction, str]:
    """The acquisition function for a batch, and its name for the record.

    `X_baseline` (`n x d`): the observed points; `Y_baseline` (`n x m`, larger is better) is needed with several
    objectives to infer the reference point when none is given.
    """
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed)
    # The cached Cholesky root of the baseline's posterior, where the model allows it: a multi-task model
    # (`bo.transfer`) does not, and BoTorch would warn and go without.
    cache_root = supports_cache_root(model)
    callables = [c.callable() for c in constraints] or None
    if n_objectives == 1:
        objective = GenericMCObjective(_first_output) if model.num_outputs > 1 else None
        single = qLogNoisyExpectedImprovement(
            model=model,
            X_baseline=X_baseline,
            sampler=sampler,
            objective=objective,
            constraints=callables,
            X_pending=X_pending,
            prune_baseline=True,
            cache_root=cache_root,
        )
        return single, "qLogNEI"
    if reference_point is None:
        assert Y_baseline is not None
        front = Y_baseline[is_non_dominated(Y_baseline)]
        reference = infer_reference_point(front)
    else:
        reference = torch.as_tensor(reference_point, dtype=X_baseline.dtype, device=X_baseline.device)
    acqf = qLogNoisyExpectedHypervolumeImprovement(
        model=model,
        ref_point=reference,
        X_baseline=X_baseline,
        sampler=sampler,
        objective=IdentityMCMultiOutputObjective(outcomes=list(range(n_objectives))),
        constraints=callables,
        X_pending=X_pending,
        prune_baseline=True,
        cache_root=cache_root,
    )
    return acqf, "qLogNEHVI"
