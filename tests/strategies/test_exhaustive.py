"""Exact acquisition maximisation over small all-discrete spaces (``optimize_mixed``)."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch

from autotune.space import SearchSpace
from autotune.strategies._optimize import EXHAUSTIVE_CELLS, AcqOptions, optimize_mixed

SPACE = SearchSpace.from_dict({"parameters": {
    "act": {"type": "categorical", "choices": ["relu", "tanh", "gelu", "silu"]},
    "depth": {"type": "int", "low": 1, "high": 4},
    "width": {"type": "ordinal", "values": [16, 32, 64, 128, 256]},
    "norm": {"type": "bool"},
}})


class _Bumpy:
    """A many-plateau acquisition with one best cell; it counts its calls."""

    def __init__(self, target: torch.Tensor, observed: torch.Tensor | None = None) -> None:
        self.target = target
        self.model = SimpleNamespace(train_inputs=(observed,) if observed is not None else None)
        self.points = 0

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        x = X.squeeze(-2)
        self.points += len(x)
        # categorical-looking plateaus: a cell scores by how many coordinates match the target
        return (x - self.target).abs().lt(1e-9).sum(-1).to(torch.float64) - 1e-3 * (x - self.target).abs().sum(-1)


def _all_cells() -> torch.Tensor:
    grids = {**SPACE.discrete_dims(), **SPACE.cat_dims()}
    order = sorted(grids)
    cells = torch.tensor(list(itertools.product(*(grids[j] for j in order))), dtype=torch.float64)
    X = torch.empty(len(cells), SPACE.dim, dtype=torch.float64)
    X[:, order] = cells
    return torch.unique(SPACE.canonicalize_tensor(X), dim=0)


@pytest.mark.parametrize("seed", range(6))
def test_a_small_discrete_space_is_maximised_exactly(seed: int) -> None:
    cells = _all_cells()
    assert len(cells) <= EXHAUSTIVE_CELLS
    g = torch.Generator().manual_seed(seed)
    target = cells[torch.randint(len(cells), (1,), generator=g)].squeeze(0)
    acqf = _Bumpy(target)
    x, value = optimize_mixed(acqf, SPACE, AcqOptions(num_restarts=2, raw_samples=8))
    assert torch.equal(x.squeeze(0), target)
    assert value == pytest.approx(SPACE.dim)
    assert acqf.points == len(cells)  # every cell scored once, nothing else


def test_observed_cells_are_never_proposed_again() -> None:
    cells = _all_cells()
    target = cells[7]
    observed = torch.stack([target, cells[3]])
    x, _ = optimize_mixed(_Bumpy(target, observed), SPACE, AcqOptions(num_restarts=2, raw_samples=8))
    assert not (torch.cdist(x, observed) < 1e-9).any()
    assert SPACE.canonicalize(x.squeeze(0).tolist()) == x.squeeze(0).tolist()  # a legal cell


def test_a_space_with_a_float_is_not_enumerated() -> None:
    space = SearchSpace.from_dict({"parameters": {"act": {"type": "categorical", "choices": ["a", "b"]},
                                                  "lr": {"type": "float", "low": 0.0, "high": 1.0}}})
    target = torch.tensor([1.0, 0.25], dtype=torch.float64)
    acqf = _Bumpy(target)
    optimize_mixed(acqf, space, AcqOptions(num_restarts=2, raw_samples=16))
    assert acqf.points > 2  # local search over the float, not a 2-cell enumeration
