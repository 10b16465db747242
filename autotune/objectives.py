"""Several objectives: their names and directions, the Pareto front and its hypervolume.

A multi-objective study minimises or maximises two or more metrics at once; the answer is the
Pareto front, the feasible trials that no other feasible trial dominates (at least as good in
every objective, better in one). Its quality is the hypervolume it dominates above a reference
point (Zitzler & Thiele 1999); a reference point that is not given is inferred from the data
as the nadir of the observed front minus 10 % of its range (BoTorch's
``infer_reference_point``, the heuristic of Ishibuchi et al. 2018) and recorded.

Everything here works in the user's units and directions; :func:`oriented` flips minimised
objectives so that models and strategies always maximise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from autotune.exceptions import ConfigError

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class Objective:
    """One objective of a study.

    Args:
        metric: The name of the metric (the key of its value in ``tell``).
        direction: ``minimize`` or ``maximize``.
    """

    metric: str
    direction: Literal["minimize", "maximize"] = "minimize"

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric.strip():
            raise ConfigError("objectives.metric", "must be a non-empty metric name", self.metric,
                              "name the metric, e.g. Objective('val_loss', 'minimize').")
        if self.direction not in ("minimize", "maximize"):
            raise ConfigError(f"objectives[{self.metric}].direction", "must be minimize or maximize", self.direction,
                              "use direction: minimize.")

    @property
    def sign(self) -> float:
        """``-1`` for a minimised objective (the factor that makes it maximised)."""
        return -1.0 if self.direction == "minimize" else 1.0


def parse_objectives(objectives: Sequence[Any], where: str = "objectives") -> list[Objective]:
    """Objectives from :class:`Objective` objects, ``(metric, direction)`` pairs or mappings.

    Raises:
        ConfigError: for an empty list, a malformed entry, or a metric named twice.
    """
    if isinstance(objectives, (str, bytes, Mapping)) or not isinstance(objectives, Sequence) or not objectives:
        raise ConfigError(where, "must be a non-empty list of objectives", objectives,
                          "pass e.g. [Objective('val_loss', 'minimize'), Objective('latency_ms', 'minimize')].")
    out: list[Objective] = []
    for i, o in enumerate(objectives):
        if isinstance(o, Objective):
            obj = o
        elif isinstance(o, Mapping):
            extra = sorted(set(o) - {"metric", "direction"})
            if extra or "metric" not in o:
                raise ConfigError(f"{where}[{i}]", "must have the keys metric and direction", dict(o),
                                  "write e.g. {metric: val_loss, direction: minimize}.")
            obj = _objective(o["metric"], o.get("direction", "minimize"), f"{where}[{i}]")
        elif isinstance(o, (tuple, list)) and len(o) == 2:
            obj = _objective(o[0], o[1], f"{where}[{i}]")
        else:
            raise ConfigError(f"{where}[{i}]", "must be an Objective, a (metric, direction) pair or a mapping", o,
                              "write e.g. Objective('val_loss', 'minimize').")
        if any(p.metric == obj.metric for p in out):
            raise ConfigError(f"{where}[{i}].metric", "names a metric twice", obj.metric, "list each objective once.")
        out.append(obj)
    return out


def _objective(metric: Any, direction: Any, where: str) -> Objective:
    if not isinstance(metric, str) or not metric.strip():
        raise ConfigError(f"{where}.metric", "must be a non-empty metric name", metric, "write e.g. metric: val_loss.")
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"{where}.direction", "must be minimize or maximize", direction, "use direction: minimize.")
    return Objective(metric.strip(), cast(Literal["minimize", "maximize"], direction))


def parse_reference_point(
    ref: Mapping[str, Any] | Sequence[Any] | None, objectives: Sequence[Objective], where: str = "reference_point"
) -> dict[str, float] | None:
    """A reference point as ``{metric: value}`` in the user's units (``None`` stays ``None``).

    Accepts a mapping by metric or a list in the objectives' order.

    Raises:
        ConfigError: for a missing or unknown metric, a wrong length, or a non-finite value.
    """
    if ref is None:
        return None
    names = [o.metric for o in objectives]
    if isinstance(ref, Mapping):
        unknown = sorted(set(ref) - set(names))
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}", "is not an objective", ref[unknown[0]],
                              f"give a value for each objective: {', '.join(names)}.")
        missing = [n for n in names if n not in ref]
        if missing:
            raise ConfigError(f"{where}.{missing[0]}", "is missing", None,
                              f"give a value for each objective: {', '.join(names)}.")
        items = [(n, ref[n]) for n in names]
    elif isinstance(ref, Sequence) and not isinstance(ref, (str, bytes)):
        if len(ref) != len(names):
            raise ConfigError(where, f"must have one value per objective ({len(names)})", list(ref),
                              f"give the values in the order {', '.join(names)}, or a mapping by metric.")
        items = list(zip(names, ref))
    else:
        raise ConfigError(where, "must be a mapping of objective metrics to numbers", ref,
                          f"write e.g. {{{names[0]}: 1.0, ...}}.")
    out: dict[str, float] = {}
    for n, v in items:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise ConfigError(f"{where}.{n}", "must be a finite number", v,
                              "give the worst value of this objective that is still of interest.")
        out[n] = float(v)
    return out


def oriented(values: Tensor, objectives: Sequence[Objective]) -> Tensor:
    """`... x M` values in the user's directions to maximisation (minimised columns negated)."""
    import torch

    return values * torch.tensor([o.sign for o in objectives], dtype=values.dtype)


