"""Length-scale bounds set by the user, in the parameters' units, converted to the model space.

A GP fitted on a smooth map with one narrow feature learns the map's length scale and
smooths the feature away: its posterior variance is small between measurements that are
farther apart than the feature is wide, so variance-driven exploration never looks there.
``max_length_scale`` caps the fitted length scale at the feature size the user must resolve
(the GP then stays uncertain wherever no measurement lies within about that distance);
``min_length_scale`` keeps it above the smallest size that matters (a noisy map is then not
fitted with wiggles narrower than that).

Each bound is ``{parameter: size}`` in the parameter's units: a distance for a linear
``float``/``int`` parameter, a factor (``> 1``) for a log-scaled one (``2`` is a feature that
spans a doubling). :func:`length_scale_bounds` converts them once, where they enter the
optimiser; :func:`autotune.models.make_gp` applies them as the kernel's length-scale constraint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autotune.exceptions import ConfigError

if TYPE_CHECKING:
    from autotune.space import SearchSpace

DEFAULT_MIN = 2.5e-2
"""BoTorch's own lower bound on a length scale (model space), kept where the user sets none."""


@dataclass(frozen=True)
class LengthScaleBounds:
    """Per model-space column, the lower and upper bound of the kernel's length scale.

    Attributes:
        lower: Per column, the lower bound (model space; where unset, :data:`DEFAULT_MIN` or half
            the upper bound if that is smaller).
        upper: Per column, the upper bound (``inf`` where unset).
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]

    @property
    def capped(self) -> bool:
        """Whether any column has a finite upper bound."""
        return any(math.isfinite(u) for u in self.upper)


def length_scale_bounds(
    space: SearchSpace,
    min_length_scale: Mapping[str, float] | None = None,
    max_length_scale: Mapping[str, float] | None = None,
    where: str = "model",
) -> LengthScaleBounds | None:
    """Convert user-unit length-scale bounds to the model space.

    Args:
        space: The search space.
        min_length_scale: ``{parameter: smallest feature size}`` in the parameter's units.
        max_length_scale: ``{parameter: largest length scale}`` in the parameter's units.
        where: The place errors name (``model`` in a study file).

    Returns:
        The bounds, or ``None`` when neither is given (the kernel keeps BoTorch's bounds).

    Raises:
        ConfigError: An unknown or non-numeric parameter, a size that is not positive and
            finite (or not ``> 1`` on a log scale), or a minimum above the maximum.
    """
    if not min_length_scale and not max_length_scale:
        return None
    lower = [DEFAULT_MIN] * space.dim
    upper = [math.inf] * space.dim
    for key, given, out in (("min_length_scale", min_length_scale, lower), ("max_length_scale", max_length_scale, upper)):
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise ConfigError(f"{where}.{key}", "must map parameter names to sizes", given,
                              f"write e.g. {key}: {{x: 0.05}} (in the parameter's units).")
        for name, size in given.items():
            column = _column(space, name, where, key)
            out[column] = _to_model(space, name, size, f"{where}.{key}.{name}")
    for i, name in enumerate(space.columns):
        if not (min_length_scale or {}).get(name):
            lower[i] = min(lower[i], upper[i] / 2)  # a cap below BoTorch's floor lowers the floor
        if lower[i] > upper[i]:
            raise ConfigError(f"{where}.min_length_scale.{name}", "must not exceed max_length_scale", lower[i],
                              "lower min_length_scale or raise max_length_scale for this parameter.")
    return LengthScaleBounds(tuple(lower), tuple(upper))


def _column(space: SearchSpace, name: Any, where: str, key: str) -> int:
    from autotune.space import Float, Int

    if name not in space.parameters:
        raise ConfigError(f"{where}.{key}.{name}", "is not a parameter of the space", name,
                          f"use one of {', '.join(space.columns)}.")
    p = space.parameters[name]
    if not isinstance(p, (Float, Int)) or name not in space.columns:
        raise ConfigError(f"{where}.{key}.{name}", "applies to float and int parameters only", type(p).__name__,
                          "drop it: a length scale is a distance along an ordered parameter.")
    return space.columns.index(name)


def _to_model(space: SearchSpace, name: str, size: Any, where: str) -> float:
    """A size in ``name``'s units as a model-space distance (the encoding maps the range to ``[0, 1]``)."""
    p: Any = space.parameters[name]
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not math.isfinite(size) or size <= 0:
        raise ConfigError(where, "must be a positive finite number", size,
                          "give the feature size in the parameter's units, e.g. 0.05.")
    if p.log:
        if size <= 1:
            raise ConfigError(where, "must be a factor > 1 for a log-scaled parameter", size,
                              "give the feature's extent as a ratio, e.g. 2 for a doubling.")
        return math.log(size) / (math.log(p.high) - math.log(p.low))
    return float(size) / (p.high - p.low)
