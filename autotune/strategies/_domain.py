"""Where a strategy may propose in one ask: the whole space, a finite candidate set, fixed columns.

:class:`Domain` is the one owner of ``Optimizer.ask(n, candidates=..., fixed=...)``. It reaches
every strategy on :attr:`Context.domain <autotune.strategies.Context>`, and the shared helpers
honour it: :func:`~autotune.strategies._optimize.optimize_acquisition` (the continuous, mixed and
exhaustive paths hold the fixed columns; over a candidate set the acquisition is scored on the
candidates and a batch is chosen greedily, BoTorch's ``optimize_acqf_discrete``),
:meth:`Domain.pool` (the candidate pools of Thompson sampling, K-means and diversity search) and
:meth:`Domain.snap` / :meth:`Domain.spread` (the space-filling designs). The optimiser checks
every proposal against the domain once more, so a strategy that ignores it cannot leave it.

User input is checked by :func:`build_domain`, once, where it enters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from autotune.exceptions import ConfigError, SearchSpaceError, one_of, shown
from autotune.strategies._optimize import candidate_pool, unit_distance

if TYPE_CHECKING:
    from autotune.space import SearchSpace

_TOL = 1e-7


class Domain:
    """The legal proposals of one ask, in the model space.

    Args:
        space: The search space.
        candidates: Legal parameter dicts to choose among (the observed and pending ones
            already left out), or ``None`` for the whole space.
        fixed: Legal ``{name: value}`` held at that value (a conditional parameter is held
            where it is active).

    Attributes:
        candidates: A `c x d` model-space tensor of the candidates, or ``None``.
        fixed: ``{column: model-space value}`` of the fixed parameters that own a column.

    Within an ask the domain remembers the candidates already proposed (:meth:`take`), so a
    batch never repeats one. Use :func:`build_domain` to check user input first.
    """

    def __init__(
        self, space: SearchSpace, candidates: Sequence[Mapping[str, Any]] | None = None,
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        self.space = space
        self.values = {k: v for k, v in (fixed or {}).items() if k in space.columns}
        self.fixed: dict[int, float] = {space.columns.index(k): float(space.parameters[k].encode(v))
                                        for k, v in self.values.items()}
        self._params = [dict(c) for c in candidates] if candidates is not None else None
        self.candidates = None if self._params is None else torch.tensor(
            [space.encode(c) for c in self._params], dtype=torch.float64).reshape(len(self._params), space.dim)
        self._taken = torch.zeros(0 if self.candidates is None else len(self.candidates), dtype=torch.bool)

    def decode(self, x: Tensor) -> dict[str, Any]:
        """The parameters of a `d` model-space point of the domain: a candidate's own dict, the
        fixed values exactly as given (no round trip through the encoding)."""
        if self._params is not None and self.candidates is not None:
            hit = (torch.cdist(x.reshape(1, -1).to(torch.float64), self.candidates) < _TOL).reshape(-1).nonzero()
            if len(hit):
                return dict(self._params[int(hit[0])])
        params = self.space.decode(x.tolist())
        return {k: (self.values[k] if k in self.values else v) for k, v in params.items()}

    @property
    def restricted(self) -> bool:
        """Whether anything is restricted (candidates or fixed columns)."""
        return self.candidates is not None or bool(self.fixed)

    def remaining(self) -> Tensor:
        """A `c' x d` tensor of the candidates not yet proposed in this ask.

        Raises:
            ValueError: without a candidate set.
        """
        if self.candidates is None:
            raise ValueError("this domain has no candidate set")
        return self.candidates[~self._taken]

    def take(self, X: Tensor) -> None:
        """Mark the candidates equal to rows of a `m x d` tensor as proposed (no-op without candidates)."""
        if self.candidates is None or not len(self.candidates) or not X.numel():
            return
        hit = (torch.cdist(self.candidates, X.reshape(-1, self.space.dim).to(torch.float64)) < _TOL).any(dim=-1)
        self._taken |= hit

    def bounds(self) -> Tensor:
        """The `2 x d` model-space bounds with each fixed column collapsed to its value."""
        b = self.space.bounds()
        for j, v in self.fixed.items():
            b[:, j] = v
        return b

    def apply_fixed(self, X: Tensor) -> Tensor:
        """A `n x d` tensor with the fixed columns set, each row snapped to a legal point."""
        X = X.detach().to(torch.float64).reshape(-1, self.space.dim).clone()
        for j, v in self.fixed.items():
            X[:, j] = v
        return self.space.canonicalize_tensor(X)

    def allows(self, x: Tensor) -> bool:
        """Whether a `d` model-space point is a candidate (any, proposed or not) with the fixed values."""
        x = x.reshape(-1).to(torch.float64)
        if self.candidates is not None:
            return bool(len(self.candidates)) and bool((torch.cdist(x.unsqueeze(0), self.candidates) < _TOL).any())
        if not self.fixed:
            return True
        canon = torch.tensor(self.space.canonicalize(x.tolist()), dtype=torch.float64)
        held = self.apply_fixed(canon.unsqueeze(0))[0]
        return bool(((canon - held).abs() < _TOL).all())

    def snap(self, X: Tensor) -> Tensor:
        """Each row of a `n x d` tensor moved into the domain (in order).

        With candidates each row becomes the nearest remaining candidate (unit-cube distance),
        which is taken; otherwise the fixed columns are set and the row made legal.
        """
        X = self.apply_fixed(X)
        if self.candidates is None:
            return X
        out = []
        for row in X:
            R = self.remaining()
            j = int(unit_distance(row.unsqueeze(0), R, self.space).argmin())
            out.append(R[j])
            self.take(R[j: j + 1])
        return torch.stack(out) if out else X

    def spread(self, n: int, busy: Tensor, seed: int) -> Tensor:
        """``n`` remaining candidates chosen greedily farthest from ``busy`` and each other (maximin).

        Args:
            n: How many (at most the remaining ones).
            busy: A `m x d` tensor of observed and pending points.
            seed: Picks the first point when nothing is busy.

        Returns:
            A `n x d` tensor; the points are taken.
        """
        R = self.remaining()
        chosen: list[int] = []
        B = busy.reshape(-1, self.space.dim)
        for _ in range(min(n, len(R))):
            if len(B):
                dmin = unit_distance(R, B, self.space).min(dim=1).values
                if chosen:
                    dmin[chosen] = -1.0
                j = int(dmin.argmax())
            else:
                j = int(torch.randint(len(R), (1,), generator=torch.Generator().manual_seed(seed)))
            chosen.append(j)
            B = torch.cat([B, R[j: j + 1]])
        X = R[chosen]
        self.take(X)
        return X

    def fresh(self, seen: set[tuple[float, ...]], busy: Tensor, seed: int) -> Tensor | None:
        """A `d` point of the restricted domain whose key is not in ``seen`` (replaces a duplicate).

        Returns:
            The candidate farthest from ``busy``, or a space-filling point with the fixed values;
            ``None`` when the domain is unrestricted or none is left.
        """
        if self.candidates is not None:
            space = self.space
            free = self.candidates[[space.key(space.decode(r)) not in seen for r in self.candidates.tolist()]]
            if not len(free):
                return None
            B = busy.reshape(-1, space.dim)
            j = int(unit_distance(free, B, space).min(dim=1).values.argmax()) if len(B) else 0
            self.take(free[j: j + 1])
            return free[j]
        if self.fixed:
            for k in range(64):
                for x in self.apply_fixed(candidate_pool(self.space, 16, seed + k)):
                    if self.space.key(self.space.decode(x.tolist())) not in seen:
                        return x
        return None

    def pool(self, n: int, seed: int, around: Tensor | None = None, scale: float = 0.05) -> Tensor:
        """Legal points to score: the remaining candidates, or :func:`candidate_pool` with the fixed columns set."""
        if self.candidates is not None:
            return self.remaining()
        pool = candidate_pool(self.space, n, seed, around=around, scale=scale)
        return self.apply_fixed(pool) if self.fixed else pool


def as_domain(space_or_domain: SearchSpace | Domain) -> Domain:
    """A :class:`Domain` as is; a search space as its unrestricted domain."""
    return space_or_domain if isinstance(space_or_domain, Domain) else Domain(space_or_domain)


def build_domain(
    space: SearchSpace,
    candidates: Sequence[Mapping[str, Any]] | None,
    fixed: Mapping[str, Any] | None,
    *,
    n: int,
    seen: set[tuple[float, ...]],
    where: str = "Optimizer.ask",
) -> Domain:
    """Check the user's candidates and fixed values and build the domain of an ask.

    Args:
        space: The search space.
        candidates: Parameter dicts to choose among, or ``None``.
        fixed: ``{name: value}`` to hold, or ``None``.
        n: The points asked for (the candidates must leave at least that many).
        seen: Keys (:meth:`SearchSpace.key`) of the observed and pending points, left out.
        where: The call named in errors.

    Raises:
        ConfigError: naming the argument, the entry, the value and the fix.
    """
    _check_fixed(space, fixed, f"{where}: fixed")
    held = Domain(space, None, fixed)
    if candidates is None:
        return held
    if isinstance(candidates, (str, bytes, Mapping)) or not isinstance(candidates, Sequence):
        raise ConfigError(f"{where}: candidates", "must be a list of parameter dicts", type(candidates).__name__,
                          "pass e.g. candidates=[{'x': 0.1, 'y': 2}, {'x': 0.4, 'y': 1}].")
    if not candidates:
        raise ConfigError(f"{where}: candidates", "must hold at least one point", "[]",
                          "pass the points to choose among, or candidates=None for the whole space.")
    rows: list[dict[str, Any]] = []
    keys: set[tuple[float, ...]] = set()
    n_held = 0
    for i, c in enumerate(candidates):
        if not isinstance(c, Mapping):
            raise ConfigError(f"{where}: candidates[{i}]", "must be a dict of parameter values", shown(c),
                              "write each candidate as {'name': value, ...}.")
        params = space.validate(c, where=f"{where}: candidates[{i}]")
        key = space.key(params)
        if key in keys or key in seen:
            continue
        keys.add(key)
        if held.fixed and not held.allows(torch.tensor(space.encode(params), dtype=torch.float64)):
            n_held += 1
            continue
        rows.append(params)
    if len(rows) < n:
        why = f", {n_held} differ from the fixed values" if n_held else ""
        raise ConfigError(
            f"{where}: candidates", f"must leave at least n={n} points not yet observed or pending; {len(rows)} of "
            f"{len(candidates)} do{why}", len(rows),
            "pass more candidates, ask for fewer, or tell (or forget) the pending points first.",
        )
    return Domain(space, rows, fixed)


def _check_fixed(space: SearchSpace, fixed: Mapping[str, Any] | None, where: str) -> None:
    """Check fixed values: known names, legal values, something left free."""
    if fixed is None:
        return
    if not isinstance(fixed, Mapping):
        raise ConfigError(where, "must be a dict of parameter values", type(fixed).__name__,
                          "pass e.g. fixed={'temperature': 300}.")
    cols: dict[int, float] = {}
    for name, value in fixed.items():
        if name not in space.parameters:
            raise ConfigError(f"{where}.{name}", "is not a parameter of the space", shown(value),
                              one_of(str(name), list(space.parameters)))
        p = space.parameters[name]
        rule = p.violation(value)
        if rule is not None:
            raise SearchSpaceError(f"{where}.{name}", rule, shown(value), "use a value inside the space.")
        if name not in space.columns:  # a Fixed parameter, already at its (only) value
            continue
        x = float(p.encode(value))
        if not math.isfinite(x):
            raise ConfigError(f"{where}.{name}", "must encode to a finite value", shown(value), "use a value inside the space.")
        cols[space.columns.index(name)] = x
    free = [t for t in space.tunable if space.columns.index(t) not in cols]
    if space.tunable and not free:
        raise ConfigError(where, "fixes every tunable parameter: nothing is left to choose", dict(fixed),
                          "leave at least one parameter free, or record the point with Optimizer.add / add_pending.")
