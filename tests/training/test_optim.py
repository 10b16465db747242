"""Optimisers and learning-rate schedules from parameters."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from autotune.exceptions import ConfigError, UnknownNameError
from autotune.training import make_optimizer, make_scheduler


@pytest.fixture
def model() -> nn.Module:
    return nn.Linear(3, 2)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("sgd", torch.optim.SGD),
        ("adam", torch.optim.Adam),
        ("rmsprop", torch.optim.RMSprop),
        ("adagrad", torch.optim.Adagrad),
    ],
)
def test_optimizer_kind_rate_and_weight_decay(model: nn.Module, name: str, cls: type) -> None:
    opt = make_optimizer({"optimizer": name, "lr": 0.03, "weight_decay": 1e-4}, model)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.03, 1e-4)
    assert sum(p.numel() for p in group["params"]) == 3 * 2 + 2


def test_sgd_momentum_and_nesterov(model: nn.Module) -> None:
    opt = make_optimizer({"optimizer": "sgd", "momentum": 0.9, "nesterov": True}, model)
    assert (opt.param_groups[0]["momentum"], opt.param_groups[0]["nesterov"]) == (0.9, True)


def test_nesterov_without_momentum_falls_back_to_plain_sgd(model: nn.Module) -> None:
    with pytest.raises(ValueError, match="Nesterov"):  # what PyTorch itself does
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.0, nesterov=True)
    opt = make_optimizer({"optimizer": "sgd", "momentum": 0.0, "nesterov": True}, model)
    assert (opt.param_groups[0]["momentum"], opt.param_groups[0]["nesterov"]) == (0.0, False)


def test_defaults_are_adam_at_1e_3(model: nn.Module) -> None:
    opt = make_optimizer({}, model)
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 1e-3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr": 0.0}, "params.lr: must be > 0, got 0.0."),
        ({"weight_decay": -1e-5}, "params.weight_decay: must be >= 0, got -1e-05."),
        ({"optimizer": "sgd", "momentum": 1.0}, "params.momentum: must be in [0, 1), got 1.0."),
    ],
)
def test_bad_values_name_the_parameter(
    model: nn.Module, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        make_optimizer(params, model)
    assert str(info.value) == message


def test_unknown_optimizer_lists_the_valid_ones(model: nn.Module) -> None:
    with pytest.raises(UnknownNameError, match="use one of: adagrad, adam, rmsprop, sgd"):
        make_optimizer({"optimizer": "lbfgs"}, model)


def _rates(params: dict[str, Any], epochs: int) -> list[float]:
    opt = make_optimizer({"optimizer": "sgd", "lr": 1.0}, nn.Linear(1, 1))
    scheduler = make_scheduler(params, opt, epochs)
    rates = []
    for _ in range(epochs):
        rates.append(opt.param_groups[0]["lr"])
        if scheduler is not None:
            opt.step()
            scheduler.step()
    return rates


def test_no_schedule_keeps_the_rate() -> None:
    assert make_scheduler({}, torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0), 5) is None
    assert _rates({"lr_schedule": "none"}, 5) == [1.0] * 5


def test_cosine_schedule_follows_the_half_cosine() -> None:
    epochs = 10
    expected = [0.5 * (1 + math.cos(math.pi * t / epochs)) for t in range(epochs)]
    assert _rates({"lr_schedule": "cosine"}, epochs) == pytest.approx(expected)


def test_step_schedule_divides_by_ten_every_third_of_the_run() -> None:
    assert _rates({"lr_schedule": "step"}, 9) == pytest.approx([1.0] * 3 + [0.1] * 3 + [0.01] * 3)
