"""Planning over a library of thousands of molecules: the Tanimoto kernel's fast forms give exactly the direct
MinMax similarity, and the screen that shortlists a large finite space keeps the rows a model ranks best."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from planners.base import PlanningProblem
from planners.bo.optimize import screen
from planners.bo.planner import BayesianPlanner
from planners.bo.surrogate import TanimotoKernel, _minmax
from planners.settings import BayesianSettings
from planners.space import IntegerParameter, Objective, Space


def _counts(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    counts = torch.poisson(torch.rand(shape, generator=generator, dtype=torch.float64) * 1.5, generator=generator)
    counts[..., 0, 0] = 40.0  # a long chain: a count far past the levels taken by matrix products
    return counts


@pytest.mark.parametrize(
    ("shape1", "shape2"),
    [((9, 60), (7, 60)), ((4, 5, 60), (6, 60)), ((4, 5, 60), (4, 5, 60)), ((3, 1, 60), (3, 1, 60))],
)
def test_the_kernel_is_the_direct_minmax_similarity_for_counts_and_for_other_values(
    shape1: tuple[int, ...], shape2: tuple[int, ...]
) -> None:
    x1, x2 = _counts(shape1, 1), _counts(shape2, 2)
    if shape1 == shape2 and shape1[-2] > 1:
        x1[..., 1, :] = x2[..., 0, :]  # a row in both
    kernel = TanimotoKernel()
    for a, b in ((x1, x2), (x1 * 0.37, x2)):
        direct = torch.minimum(a.unsqueeze(-2), b.unsqueeze(-3)).sum(-1)
        expected = direct / torch.maximum(a.unsqueeze(-2), b.unsqueeze(-3)).sum(-1)
        assert torch.allclose(kernel.forward(a, b), expected, rtol=0, atol=1e-14)
    rows1, rows2 = x1.reshape(-1, 60), x2.reshape(-1, 60)
    assert torch.allclose(_minmax(rows1, rows2, counts=True), _minmax(rows1, rows2), rtol=0, atol=1e-14)


class _Posterior:
    def __init__(self, mean: torch.Tensor, variance: torch.Tensor) -> None:
        self.mean, self.variance = mean, variance


class _Model:
    """Outputs given per row of the candidates: mean and standard deviation looked up by the row's first value."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.table_mean, self.table_std = mean, std

    def posterior(self, X: torch.Tensor) -> Any:
        index = X[..., 0].long()
        return _Posterior(self.table_mean[index], self.table_std[index] ** 2)


def test_one_output_keeps_the_best_upper_bounds() -> None:
    mean = torch.tensor([[0.0], [1.0], [0.5], [0.2], [0.9]], dtype=torch.float64)
    std = torch.tensor([[0.0], [0.0], [0.4], [0.0], [0.01]], dtype=torch.float64)
    choices = torch.arange(5, dtype=torch.float64).unsqueeze(-1)
    # bounds at beta 2: 0, 1, 1.3, 0.2, 0.92
    model: Any = _Model(mean, std)
    assert screen(model, choices, keep=3, chunk=2).tolist() == [1, 2, 4]
    assert screen(model, choices, keep=9).tolist() == [0, 1, 2, 3, 4]


def test_several_outputs_keep_the_pareto_layers_of_the_bounds_in_order() -> None:
    mean = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.6], [0.5, 0.5], [0.1, 0.1], [0.55, 0.2]], dtype=torch.float64)
    choices = torch.arange(6, dtype=torch.float64).unsqueeze(-1)
    model: Any = _Model(mean, torch.zeros_like(mean))
    assert screen(model, choices, keep=3).tolist() == [0, 1, 2]  # the first front
    # The second front is 3 and 5; of them, 3 has the larger sum of standardised bounds.
    assert screen(model, choices, keep=4).tolist() == [0, 1, 2, 3]
    assert screen(model, choices, keep=5).tolist() == [0, 1, 2, 3, 5]


def test_the_first_batch_over_thousands_of_candidates_is_a_uniform_draw_not_the_outliers() -> None:

    # 3,600 candidates: a maximin design puts its points on the edges of the grid (6.5 % of it); a uniform draw
    # puts about one point in fifteen there.
    axes = [IntegerParameter(name=n, type="integer", bounds=(0, 59)) for n in ("a", "b")]
    problem = PlanningProblem(
        space=Space(parameters=tuple(axes)), objectives=(Objective(name="y", direction="maximize"),)
    )
    planner = BayesianPlanner(BayesianSettings(kind="bayesian"))
    points = [p.parameters for seed in range(5) for p in planner.propose(problem, [], [], 8, seed).proposals]
    on_edge = [p for p in points if {p["a"], p["b"]} & {0, 59}]
    assert len(points) == 40 and len(on_edge) <= 8, on_edge
    assert all(len({(p["a"], p["b"]) for p in points[i : i + 8]}) == 8 for i in range(0, 40, 8))
