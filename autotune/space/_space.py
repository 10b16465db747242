"""The search space: parameters, conditions, and the model-space encoding.

Hand-written (no library offers typed conditional spaces that encode to BoTorch tensors):
the topological order of conditions, the exact encode/decode round trip, the vectorised
activity mask used by the GP's conditional input transform, and the initial designs.
"""

from __future__ import annotations

import itertools
import math
import random as _random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.exceptions import SearchSpaceError, shown
from autotune.space._params import (
    Categorical,
    Condition,
    Fixed,
    Float,
    Int,
    Parameter,
)

if TYPE_CHECKING:
    import torch

_KEY_DECIMALS = 9
#: The keys of a search-space mapping (a file, or an inline ``space:`` of a study file).
SPACE_KEYS: tuple[str, ...] = ("name", "description", "include", "parameters")
#: Integer parameters with more values than this are optimised as a relaxed continuous column
#: (snapped to the nearest integer), and conditions on them are checked by interval logic: no
#: code path lists their values.
MAX_ENUMERATED = 10_000


class SearchSpace:
    """An ordered collection of parameters, some of them conditional.

    Args:
        parameters: The parameters, in the order suggestions list them.
        name: An optional name (e.g. ``"mlp"``).
        source: Where the definition came from (a file path), used in error messages.

    Raises:
        SearchSpaceError: On duplicate names, a condition on an unknown parameter, a
            condition value the parent can never take, or a cycle of conditions.
    """

    def __init__(self, parameters: Sequence[Parameter], name: str | None = None, source: str | None = None) -> None:
        self.name = name
        self.source = source
        self.parameters: dict[str, Parameter] = {}
        for p in parameters:
            if p.name in self.parameters:
                raise self._error(f"parameters.{p.name}", "is defined twice", p.name, "rename one of them.")
            self.parameters[p.name] = p
        if not self.parameters:
            raise self._error("parameters", "must define at least one parameter", {}, "add a parameter.")
        self._check_conditions()
        self.order: list[str] = self._topological_order()
        #: Names of the parameters that own a model-space column, in column order.
        self.columns: list[str] = [n for n, p in self.parameters.items() if p.column != "none"]
        self._col: dict[str, int] = {n: i for i, n in enumerate(self.columns)}

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], source: str | None = None) -> SearchSpace:
        """Build a space from its dict form (``{"name": ..., "parameters": {...}}``).

        Errors are re-raised with ``source`` prefixed, so they name the file.
        """
        where = f"{source}: " if source else ""
        if not isinstance(spec, Mapping) or "parameters" not in spec:
            raise SearchSpaceError(
                f"{where}(top level)".strip(), "must be a mapping with a 'parameters' key",
                type(spec).__name__, "write parameters: {name: {type: ..., ...}, ...}.",
            )
        if "include" in spec:
            raise SearchSpaceError(f"{where}include", "needs a file to be relative to", shown(spec["include"]),
                                   "load the space with load_space(path), or list the parameters here.")
        from autotune.space._yaml import space_from_spec

        space = space_from_spec(spec, source or "", Path.cwd())
        space.source = source
        return space

    def to_dict(self) -> dict[str, Any]:
        """The dict (YAML) form; ``SearchSpace.from_dict(s.to_dict())`` equals ``s``."""
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        out["parameters"] = {n: p.to_dict() for n, p in self.parameters.items()}
        return out

    def __add__(self, other: SearchSpace) -> SearchSpace:
        """Concatenate two spaces (e.g. an architecture and a training space)."""
        name = "+".join(x for x in (self.name, other.name) if x) or None
        return SearchSpace([*self.parameters.values(), *other.parameters.values()], name=name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and list(self.parameters.values()) == list(other.parameters.values())

    def __repr__(self) -> str:
        return f"SearchSpace({self.name or ''}: {', '.join(f'{n}:{p.kind}' for n, p in self.parameters.items())})"

    def __len__(self) -> int:
        return len(self.parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.parameters.values())

    def __getitem__(self, name: str) -> Parameter:
        return self.parameters[name]

    def _error(self, where: str, rule: str, value: Any, fix: str) -> SearchSpaceError:
        return SearchSpaceError(f"{self.source}: {where}" if self.source else where, rule, value, fix)

    def _check_conditions(self) -> None:
        for p in self.parameters.values():
            for c in p.conditions:
                key = f"parameters.{p.name}.when.{c.parent}"
                if c.parent not in self.parameters:
                    raise self._error(
                        key, "is a condition on an unknown parameter", c.parent,
                        f"define {c.parent!r} or fix the name; known: {', '.join(self.parameters)}.",
                    )
                if c.parent == p.name:
                    raise self._error(key, "a parameter cannot depend on itself", c.parent, "remove the condition.")
                parent = self.parameters[c.parent]
                problem = parent.condition_problem(c)
                if problem is not None:
                    raise self._error(key, problem, shown(c.value), f"compare with a value {c.parent} can take.")

    def _topological_order(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = path[path.index(name):] + [name]
                raise self._error(
                    f"parameters.{name}.when", "conditions form a cycle", " -> ".join(cycle),
                    "make the conditions a tree: a parameter may not depend on itself through others.",
                )
            state[name] = 1
            for c in self.parameters[name].conditions:
                visit(c.parent, path + [name])
            state[name] = 2
            order.append(name)

        for n in self.parameters:
            visit(n, [])
        return order

    # -- conditions -------------------------------------------------------------------------
    def is_active(self, name: str, params: Mapping[str, Any]) -> bool:
        """Whether ``name`` is active given (at least) the values of its ancestors."""
        for c in self.parameters[name].conditions:
            if c.parent not in params or not self.is_active(c.parent, params):
                return False
            if not c.holds(params[c.parent]):
                return False
        return True

    @property
    def tunable(self) -> list[str]:
        """The parameters the optimiser chooses (a column with at least two values)."""
        return [n for n in self.columns if self.parameters[n].n_values != 1]

    @property
    def is_conditional(self) -> bool:
        """Whether any parameter carries a condition."""
        return any(p.conditions for p in self.parameters.values())

    def validate(self, params: Mapping[str, Any], where: str = "params") -> dict[str, Any]:
        """Check a full assignment: every active parameter present and legal, nothing else.

        Returns:
            The parameters, ordered as in the space.

        Raises:
            SearchSpaceError: naming the parameter, the value and the fix.
        """
        out: dict[str, Any] = {}
        for name in self.order:
            p = self.parameters[name]
            if not self.is_active(name, {**params, **out}):
                if name in params:
                    conds = " and ".join(map(str, p.conditions))
                    raise SearchSpaceError(f"{where}.{name}", f"is inactive here (it needs {conds})", shown(params[name]),
                                           "drop it from these parameters.")
                continue
            if name not in params:
                if isinstance(p, Fixed):
                    out[name] = p.value
                    continue
                raise SearchSpaceError(f"{where}.{name}", "is missing (it is active)", None, f"give a value for {name}.")
            rule = p.violation(params[name])
            if rule is not None:
                raise SearchSpaceError(f"{where}.{name}", rule, shown(params[name]), "use a value inside the space.")
            out[name] = params[name]
        extra = sorted(set(params) - set(self.parameters))
        if extra:
            raise SearchSpaceError(f"{where}.{extra[0]}", "is not a parameter of the space", shown(params[extra[0]]),
                                   f"remove it; known: {', '.join(self.parameters)}.")
        return {n: out[n] for n in self.parameters if n in out}

    # -- encoding ---------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Number of model-space columns."""
        return len(self.columns)

    def encode(self, params: Mapping[str, Any]) -> list[float]:
        """Map an assignment to a model-space vector; inactive parameters take their fill value."""
        out: list[float] = []
        for name in self.columns:
            p = self.parameters[name]
            if name in params and self.is_active(name, params):
                out.append(p.encode(params[name]))
            else:
                out.append(p.fill)
        return out

    def decode(self, u: Sequence[float]) -> dict[str, Any]:
        """Map a model-space vector to an assignment holding exactly the active parameters."""
        values: dict[str, Any] = {}
        for name in self.order:
            p = self.parameters[name]
            if not self.is_active(name, values):
                continue
            values[name] = p.value if isinstance(p, Fixed) else p.decode(float(u[self._col[name]]))
        return {n: values[n] for n in self.parameters if n in values}

    def canonicalize(self, u: Sequence[float]) -> list[float]:
        """Snap a model-space vector to the nearest legal point, inactive columns to their fill."""
        return self.encode(self.decode(u))

    def canonicalize_tensor(self, X: torch.Tensor) -> torch.Tensor:
        """:meth:`canonicalize` of every row of a `n x d` tensor, column by column (row by row
        where conditions make a column's legality depend on the others)."""
        import torch

        X = X.detach().to(torch.float64).reshape(-1, self.dim)
        if self.is_conditional:
            return torch.tensor([self.canonicalize(r) for r in X.tolist()], dtype=torch.float64).reshape(-1, self.dim)
        out = torch.empty_like(X)
        for j, name in enumerate(self.columns):
            out[:, j] = self.parameters[name].snap_tensor(X[:, j])
        return out

    def from_unit_tensor(self, U: torch.Tensor) -> torch.Tensor:
        """:meth:`from_unit` of every row of a `n x d` tensor of ``[0, 1)`` values."""
        import torch

        U = U.detach().to(torch.float64).reshape(-1, self.dim)
        cols = [self.parameters[n].from_unit_tensor(U[:, j]) for j, n in enumerate(self.columns)]
        return self.canonicalize_tensor(torch.stack(cols, dim=-1) if cols else U)

    def key(self, params: Mapping[str, Any]) -> tuple[float, ...]:
        """A hashable identity of an assignment (equal for points that decode identically)."""
        return tuple(round(v, _KEY_DECIMALS) for v in self.encode(params))

    def column_kinds(self) -> list[str]:
        """Per column: ``continuous``, ``discrete`` or ``categorical``."""
        return [self.parameters[n].column for n in self.columns]

    def discrete_dims(self) -> dict[int, list[float]]:
        """Ordered discrete columns and their allowed model-space values.

        Integer columns of more than :data:`MAX_ENUMERATED` values are left out: they are
        optimised as continuous columns and snapped (:meth:`canonicalize`).
        """
        return {
            i: self.parameters[n].grid_values() or []
            for i, n in enumerate(self.columns)
            if self.parameters[n].column == "discrete" and self.parameters[n].n_values <= MAX_ENUMERATED
        }

    def cat_dims(self) -> dict[int, list[float]]:
        """Categorical columns and their category indices."""
        return {
            i: self.parameters[n].grid_values() or []
            for i, n in enumerate(self.columns)
            if self.parameters[n].column == "categorical"
        }

    def bounds(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Model-space bounds, a `2 x d` tensor: ``[0, 1]`` per column, ``[0, k-1]`` for categoricals."""
        import torch

        lo = [0.0] * self.dim
        hi = [
            float(len(self.parameters[n].choices) - 1) if isinstance(self.parameters[n], Categorical) else 1.0  # type: ignore[attr-defined]
            for n in self.columns
        ]
        return torch.tensor([lo, hi], dtype=dtype or torch.float64)

    def from_unit(self, v: Sequence[float]) -> list[float]:
        """Map a point of ``[0, 1)^d`` (a Sobol draw) to a legal model-space point.

        Discrete and categorical columns get equal-width bins, so every value is equally likely.
        """
        out = [self.parameters[name].from_unit(float(x)) for name, x in zip(self.columns, v)]
        return self.canonicalize(out)

    def to_unit(self, u: Sequence[float]) -> list[float]:
        """Map a model-space point into ``[0, 1]^d`` (categoricals divided by ``k - 1``), for distances."""
        out: list[float] = []
        for name, x in zip(self.columns, u):
            p = self.parameters[name]
            out.append(float(x) / max(len(p.choices) - 1, 1) if isinstance(p, Categorical) else float(x))
        return out

    def active_mask(self, X: torch.Tensor) -> torch.Tensor:
        """Which columns are active at each model-space point, vectorised.

        Args:
            X: A `... x d` tensor of model-space points.

        Returns:
            A `... x d` boolean tensor.
        """
        import torch

        masks: dict[str, torch.Tensor] = {}
        ones = torch.ones(X.shape[:-1], dtype=torch.bool, device=X.device)
        for name in self.order:
            m = ones
            for c in self.parameters[name].conditions:
                m = m & masks[c.parent] & self._condition_mask(c, X)
            masks[name] = m
        if not self.columns:
            return torch.zeros(*X.shape[:-1], 0, dtype=torch.bool, device=X.device)
        return torch.stack([masks[n] for n in self.columns], dim=-1)

    def _condition_mask(self, c: Condition, X: torch.Tensor) -> torch.Tensor:
        import torch

        parent = self.parameters[c.parent]
        if isinstance(parent, Fixed):
            return torch.full(X.shape[:-1], bool(c.holds(parent.value)), device=X.device)
        col = X[..., self._col[c.parent]]
        if isinstance(parent, Int) and parent.n_values > MAX_ENUMERATED:
            return _holds_tensor(c, parent.decode_tensor(col))
        grid = parent.grid_values()
        if grid is not None:
            g = torch.tensor(grid, dtype=X.dtype, device=X.device)
            idx = (col.unsqueeze(-1) - g).abs().argmin(dim=-1)
            ok = torch.tensor([_safe_holds(c, parent.decode(v)) for v in grid], device=X.device)
            return ok[idx]
        assert isinstance(parent, Float)  # continuous columns are floats by construction
        if c.op in ("in", "not_in", "==", "!="):
            vals = c.value if c.op in ("in", "not_in") else (c.value,)
            hit = torch.zeros_like(col, dtype=torch.bool)
            for v in vals:
                hit |= (col - parent.encode(v)).abs() < 1e-9
            return hit if c.op in ("in", "==") else ~hit
        if not parent.low <= c.value <= parent.high:  # the condition is constant on the range
            return torch.full(X.shape[:-1], _safe_holds(c, parent.low), device=X.device)
        t = parent.encode(c.value)
        return {">=": col >= t, "<=": col <= t, ">": col > t, "<": col < t}[c.op]

    def fill_vector(self) -> list[float]:
        """The fill value of each column (used for inactive parameters)."""
        return [self.parameters[n].fill for n in self.columns]

    # -- designs ----------------------------------------------------------------------------
    def sample(self, n: int, method: str = "sobol", seed: int = 0, skip: int = 0) -> list[dict[str, Any]]:
        """Draw ``n`` assignments by a space-filling or random design.

        Args:
            n: How many.
            method: ``sobol`` (scrambled), ``random``, ``lhs`` (Latin hypercube) or ``grid``.
            seed: Seed of the design.
            skip: Start this far into the design sequence (so successive asks continue it).

        Returns:
            ``n`` assignments (for ``grid``, fewer when the grid is exhausted).
        """
        if method == "grid":
            g = self.grid(seed=seed)
            return g[skip: skip + n]
        if method == "sobol":
            import torch

            eng = torch.quasirandom.SobolEngine(max(self.dim, 1), scramble=True, seed=seed)
            if skip:
                eng.fast_forward(skip)
            pts = eng.draw(n, dtype=torch.float64).tolist()
        elif method == "random":
            rng = _random.Random(f"{seed}:{skip}")
            pts = [[rng.random() for _ in range(self.dim)] for _ in range(n)]
        elif method == "lhs":
            rng = _random.Random(f"lhs:{seed}:{skip}")
            cols = []
            for _ in range(self.dim):
                perm = list(range(n))
                rng.shuffle(perm)
                cols.append([(perm[i] + rng.random()) / n for i in range(n)])
            pts = [[cols[j][i] for j in range(self.dim)] for i in range(n)]
        else:
            raise SearchSpaceError("initial_design", "unknown design", method, "use sobol, random, lhs or grid.")
        return [self.decode(self.from_unit(p)) for p in pts]

    def grid(self, points_per_float: int = 5, max_size: int = 100_000, seed: int | None = None) -> list[dict[str, Any]]:
        """All distinct assignments of a grid over the space.

        Floats get ``points_per_float`` evenly spaced levels (on their own scale); ints with
        more than ``points_per_float * 2`` values are thinned evenly. Assignments that differ
        only in inactive parameters appear once.

        Args:
            points_per_float: Levels per float.
            max_size: Refuse larger grids (raise) so a typo cannot allocate gigabytes.
            seed: If given, shuffle the grid with this seed (so a budget cut samples it evenly).
        """
        levels: list[list[float]] = []
        for name in self.columns:
            p = self.parameters[name]
            grid: list[float] | None
            if isinstance(p, Int) and p.n_values > 2 * points_per_float:  # thinned without listing the range
                k, n = 2 * points_per_float, p.n_values
                grid = sorted({p.encode(p.low + round(i * (n - 1) / (k - 1)) * p.step) for i in range(k)})
            else:
                grid = p.grid_values()
            if grid is None:
                grid = [i / (points_per_float - 1) for i in range(points_per_float)] if points_per_float > 1 else [0.5]
            levels.append(grid)
        size = math.prod(len(lv) for lv in levels)
        if size > max_size:
            raise SearchSpaceError(
                "grid", f"would hold {size} points (more than {max_size})", size,
                "lower points_per_float or use random or sobol search.",
            )
        seen: set[tuple[float, ...]] = set()
        out: list[dict[str, Any]] = []
        for combo in itertools.product(*levels):
            params = self.decode(combo)
            key = self.key(params)
            if key not in seen:
                seen.add(key)
                out.append(params)
        if seed is not None:
            _random.Random(seed).shuffle(out)
        return out


def _holds_tensor(c: Condition, values: torch.Tensor) -> torch.Tensor:
    """:meth:`Condition.holds` over a tensor of numeric parent values."""
    import torch

    v = c.value
    if c.op in ("in", "not_in"):
        hit = torch.zeros_like(values, dtype=torch.bool)
        for item in v:
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                hit |= values == float(item)
        return hit if c.op == "in" else ~hit
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return torch.full_like(values, c.op == "!=", dtype=torch.bool)
    t = float(v)
    return {"==": values == t, "!=": values != t, ">=": values >= t, "<=": values <= t,
            ">": values > t, "<": values < t}[c.op]


def _safe_holds(c: Condition, value: Any) -> bool:
    try:
        return c.holds(value)
    except TypeError:
        return False

