"""Reading parameters: defaults for absent keys, coercion, and the error messages."""

from __future__ import annotations

import pytest

from autotune.exceptions import ConfigError, UnknownNameError
from autotune.training import DEFAULTS
from autotune.training._params import get_bool, get_choice, get_dropout, get_float, get_int


def test_absent_and_none_take_the_default() -> None:
    assert get_int({}, "n_layers") == DEFAULTS["n_layers"]
    assert get_int({"n_layers": None}, "n_layers") == DEFAULTS["n_layers"]
    assert get_int({}, "width_3", default=17) == 17
    assert get_int({"width_3": 5}, "width_3", default=17) == 5


@pytest.mark.parametrize("value", [3, 3.0, "3"])
def test_int_accepts_integral_values(value: object) -> None:
    assert get_int({"n_layers": value}, "n_layers") == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (2.5, "params.n_layers: must be an integer, got 2.5."),
        (True, "params.n_layers: must be an integer, got True."),
        ("two", "params.n_layers: must be an integer, got 'two'."),
        (0, "params.n_layers: must be >= 1, got 0."),
    ],
)
def test_int_rejects_with_location_and_value(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        get_int({"n_layers": value}, "n_layers")
    assert str(info.value) == message


def test_float_rejects_non_finite() -> None:
    assert get_float({"lr": "1e-3"}, "lr") == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match=r"params\.lr: must be a finite number"):
        get_float({"lr": float("nan")}, "lr")


def test_bool_accepts_0_and_1_but_not_strings() -> None:
    assert get_bool({"batch_norm": 1}, "batch_norm") is True
    assert get_bool({"batch_norm": False}, "batch_norm") is False
    with pytest.raises(ConfigError, match="must be true or false"):
        get_bool({"batch_norm": "yes"}, "batch_norm")


def test_unknown_choice_lists_the_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_choice({"pool": "sum"}, "pool", ("max", "avg", "none"))
    assert isinstance(info.value, KeyError)
    assert str(info.value) == (
        "params.pool: unknown pool name, got 'sum'. Fix: use one of: avg, max, none."
    )


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_dropout_must_be_a_probability_below_one(value: float) -> None:
    with pytest.raises(ConfigError, match=r"params\.dropout: must be in \[0, 1\)"):
        get_dropout({"dropout": value})
