"""The stopping rules (see the package docstring for the methods and their sources).

Every rule sees values where smaller is better (the driver flips a maximised metric) and
decides each (trial, step or rung) at most once. ``observe(..., decided=True)`` records a
report without deciding: how a resumed driver replays the record (the trials that were
already stopped are finished; those that continued past a rung continue).
"""

from __future__ import annotations

import abc
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = ["AshaRule", "Decision", "HyperbandRule", "MedianRule", "NoStopping", "StoppingRule", "Value",
           "make_rule", "pareto_ranks"]

#: A judged value: one number, or one per objective (multi-objective studies), smaller is better.
Value: TypeAlias = "float | tuple[float, ...]"


@dataclass(frozen=True)
class Decision:
    """A rule's verdict on one report: stop the trial.

    Attributes:
        trial_id: The trial to stop.
        step: The step of the report that decided it.
        value: The value it was judged on (smaller is better; one per objective in a
            multi-objective study).
        reason: One line for the record, e.g. ``"asha rung 3: 0.41 not in the best 1/3 of 6"``.
    """

    trial_id: int
    step: int
    value: Value
    reason: str


class StoppingRule(abc.ABC):
    """Decides from the reports so far whether a running trial should stop."""

    name: str = "rule"

    @abc.abstractmethod
    def observe(self, trial_id: int, step: int, value: Value, *, decided: bool = False) -> Decision | None:
        """Record one report of a trial and decide.

        Args:
            trial_id: The trial.
            step: Its step (epoch, iteration), ``>= 0``.
            value: The judged metric at that step, smaller is better; a non-finite value counts
                as the worst. A tuple (one value per objective) for multi-objective ASHA and
                Hyperband.
            decided: Record only (a replay of the record on resume): never returns a decision.

        Returns:
            A :class:`Decision` to stop the trial, or ``None`` to let it continue.
        """

    def completed(self, trial_id: int) -> None:  # noqa: B027 (optional hook)
        """Note that a trial ran to its end (the median rule compares with completed trials)."""


class NoStopping(StoppingRule):
    """Every trial runs to its end (the default)."""

    name = "none"

    def observe(self, trial_id: int, step: int, value: Value, *, decided: bool = False) -> Decision | None:
        return None


def pareto_ranks(points: Mapping[int, tuple[float, ...]]) -> dict[int, int]:
    """Non-dominated sorting (Deb et al., 2002, NSGA-II): the front index of each point, minimising.

    Front 0 holds the points no other point dominates (no worse in every objective and better
    in one); front ``k`` those dominated only by points of fronts ``< k``. Equal points share a
    front. Quadratic in the number of points per front peeled, fine at the sizes of one rung.
    """
    def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    left = dict(points)
    ranks: dict[int, int] = {}
    front = 0
    while left:
        current = [i for i, p in left.items() if not any(dominates(q, p) for j, q in left.items() if j != i)]
        for i in current:
            ranks[i] = front
            del left[i]
        front += 1
    return ranks


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf


@dataclass
class MedianRule(StoppingRule):
    """Stop a trial whose best value up to step ``s`` is worse than the median of the completed
    trials' best values up to ``s`` (Golovin et al., 2017).

    Args:
        min_step: No decision before this step.
        min_trials: Completed trials with a report at or before ``s`` needed to decide.
    """

    min_step: int = 1
    min_trials: int = 3
    name: str = field(default="median", init=False)
    _curves: dict[int, dict[int, float]] = field(default_factory=dict, init=False, repr=False)
    _completed: set[int] = field(default_factory=set, init=False, repr=False)
    _decided: set[tuple[int, int]] = field(default_factory=set, init=False, repr=False)

    def observe(self, trial_id: int, step: int, value: Value, *, decided: bool = False) -> Decision | None:
        if isinstance(value, tuple):
            raise TypeError("the median rule judges one metric; several objectives need asha or hyperband")
        self._curves.setdefault(trial_id, {})[step] = _finite(value)
        if decided or step < self.min_step or (trial_id, step) in self._decided:
            self._decided.add((trial_id, step))
            return None
        self._decided.add((trial_id, step))
        others: list[float] = []
        for other in self._completed:
            best = self._best_until(other, step) if other != trial_id else None
            if best is not None:
                others.append(best)
        if len(others) < self.min_trials:
            return None
        mine = self._best_until(trial_id, step)
        median = statistics.median(others)
        if mine is not None and mine > median:
            return Decision(trial_id, step, value,
                            f"median rule at step {step}: best {mine:.6g} worse than the median {median:.6g} "
                            f"of {len(others)} completed trials")
        return None

    def completed(self, trial_id: int) -> None:
        self._completed.add(trial_id)

    def _best_until(self, trial_id: int, step: int) -> float | None:
        values = [v for s, v in self._curves.get(trial_id, {}).items() if s <= step]
        return min(values) if values else None


def rungs(min_step: int, max_step: int, eta: int) -> list[int]:
    """The steps at which successive halving decides: ``min_step * eta**k`` below ``max_step``."""
    out: list[int] = []
    r = min_step
    while r < max_step:
        out.append(r)
        r *= eta
    return out