def non_dominated(Y: Tensor) -> Tensor:
    """A `n` mask of the rows of a `n x M` maximised tensor that no other row dominates (finite rows only)."""
    import torch
    from botorch.utils.multi_objective.pareto import is_non_dominated

    ok = torch.isfinite(Y).all(-1)
    mask = torch.zeros(len(Y), dtype=torch.bool)
    if bool(ok.any()):
        mask[ok] = is_non_dominated(Y[ok], deduplicate=False)
    return mask


def infer_reference_point(Y: Tensor) -> Tensor:
    """The nadir of the front of `n x M` maximised values minus 10 % of its range (BoTorch's heuristic)."""
    from botorch.utils.multi_objective.hypervolume import infer_reference_point as infer

    front = Y[non_dominated(Y)]
    return infer(front, scale=0.1)


def hypervolume(Y: Tensor, ref_point: Tensor) -> float:
    """The hypervolume that `n x M` maximised values dominate above ``ref_point`` (0 for none).

    Points not strictly better than the reference point in every objective add nothing.
    """
    import torch
    from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning

    Y = Y[torch.isfinite(Y).all(-1)]
    Y = Y[(Y > ref_point).all(-1)]
    if not len(Y):
        return 0.0
    return float(DominatedPartitioning(ref_point=ref_point, Y=Y).compute_hypervolume())


def hypervolume_history(Y: Tensor, ref_point: Tensor) -> list[float]:
    """The hypervolume after each of the `n` rows of ``Y`` in turn (non-decreasing)."""
    out: list[float] = []
    for i in range(1, len(Y) + 1):
        out.append(hypervolume(Y[:i], ref_point))
    return out


def check_objective_values(value: Any, objectives: Sequence[Objective], where: str) -> tuple[float | None, dict[str, float]]:
    """Check a trial's objective values: ``{metric: number}`` with every objective, or ``None``.

    Returns:
        The first objective's value (``None`` when the trial gave none) and the values by metric.

    Raises:
        ConfigError: for a value that is not a mapping, a missing or unknown metric, or a
            value that is not a real number; the message names the metric and the fix.
    """
    import numbers

    names = [o.metric for o in objectives]
    example = "{" + ", ".join(f"{n!r}: ..." for n in names) + "}"
    if value is None:
        return None, {}
    if not isinstance(value, Mapping):
        raise ConfigError(where, f"must map each objective ({', '.join(names)}) to its value", value,
                          f"pass {example}, or None if the trial gave no values.")
    missing = [n for n in names if n not in value]
    if missing:
        raise ConfigError(f"{where}[{missing[0]!r}]", "is missing: every objective needs a value", None,
                          f"pass {example} (other results go in metrics=...).")
    unknown = sorted(str(k) for k in value if k not in names)
    if unknown:
        raise ConfigError(f"{where}[{unknown[0]!r}]", f"is not an objective ({', '.join(names)})", value[unknown[0]],
                          "pass other results as metrics={'name': number}.")
    out: dict[str, float] = {}
    for n in names:
        v = value[n]
        if v is None:
            return None, {}
        if isinstance(v, (bool, str, bytes)) or not isinstance(v, numbers.Real):
            raise ConfigError(f"{where}[{n!r}]", "must be a real number", v, f"pass a number for {n}.")
        try:
            out[n] = float(v)
        except OverflowError:
            out[n] = math.inf if v > 0 else -math.inf  # type: ignore[operator]
    return out[names[0]], out
