"""Reading a trial's parameters: defaults for absent keys, type checks, error messages.

The builders take the parameter names of the search spaces under ``autotune/search_spaces/``. A
conditional parameter is absent from ``params`` when it is inactive, and a user's smaller
space may leave any name out: an absent (or ``None``) value takes its entry in
:data:`DEFAULTS`, the one place where training defaults live.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any

from autotune.exceptions import ConfigError, UnknownNameError

DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        # MLP (``width_k`` for k > 1 defaults to ``width_{k-1}``)
        "n_layers": 2,
        "width_1": 64,
        "activation": "relu",
        "dropout": 0.0,
        "batch_norm": False,
        "init": "he",
        # 1-D CNN (``channels_k`` for k > 1 defaults to ``channels_{k-1}``)
        "n_conv": 2,
        "channels_1": 32,
        "kernel_size": 5,
        "pool": "max",
        "fc_width": 64,
        # RNN
        "cell": "lstm",
        "hidden_size": 64,
        "bidirectional": False,
        # training
        "optimizer": "adam",
        "momentum": 0.0,
        "nesterov": False,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "batch_size": 64,
        "epochs": 20,
        "lr_schedule": "none",
        "patience": 10,
    }
)
"""The value each training parameter takes when ``params`` does not hold it."""


def _raw(params: Mapping[str, Any], name: str, default: Any) -> Any:
    value = params.get(name)
    if value is not None:
        return value
    return DEFAULTS[name] if default is None else default


def require(ok: bool, name: str, rule: str, value: Any, fix: str | None = None) -> None:
    """Raise a :class:`ConfigError` located at ``params.<name>`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"params.{name}", rule, value, fix)


def get_int(
    params: Mapping[str, Any], name: str, *, default: int | None = None, low: int = 1
) -> int:
    """Read an integer parameter (``3``, ``3.0`` and ``"3"`` all read as ``3``).

    Args:
        params: The trial's parameters.
        name: The parameter name.
        default: The value when absent; ``None`` takes :data:`DEFAULTS`.
        low: The smallest allowed value.

    Returns:
        The value.
    """
    value = _raw(params, name, default)
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        as_float = math.nan
    require(
        not isinstance(value, bool) and as_float.is_integer(), name, "must be an integer", value
    )
    require(int(as_float) >= low, name, f"must be >= {low}", value)
    return int(as_float)


def get_float(params: Mapping[str, Any], name: str) -> float:
    """Read a finite float parameter (range checks are the caller's, with :func:`require`)."""
    value = _raw(params, name, None)
    try:
        result = float(value)
    except (TypeError, ValueError):
        result = math.nan
    require(
        not isinstance(value, bool) and math.isfinite(result),
        name,
        "must be a finite number",
        value,
    )
    return result


def get_bool(params: Mapping[str, Any], name: str) -> bool:
    """Read a boolean parameter (``0`` and ``1`` are accepted)."""
    value = _raw(params, name, None)
    require(
        not isinstance(value, str) and value in (True, False), name, "must be true or false", value
    )
    return bool(value)


def get_choice(params: Mapping[str, Any], name: str, valid: Collection[str]) -> str:
    """Read a categorical parameter, one of ``valid``.

    Raises:
        UnknownNameError: The value is not in ``valid``; the message lists the valid names.
    """
    value = _raw(params, name, None)
    if value not in valid:
        raise UnknownNameError(name, str(value), list(valid), where=f"params.{name}")
    return str(value)


def get_dropout(params: Mapping[str, Any]) -> float:
    """Read ``dropout``, a probability in ``[0, 1)``."""
    dropout = get_float(params, "dropout")
    require(0.0 <= dropout < 1.0, "dropout", "must be in [0, 1)", dropout)
    return dropout