@dataclass
class AshaRule(StoppingRule):
    """Asynchronous successive halving, stopping form (Li et al., 2020).

    At each rung ``r`` (``min_step * eta**k < max_step``) a trial's first report at a step
    ``>= r`` is recorded; the trial continues only if its value is among the best
    ``max(1, floor(n / eta))`` of the ``n`` values recorded at that rung so far (itself
    included), so a trial in the best ``1/eta`` is never stopped and the first to arrive always
    continues. Reaching ``max_step`` is the end of a trial, not a rung.

    Args:
        min_step: The first rung.
        max_step: The full length of a trial (its last step).
        eta: The reduction factor (>= 2).
    """

    min_step: int = 1
    max_step: int = 81
    eta: int = 3
    name: str = field(default="asha", init=False)
    _rungs: list[int] = field(default_factory=list, init=False)
    _recorded: dict[int, dict[int, tuple[float, ...]]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.eta < 2 or self.min_step < 0 or self.max_step <= self.min_step:
            raise ValueError(f"asha needs eta >= 2 and 0 <= min_step < max_step, got {self}")
        self._rungs = rungs(max(self.min_step, 1), self.max_step, self.eta)
        self._recorded = {r: {} for r in self._rungs}

    @property
    def rung_steps(self) -> list[int]:
        """The rungs' steps."""
        return list(self._rungs)

    def observe(self, trial_id: int, step: int, value: Value, *, decided: bool = False) -> Decision | None:
        v: tuple[float, ...] = tuple(_finite(x) for x in value) if isinstance(value, tuple) else (_finite(value),)
        for r in self._rungs:
            if r > step:
                break
            at_rung = self._recorded[r]
            if trial_id in at_rung:
                continue  # decided at this rung already
            at_rung[trial_id] = v
            if decided:
                continue
            keep = max(1, math.floor(len(at_rung) / self.eta))
            ahead = self._ahead(at_rung, trial_id)
            if ahead >= keep:  # ties with the cut-off continue
                shown = f"{v[0]:.6g}" if len(v) == 1 else "(" + ", ".join(f"{x:.6g}" for x in v) + ")"
                what = "not in the best" if len(v) == 1 else "dominated, its front not in the best"
                return Decision(trial_id, step, value,
                                f"{self.name} rung {r}: {shown} {what} {keep} of {len(at_rung)} at this rung")
        return None

    @staticmethod
    def _ahead(at_rung: Mapping[int, tuple[float, ...]], trial_id: int) -> int:
        """How many trials at the rung rank strictly ahead of ``trial_id``.

        One objective: the better values. Several: the members of better Pareto fronts, so a
        trial no other trial dominates (front 0) is never stopped, and the best ``1/eta`` are
        taken front by front (multi-objective successive halving by non-dominated sorting, as
        in Schmucker et al. 2021, "Multi-objective Asynchronous Successive Halving").
        """
        mine = at_rung[trial_id]
        if len(mine) == 1:
            return sum(1 for v in at_rung.values() if v[0] < mine[0])
        ranks = pareto_ranks(at_rung)
        return sum(1 for rank in ranks.values() if rank < ranks[trial_id])

    def members(self, rung: int) -> dict[int, tuple[float, ...]]:
        """The trials recorded at a rung and their values (for tests and the record)."""
        return dict(self._recorded[rung])


@dataclass
class HyperbandRule(StoppingRule):
    """Hyperband as several ASHA brackets (Li et al., 2018; asynchronous as in Li et al., 2020).

    Bracket ``b`` starts deciding at ``min_step * eta**b``; a trial's bracket is its id modulo the
    number of brackets, so the assignment is fixed and a resumed driver finds it again. (The
    original sizes its brackets so each uses the same budget; equal shares keep the most
    exploratory bracket from taking most trials, the choice of Syne Tune's and Ray Tune's
    asynchronous Hyperband defaults.)

    Args:
        min_step: The first rung of the most aggressive bracket.
        max_step: The full length of a trial.
        eta: The reduction factor.
        brackets: How many brackets; default every bracket that has a rung.
    """

    min_step: int = 1
    max_step: int = 81
    eta: int = 3
    brackets: int | None = None
    name: str = field(default="hyperband", init=False)
    _asha: list[AshaRule] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(rungs(max(self.min_step, 1), self.max_step, self.eta))
        count = n if self.brackets is None else min(self.brackets, n)
        if count < 1:
            raise ValueError(f"hyperband needs at least one rung below max_step, got {self}")
        self._asha = [AshaRule(max(self.min_step, 1) * self.eta**b, self.max_step, self.eta) for b in range(count)]
        for b, rule in enumerate(self._asha):
            rule.name = f"hyperband bracket {b}"

    def bracket(self, trial_id: int) -> int:
        """The bracket of a trial."""
        return trial_id % len(self._asha)

    def observe(self, trial_id: int, step: int, value: Value, *, decided: bool = False) -> Decision | None:
        return self._asha[self.bracket(trial_id)].observe(trial_id, step, value, decided=decided)


def make_rule(rule: str, **options: Any) -> StoppingRule:
    """A rule by name: ``none``, ``median``, ``asha`` or ``hyperband``, with its options.

    Raises:
        ValueError: An unknown name.
    """
    builders: dict[str, type[StoppingRule]] = {
        "none": NoStopping, "median": MedianRule, "asha": AshaRule, "hyperband": HyperbandRule}
    if rule not in builders:
        raise ValueError(f"unknown stopping rule {rule!r}; choose one of {', '.join(builders)}")
    return builders[rule](**options)
