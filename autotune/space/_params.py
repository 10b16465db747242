"""Parameter kinds and conditions.

Every parameter maps to at most one column of the *model space*, where the GP and the
acquisition optimiser work:

========== ================================ =====================================
kind       model-space column               decoded back to
========== ================================ =====================================
float      ``[0, 1]`` (linear or log scale)  ``float``
int        ``[0, 1]``, discrete grid         ``int`` (nearest allowed value)
ordinal    ``[0, 1]``, ``k`` evenly spaced  the value at that position
bool       ``{0, 1}``                        ``bool``
categorical ``{0, …, k-1}`` (a category     the choice
           index, modelled by a categorical
           kernel, never rounded from a
           continuous relaxation)
fixed      no column                         its value
========== ================================ =====================================

The encoding is monotone for every ordered kind, so a condition such as ``n_layers >= 3``
can be tested on the encoded column directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from autotune.exceptions import SearchSpaceError, shown

if TYPE_CHECKING:
    import torch

#: Integer bounds beyond this are refused: a float64 model space holds integers exactly up to 2**53.
_MAX_INT = 2**53

Op = Literal["==", "!=", "in", "not_in", ">=", "<=", ">", "<"]
OPS: tuple[str, ...] = ("==", "!=", "in", "not_in", ">=", "<=", ">", "<")


@dataclass(frozen=True)
class Condition:
    """``parent <op> value``: the parameter carrying it is active only when this holds.

    Args:
        parent: Name of the parameter the condition looks at.
        op: One of ``==, !=, in, not_in, >=, <=, >, <``.
        value: The value compared with (a list for ``in``/``not_in``).
    """

    parent: str
    op: Op
    value: Any

    def holds(self, parent_value: Any) -> bool:
        """Evaluate the condition on the parent's decoded value."""
        v = self.value
        if self.op == "==":
            return bool(parent_value == v)
        if self.op == "!=":
            return bool(parent_value != v)
        if self.op == "in":
            return parent_value in v
        if self.op == "not_in":
            return parent_value not in v
        if self.op == ">=":
            return bool(parent_value >= v)
        if self.op == "<=":
            return bool(parent_value <= v)
        if self.op == ">":
            return bool(parent_value > v)
        return bool(parent_value < v)

    def __str__(self) -> str:
        return f"{self.parent} {self.op} {self.value!r}"


