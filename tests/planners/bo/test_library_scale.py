"""Planning over a library of thousands of molecules: the Tanimoto kernel's fast forms give exactly the direct
MinMax similarity, and the screen that shortlists a large finite space keeps the rows a model ranks best."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from planners.bo.optimize import screen
from planners.bo.surrogate import TanimotoKernel, _minmax


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