@dataclass(frozen=True)
class Parameter:
    """Base class of a search-space parameter.

    Attributes:
        name: The parameter's name (a key of every suggestion in which it is active).
        conditions: All must hold (and their parents be active) for the parameter to be active.
    """

    name: str
    conditions: tuple[Condition, ...] = field(default=(), kw_only=True)

    kind: ClassVar[str] = "abstract"
    #: ``"continuous"``, ``"discrete"`` (ordered grid in [0, 1]), ``"categorical"`` or ``"none"``.
    column: ClassVar[str] = "continuous"

    # -- encoding -------------------------------------------------------------------------
    def encode(self, value: Any) -> float:
        """Map a value to its model-space coordinate."""
        raise NotImplementedError

    def decode(self, u: float) -> Any:
        """Map a model-space coordinate back to a value of the true type."""
        raise NotImplementedError

    def grid_values(self) -> list[float] | None:
        """Allowed model-space values of a discrete/categorical column (``None`` if continuous)."""
        return None

    @property
    def fill(self) -> float:
        """Model-space value given to the column when the parameter is inactive.

        Inactive parameters are imputed with the encoded default so the GP always sees a
        well-defined input; the surrogate's conditional input transform also forces this
        value, so an inactive parameter cannot change a prediction.
        """
        return self.encode(self.default)

    @property
    def default(self) -> Any:
        """A representative value (midpoint on the parameter's own scale, first choice)."""
        raise NotImplementedError

    def violation(self, value: Any) -> str | None:
        """The rule ``value`` breaks (e.g. ``"must be in [0, 1]"``), or ``None`` if it is legal."""
        raise NotImplementedError

    def validate(self, value: Any) -> None:
        """Raise ``ValueError`` if ``value`` is not a legal value of this parameter."""
        rule = self.violation(value)
        if rule is not None:
            raise ValueError(f"{self.name}: {rule}, got {value!r}")

    @property
    def n_values(self) -> float:
        """How many values the parameter takes (``math.inf`` for a float), without listing them."""
        grid = self.grid_values()
        return math.inf if grid is None else len(grid)

    def from_unit(self, x: float) -> float:
        """The model-space value of a point ``x`` of ``[0, 1)``: equal-width bins for a discrete
        column (every value equally likely), ``x`` itself for a continuous one."""
        grid = self.grid_values()
        return float(x) if grid is None else grid[min(int(float(x) * len(grid)), len(grid) - 1)]

    def snap_tensor(self, u: torch.Tensor) -> torch.Tensor:
        """``encode(decode(u))`` of every entry of a float64 tensor: its nearest legal coordinate.

        Here through the few distinct values of a small grid; :class:`Float` and :class:`Int`
        override it with tensor arithmetic.
        """
        import torch

        uniq, inverse = torch.unique(u, return_inverse=True)
        snapped = [self.encode(self.decode(x)) for x in uniq.tolist()]
        return torch.tensor(snapped, dtype=torch.float64, device=u.device)[inverse]

    def from_unit_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`from_unit` of every entry of a float64 tensor of ``[0, 1)`` values."""
        import torch

        grid = self.grid_values()
        if grid is None:
            return x.clone()
        idx = (x * len(grid)).long().clamp(0, len(grid) - 1)
        return torch.tensor(grid, dtype=torch.float64, device=x.device)[idx]

    def condition_problem(self, c: Condition) -> str | None:
        """Why a condition on this parameter can never hold, or ``None`` if some value satisfies it.

        Bounded in time and memory whatever the range (intervals, never a list of an integer
        range's values).
        """
        values = self.finite_values()
        if values is None:  # pragma: no cover - the numeric kinds override this
            return None
        if not any(_safe_holds(c, v) for v in values):
            return f"can never hold: {c.parent} takes only {values}"
        return None

    def finite_values(self) -> list[Any] | None:
        """The values of a small finite parameter (choices, ordinal values, bools, the fixed value)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON form of the parameter (without its name)."""
        out: dict[str, Any] = {"type": self.kind}
        out.update(self._fields())
        if self.conditions:
            out["when"] = {
                c.parent: (c.value if c.op == "==" else {c.op: c.value}) for c in self.conditions
            }
        return out

    def _fields(self) -> dict[str, Any]:
        return {}


def _err(name: str, key: str, rule: str, value: Any, fix: str) -> SearchSpaceError:
    return SearchSpaceError(f"parameters.{name}.{key}", rule, shown(value), fix)  # a null received shows as null


def _check_number(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _err(name, key, "must be a finite number", shown(value), f"give {key} as a number.")
    return float(value)


def _safe_holds(c: Condition, value: Any) -> bool:
    try:
        return c.holds(value)
    except (TypeError, ValueError):
        return False


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _numeric_condition_problem(p: Float | Int, c: Condition) -> str | None:
    """Interval logic for a condition on a float or int parent (nothing is enumerated)."""
    def member(v: Any) -> bool:
        if not _is_number(v) or not p.low <= v <= p.high:
            return False
        if isinstance(p, Int):
            return float(v).is_integer() and (int(v) - p.low) % p.step == 0
        return True

    items = c.value if c.op in ("in", "not_in") else (c.value,)
    for item in items:
        if not _is_number(item):
            return f"compares {c.parent} (a number) with a value that is not a finite number"
    span = f"{c.parent} takes {'integers in' if isinstance(p, Int) else 'values in'} [{p.low}, {p.high}]"
    if isinstance(p, Int) and p.step != 1:
        span += f" in steps of {p.step}"
    if c.op in ("==", "in"):
        ok = any(member(v) for v in items)
    elif c.op == "!=":
        ok = True  # the range holds at least two values
    elif c.op == "not_in":
        hits = {float(v) for v in items if member(v)}
        ok = len(hits) < p.n_values
    else:
        v = float(c.value)
        ok = {">=": p.high >= v, ">": p.high > v, "<=": p.low <= v, "<": p.low < v}[c.op]
    return None if ok else f"can never hold: {span}"


def path_problem(text: Any) -> str | None:
    """Why ``text`` cannot name a file (not a string, empty, a NUL byte, too long), or ``None``."""
    if not isinstance(text, str) or not text:
        return "must be a non-empty path"
    if "\x00" in text:
        return "must not contain a NUL byte"
    if len(text) > 4096 or any(len(part) > 255 for part in text.replace("\\", "/").split("/")):
        return "is too long for a path (4096 characters, 255 per folder or file name)"
    return None


def json_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` is not a plain JSON value (finite numbers), or ``None`` if it is one."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number (not nan or inf)"
    if depth > 20:
        return "nests too deeply"
    if isinstance(value, (list, tuple)):
        for item in value:
            problem = json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                return "must have string keys"
            problem = json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    return f"must be a JSON value (string, number, true/false, null, list or mapping), not {type(value).__name__}"


@dataclass(frozen=True)
class Float(Parameter):
    """A real-valued parameter in ``[low, high]``, on a linear or a log scale."""

    low: float = 0.0
    high: float = 1.0
    log: bool = False
    default_value: float | None = None

    kind: ClassVar[str] = "float"
    column: ClassVar[str] = "continuous"

    def __post_init__(self) -> None:
        lo = _check_number(self.name, "low", self.low)
        hi = _check_number(self.name, "high", self.high)
        if lo >= hi:
            raise _err(self.name, "low", "must be < high", lo, f"use low < high (high is {hi}).")
        if not math.isfinite(hi - lo):
            raise _err(self.name, "high", "must be within a finite distance of low", hi,
                       "use a range narrower than 1e308, or log: true.")
        if self.log and lo <= 0:
            raise _err(
                self.name,
                "low",
                "must be > 0 for a log-scaled float",
                lo,
                "use a positive lower bound such as 1e-5, or set log: false.",
            )
        if self.default_value is not None and self.violation(self.default_value) is not None:
            raise _err(self.name, "default", str(self.violation(self.default_value)), self.default_value,
                       "give a default inside the range.")

    @property
    def default(self) -> float:
        if self.default_value is not None:
            return float(self.default_value)
        if self.log:
            return math.sqrt(self.low * self.high)
        return 0.5 * (self.low + self.high)

    def encode(self, value: Any) -> float:
        v = float(value)
        if self.log:
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def decode(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            v = math.exp(lo + u * (hi - lo))
        else:
            v = self.low + u * (self.high - self.low)
        return min(max(v, self.low), self.high)

    def snap_tensor(self, u: torch.Tensor) -> torch.Tensor:
        import torch

        u = u.clamp(0.0, 1.0)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            v = torch.exp(lo + u * (hi - lo)).clamp(self.low, self.high)
            return (v.log() - lo) / (hi - lo)
        v = (self.low + u * (self.high - self.low)).clamp(self.low, self.high)
        return (v - self.low) / (self.high - self.low)

    def violation(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if not (self.low <= value <= self.high):
            return f"must be in [{self.low}, {self.high}]"
        return None

    @property
    def n_values(self) -> float:
        return math.inf

    def condition_problem(self, c: Condition) -> str | None:
        return _numeric_condition_problem(self, c)

    def _fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.default_value is not None:
            out["default"] = self.default_value
        return out


@dataclass(frozen=True)
class Int(Parameter):
    """An integer parameter in ``[low, high]`` with an optional step, linear or log scale."""

    low: int = 0
    high: int = 1
    log: bool = False
    step: int = 1
    default_value: int | None = None

    kind: ClassVar[str] = "int"
    column: ClassVar[str] = "discrete"

    def __post_init__(self) -> None:
        for key in ("low", "high", "step"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int):
                if isinstance(v, float) and v.is_integer():
                    object.__setattr__(self, key, int(v))
                else:
                    raise _err(self.name, key, "must be an integer", v, f"give {key} as an integer.")
        for key in ("low", "high"):
            if abs(getattr(self, key)) > _MAX_INT:
                raise _err(self.name, key, "must be within +-2**53 (the model space holds integers exactly up to "
                           "there)", getattr(self, key), "use a narrower range, or a float parameter.")
        if self.low >= self.high:
            raise _err(self.name, "low", "must be < high", self.low, f"use low < high (high is {self.high}).")
        if self.step < 1:
            raise _err(self.name, "step", "must be >= 1", self.step, "use a positive integer step.")
        if (self.high - self.low) % self.step:
            raise _err(
                self.name,
                "high",
                f"must be low + a multiple of step ({self.low} + k*{self.step})",
                self.high,
                f"use high: {self.low + (self.high - self.low) // self.step * self.step}.",
            )
        if self.log and self.low <= 0:
            raise _err(self.name, "low", "must be >= 1 for a log-scaled int", self.low, "use low: 1 or set log: false.")
        if self.log and self.step != 1:
            raise _err(self.name, "step", "must be 1 for a log-scaled int", self.step, "drop step or set log: false.")
        if self.default_value is not None and self.violation(self.default_value) is not None:
            raise _err(self.name, "default", str(self.violation(self.default_value)), self.default_value,
                       "give a default inside the range.")

    @property
    def values(self) -> list[int]:
        """All allowed values, ascending (lists them all: check :attr:`n_values` first)."""
        return list(range(self.low, self.high + 1, self.step))

    @property
    def n_values(self) -> int:
        return (self.high - self.low) // self.step + 1

    def from_unit(self, x: float) -> float:
        n = self.n_values
        return self.encode(self.low + min(int(float(x) * n), n - 1) * self.step)

    def decode_tensor(self, u: torch.Tensor) -> torch.Tensor:
        """:meth:`decode` of a tensor of model-space values, as float64 values (exact below 2**53)."""
        import torch

        u = u.to(torch.float64).clamp(0.0, 1.0)
        if not self.log:
            return self.low + torch.round(u * ((self.high - self.low) / self.step)) * self.step
        lo, hi = math.log(self.low), math.log(self.high)
        x = torch.exp(lo + u * (hi - lo))
        below = x.floor().clamp(self.low, self.high)
        above = x.ceil().clamp(self.low, self.high)
        raw_b = (below.log() - lo) / (hi - lo)
        raw_a = (above.log() - lo) / (hi - lo)
        return torch.where((raw_b - u).abs() <= (raw_a - u).abs(), below, above)

    def snap_tensor(self, u: torch.Tensor) -> torch.Tensor:
        return self._raw_tensor(self.decode_tensor(u))

    def from_unit_tensor(self, x: torch.Tensor) -> torch.Tensor:
        k = (x * self.n_values).floor().clamp(0, self.n_values - 1)
        return self._raw_tensor(self.low + k * self.step)

    def _raw_tensor(self, v: torch.Tensor) -> torch.Tensor:
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return (v.log() - lo) / (hi - lo)
        return (v - self.low) / (self.high - self.low)

    def condition_problem(self, c: Condition) -> str | None:
        return _numeric_condition_problem(self, c)

    @property
    def default(self) -> int:
        if self.default_value is not None:
            return int(self.default_value)
        return self.decode(0.5)

    def _raw(self, v: float) -> float:
        if self.log:
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def encode(self, value: Any) -> float:
        return self._raw(int(value))

    def decode(self, u: float) -> int:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            x = math.exp(lo + u * (hi - lo))
            cands = [math.floor(x), math.ceil(x)]
            cands = [min(max(c, self.low), self.high) for c in cands]
            return int(min(cands, key=lambda c: abs(self._raw(c) - u)))
        k = round(u * (self.high - self.low) / self.step)
        return int(self.low + k * self.step)

    def grid_values(self) -> list[float]:
        return [self.encode(v) for v in self.values]

    def violation(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        if not (self.low <= value <= self.high) or (value - self.low) % self.step:
            return f"must be in range({self.low}, {self.high + 1}, {self.step})"
        return None

    def _fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step != 1:
            out["step"] = self.step
        if self.default_value is not None:
            out["default"] = self.default_value
        return out


@dataclass(frozen=True)
class Ordinal(Parameter):
    """An ordered set of values (e.g. batch sizes 16, 32, 64), evenly spaced in the model space."""

    values: tuple[Any, ...] = ()

    kind: ClassVar[str] = "ordinal"
    column: ClassVar[str] = "discrete"

    def __post_init__(self) -> None:
        if not isinstance(self.values, (list, tuple)) or len(self.values) < 2:
            raise _err(
                self.name, "values", "must list at least two values", self.values, "list the ordered values, e.g. [16, 32, 64]."
            )
        object.__setattr__(self, "values", tuple(self.values))
        problem = json_problem(list(self.values))
        if problem:
            raise _err(self.name, "values", f"each value {problem}", list(self.values), "list plain values.")
        if len(set(map(repr, self.values))) != len(self.values):
            raise _err(self.name, "values", "must not repeat a value", list(self.values), "remove the duplicates.")

    @property
    def default(self) -> Any:
        return self.values[(len(self.values) - 1) // 2]

    def index(self, value: Any) -> int:
        """The position of ``value`` (type-exact: ``0`` is not ``False``)."""
        for i, v in enumerate(self.values):
            if v == value and type(v) is type(value):
                return i
        raise ValueError(f"{self.name}: {value!r} is not one of {list(self.values)}")

    def encode(self, value: Any) -> float:
        return self.index(value) / (len(self.values) - 1)

    def decode(self, u: float) -> Any:
        u = min(max(float(u), 0.0), 1.0)
        return self.values[round(u * (len(self.values) - 1))]

    def grid_values(self) -> list[float]:
        return [i / (len(self.values) - 1) for i in range(len(self.values))]

    def violation(self, value: Any) -> str | None:
        try:
            self.index(value)
        except ValueError:
            return f"must be one of {list(self.values)}"
        return None

    def finite_values(self) -> list[Any] | None:
        return list(self.values)

    def _fields(self) -> dict[str, Any]:
        return {"values": list(self.values)}


@dataclass(frozen=True)
class Bool(Parameter):
    """A boolean parameter (``False`` ↦ 0, ``True`` ↦ 1)."""

    kind: ClassVar[str] = "bool"
    column: ClassVar[str] = "discrete"

    @property
    def default(self) -> bool:
        return False

    def encode(self, value: Any) -> float:
        return 1.0 if value else 0.0

    def decode(self, u: float) -> bool:
        return bool(float(u) >= 0.5)

    def grid_values(self) -> list[float]:
        return [0.0, 1.0]

    def violation(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else "must be true or false"

    def finite_values(self) -> list[Any] | None:
        return [False, True]

    def condition_problem(self, c: Condition) -> str | None:
        items = c.value if c.op in ("in", "not_in") else (c.value,)
        if not all(isinstance(v, bool) for v in items):
            return f"compares {c.parent} (true or false) with a value that is not true or false"
        return super().condition_problem(c)


@dataclass(frozen=True)
class Categorical(Parameter):
    """An unordered choice, encoded as a category index and modelled with a categorical kernel."""

    choices: tuple[Any, ...] = ()

    kind: ClassVar[str] = "categorical"
    column: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        if not isinstance(self.choices, (list, tuple)) or len(self.choices) == 0:
            raise _err(
                self.name,
                "choices",
                "must list at least one choice",
                list(self.choices) if isinstance(self.choices, (list, tuple)) else self.choices,
                "list the options, e.g. choices: [relu, tanh].",
            )
        object.__setattr__(self, "choices", tuple(self.choices))
        problem = json_problem(list(self.choices))
        if problem:
            raise _err(self.name, "choices", f"each choice {problem}", list(self.choices), "list plain values.")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise _err(self.name, "choices", "must not repeat a choice", list(self.choices), "remove the duplicates.")

    @property
    def default(self) -> Any:
        return self.choices[0]

    def index(self, value: Any) -> int:
        """The category index of ``value`` (type-exact: ``1`` is not ``True``)."""
        for i, c in enumerate(self.choices):
            if c == value and type(c) is type(value):
                return i
        raise ValueError(f"{self.name}: {value!r} is not one of {list(self.choices)}")

    def encode(self, value: Any) -> float:
        return float(self.index(value))

    def decode(self, u: float) -> Any:
        i = min(max(round(float(u)), 0), len(self.choices) - 1)
        return self.choices[i]

    def grid_values(self) -> list[float]:
        return [float(i) for i in range(len(self.choices))]

    def violation(self, value: Any) -> str | None:
        try:
            self.index(value)
        except ValueError:
            return f"must be one of {list(self.choices)}"
        return None

    def finite_values(self) -> list[Any] | None:
        return list(self.choices)

    def _fields(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


@dataclass(frozen=True)
class Fixed(Parameter):
    """A constant passed to every trial; it takes no model-space column."""

    value: Any = None

    kind: ClassVar[str] = "fixed"
    column: ClassVar[str] = "none"

    def __post_init__(self) -> None:
        problem = json_problem(self.value)
        if problem:
            raise _err(self.name, "value", problem, self.value, "give a plain value (string, number, list...).")

    @property
    def default(self) -> Any:
        return self.value

    def encode(self, value: Any) -> float:
        return 0.0

    def decode(self, u: float) -> Any:
        return self.value

    def violation(self, value: Any) -> str | None:
        return None if value == self.value else f"is fixed to {self.value!r}"

    @property
    def n_values(self) -> int:
        return 1

    def finite_values(self) -> list[Any] | None:
        return [self.value]

    def _fields(self) -> dict[str, Any]:
        return {"value": self.value}


PARAMETER_TYPES: dict[str, type[Parameter]] = {
    cls.kind: cls for cls in (Float, Int, Ordinal, Bool, Categorical, Fixed)
}


def parse_conditions(name: str, when: Any) -> tuple[Condition, ...]:
    """Parse the ``when:`` mapping of a parameter.

    ``{optimizer: sgd}`` means ``optimizer == sgd``; ``{optimizer: [sgd, rmsprop]}`` means
    ``in``; ``{n_layers: {">=": 3}}`` spells the operator out. Several entries must all hold.
    """
    if when is None:
        return ()
    if not isinstance(when, dict) or not when:
        raise _err(
            name, "when", "must map a parent parameter to a value or {op: value}", shown(when),
            'write e.g. when: {optimizer: sgd} or when: {n_layers: {">=": 3}}.',
        )
    out: list[Condition] = []
    for parent, spec in when.items():
        if not isinstance(parent, str) or not parent:
            raise _err(name, "when", "must name parent parameters by their (string) names", parent,
                       "write e.g. when: {optimizer: sgd}.")
        problem = json_problem(spec)
        if problem:
            raise _err(name, f"when.{parent}", f"the compared value {problem}", spec,
                       "compare with a plain value the parent can take.")
        if isinstance(spec, dict):
            if not spec:
                raise _err(name, f"when.{parent}", "must give an operator and a value", spec,
                           f'write e.g. when: {{{parent}: {{">=": 3}}}}.')
            for op, value in spec.items():
                if op not in OPS:
                    raise _err(name, f"when.{parent}", "unknown condition operator", op, f"use one of {', '.join(OPS)}.")
                if op in ("in", "not_in") and not isinstance(value, (list, tuple)):
                    raise _err(name, f"when.{parent}.{op}", "must be a list", value, f"write {op}: [a, b].")
                out.append(Condition(str(parent), op, tuple(value) if isinstance(value, list) else value))  # type: ignore[arg-type]
        elif isinstance(spec, (list, tuple)):
            out.append(Condition(str(parent), "in", tuple(spec)))
        else:
            out.append(Condition(str(parent), "==", spec))
    return tuple(out)


def make_parameter(name: str, spec: Any) -> Parameter:
    """Build a parameter from its YAML/dict form, raising :class:`SearchSpaceError` on bad input."""
    if not isinstance(spec, dict):
        raise SearchSpaceError(
            f"parameters.{name}", "must be a mapping with a 'type'", shown(spec), "write e.g. {type: float, low: 0, high: 1}."
        )
    spec = dict(spec)
    kind = spec.pop("type", None)
    if not isinstance(kind, str) or kind not in PARAMETER_TYPES:
        raise _err(name, "type", "unknown parameter type", shown(kind), f"use one of: {', '.join(PARAMETER_TYPES)}.")
    conditions = parse_conditions(name, spec.pop("when", None))
    allowed = {
        "float": {"low", "high", "log", "default"},
        "int": {"low", "high", "log", "step", "default"},
        "ordinal": {"values"},
        "bool": set(),
        "categorical": {"choices"},
        "fixed": {"value"},
    }[kind]
    unknown = sorted((k for k in spec if k not in allowed), key=str)
    if unknown:
        raise _err(
            name, str(unknown[0]), f"is not an option of a {kind} parameter", shown(spec[unknown[0]]),
            f"remove it; {kind} takes: {', '.join(sorted(allowed | {'type', 'when'}))}.",
        )
    required = {"float": ("low", "high"), "int": ("low", "high"), "ordinal": ("values",), "categorical": ("choices",),
                "fixed": ("value",), "bool": ()}[kind]
    for key in required:
        if key not in spec:
            raise SearchSpaceError(f"parameters.{name}.{key}", f"is required for a {kind} parameter", None,
                                   f"add {key}: ... to parameters.{name}.")
    if "log" in spec and not isinstance(spec["log"], bool):
        raise _err(name, "log", "must be true or false", spec["log"], "write log: true or log: false.")
    if "default" in spec:
        spec["default_value"] = spec.pop("default")
    cls = PARAMETER_TYPES[kind]
    return cls(name=name, conditions=conditions, **spec)

