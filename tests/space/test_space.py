"""Properties of :class:`autotune.space.SearchSpace`: encoding, conditions, designs, validation.

Random assignments are drawn directly from each parameter's definition (not through
``decode``), so the round trip is checked against independently generated values.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import torch

from autotune.exceptions import SearchSpaceError
from autotune.space import Bool, Categorical, Condition, Fixed, Float, Int, Ordinal, Parameter, SearchSpace

N_RANDOM = 300


def rich_space() -> SearchSpace:
    """Every parameter kind, negative and log ranges, stepped ints, mixed-type choices, nested conditions."""
    return SearchSpace(
        [
            Float("lr", low=1e-6, high=1.0, log=True),
            Float("shift", low=-3.5, high=2.25),
            Int("n_layers", low=1, high=4),
            Int("width", low=8, high=4096, log=True),
            Int("stepped", low=-10, high=20, step=5),
            Ordinal("batch_size", values=(16, 32, 64, 128)),
            Ordinal("mix", values=("low", 0.5, 2)),
            Bool("batch_norm"),
            # Type-exact choices: 1, 1.0, True and "1" are different categories.
            Categorical("choice", choices=(1, 1.0, True, "1", None)),
            Categorical("optimizer", choices=("sgd", "adam", "rmsprop")),
            Fixed("epochs", value=3),
            Float("momentum", low=0.0, high=0.99, conditions=(Condition("optimizer", "==", "sgd"),)),
            Bool("nesterov", conditions=(Condition("momentum", ">", 0.5),)),  # grandchild of optimizer
            Int("width_3", low=8, high=64, conditions=(Condition("n_layers", ">=", 3),)),
            Float("beta2", low=0.9, high=0.9999, log=True,
                  conditions=(Condition("optimizer", "in", ("adam", "rmsprop")),)),
            Float("dropout", low=0.0, high=0.5, conditions=(Condition("batch_norm", "==", False),)),
            Categorical("act", choices=("relu", "tanh"), conditions=(Condition("batch_size", "<=", 32),)),
            Float("mix_scale", low=1.0, high=10.0, conditions=(Condition("mix", "!=", "low"),)),
            Int("small_lr_steps", low=1, high=9, conditions=(Condition("lr", "<", 1e-3),)),
        ]
    )


def random_value(p: Parameter, rng: random.Random) -> Any:
    """A legal value of ``p`` drawn from its definition."""
    if isinstance(p, Float):
        if p.log:
            return math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
        return rng.uniform(p.low, p.high)
    if isinstance(p, Int):
        return rng.choice(p.values)
    if isinstance(p, Ordinal):
        return rng.choice(p.values)
    if isinstance(p, Bool):
        return rng.random() < 0.5
    if isinstance(p, Categorical):
        return rng.choice(p.choices)
    assert isinstance(p, Fixed)
    return p.value


def random_assignment(space: SearchSpace, rng: random.Random) -> dict[str, Any]:
    """A legal assignment holding exactly the active parameters, in the space's order."""
    values: dict[str, Any] = {}
    for name in space.order:
        if space.is_active(name, values):
            values[name] = random_value(space[name], rng)
    return {n: values[n] for n in space.parameters if n in values}


def same_value(a: Any, b: Any, p: Parameter) -> bool:
    if isinstance(p, Float):
        if type(b) is not float:
            return False
        if p.log:
            return math.isclose(a, b, rel_tol=1e-12)
        return abs(a - b) <= 1e-12 * (p.high - p.low)
    return type(a) is type(b) and a == b


# -- encoding -----------------------------------------------------------------------------------
def test_decode_encode_round_trip_is_type_exact() -> None:
    space = rich_space()
    rng = random.Random(0)
    for _ in range(N_RANDOM):
        p = random_assignment(space, rng)
        back = space.decode(space.encode(p))
        assert list(back) == list(p), (p, back)  # same active set, same order
        for name, v in p.items():
            assert same_value(v, back[name], space[name]), (name, v, back[name])


def test_round_trip_at_the_bounds() -> None:
    for p in rich_space():
        if isinstance(p, Float):
            for v in (p.low, p.high):
                back = p.decode(p.encode(v))
                assert same_value(v, back, p) and p.low <= back <= p.high
        elif isinstance(p, Int):
            assert p.decode(p.encode(p.low)) == p.low and p.decode(p.encode(p.high)) == p.high


def test_encoding_is_monotone_for_ordered_kinds() -> None:
    space = rich_space()
    for p in space:
        if isinstance(p, Int):
            enc = [p.encode(v) for v in p.values]
        elif isinstance(p, Ordinal):
            enc = [p.encode(v) for v in p.values]
        elif isinstance(p, Float):
            xs = [p.low + (p.high - p.low) * i / 50 for i in range(51)]
            enc = [p.encode(x) for x in xs]
        else:
            continue
        assert all(a < b for a, b in zip(enc, enc[1:])), p.name
        assert math.isclose(enc[0], 0.0, abs_tol=1e-12) and math.isclose(enc[-1], 1.0, abs_tol=1e-12)


def test_inactive_parameters_are_encoded_as_their_fill_value() -> None:
    space = rich_space()
    rng = random.Random(1)
    fill = space.fill_vector()
    for _ in range(50):
        p = random_assignment(space, rng)
        u = space.encode(p)
        for i, name in enumerate(space.columns):
            if name not in p:
                assert u[i] == fill[i]
        # Adding an inactive parameter's value does not change the encoding.
        extra = dict(p)
        for name in space.columns:
            if name not in p:
                extra[name] = random_value(space[name], rng)
        assert space.encode(extra) == u
        assert space.key(extra) == space.key(p)


def test_canonicalize_is_idempotent_on_raw_points() -> None:
    space = rich_space()
    g = torch.Generator().manual_seed(2)
    hi = space.bounds()[1]
    for u in (torch.rand(100, space.dim, generator=g, dtype=torch.float64) * hi).tolist():
        c = space.canonicalize(u)
        assert space.canonicalize(c) == c
        assert space.validate(space.decode(c)) == space.decode(c)


def unconditional(space: SearchSpace) -> SearchSpace:
    """``space`` without its conditional parameters."""
    return SearchSpace([p for p in space.parameters.values() if not p.conditions])


@pytest.mark.parametrize("conditional", [False, True])
def test_canonicalize_tensor_matches_the_row_by_row_snap(conditional: bool) -> None:
    space = rich_space() if conditional else unconditional(rich_space())
    g = torch.Generator().manual_seed(3)
    lo, hi = space.bounds()
    raw = torch.rand(400, space.dim, generator=g, dtype=torch.float64) * (hi - lo + 0.4) + lo - 0.2  # some outside
    # grid points and exact midpoints between grid values (ties) as well as random points
    grid = space.from_unit_tensor(torch.rand(100, space.dim, generator=g, dtype=torch.float64))
    X = torch.cat([raw, grid, (grid[:50] + grid[50:]) / 2])
    fast = space.canonicalize_tensor(X)
    rows = torch.tensor([space.canonicalize(r) for r in X.tolist()], dtype=torch.float64)
    torch.testing.assert_close(fast, rows, rtol=0, atol=1e-12)
    assert [space.decode(r) for r in fast.tolist()] == [space.decode(r) for r in rows.tolist()]


@pytest.mark.parametrize("conditional", [False, True])
def test_from_unit_tensor_matches_the_row_by_row_map(conditional: bool) -> None:
    space = rich_space() if conditional else unconditional(rich_space())
    U = torch.quasirandom.SobolEngine(space.dim, scramble=True, seed=4).draw(256, dtype=torch.float64)
    U = torch.cat([U, torch.zeros(1, space.dim), torch.full((1, space.dim), 1 - 1e-12)])
    fast = space.from_unit_tensor(U)
    rows = torch.tensor([space.from_unit(u) for u in U.tolist()], dtype=torch.float64)
    torch.testing.assert_close(fast, rows, rtol=0, atol=1e-12)


def test_categorical_and_bool_decode_by_nearest_value() -> None:
    cat = Categorical("c", choices=("a", "b", "c"))
    assert [cat.decode(u) for u in (0.0, 0.49, 0.51, 1.49, 1.6, 2.0, 7.0, -3.0)] == list("aabbccca")
    assert [Bool("b").decode(u) for u in (0.0, 0.49, 0.5, 1.0)] == [False, False, True, True]


def test_ordinal_encoding_is_type_exact_like_categorical() -> None:
    o = Ordinal("o", values=(False, 0, 1))  # accepted: the values' reprs differ
    o.validate(0)
    assert type(o.decode(o.encode(0))) is int


# -- conditions -------------------------------------------------------------------------------
def test_active_mask_agrees_with_is_active_on_random_model_space_points() -> None:
    space = rich_space()
    g = torch.Generator().manual_seed(3)
    U = torch.rand(N_RANDOM, space.dim, generator=g, dtype=torch.float64) * space.bounds()[1]
    mask = space.active_mask(U)
    assert mask.shape == U.shape and mask.dtype == torch.bool
    seen_active = torch.zeros(space.dim, dtype=torch.bool)
    seen_inactive = torch.zeros(space.dim, dtype=torch.bool)
    for row, m in zip(U.tolist(), mask):
        params = space.decode(row)
        expected = [name in params for name in space.columns]
        assert m.tolist() == expected, (params, m.tolist(), expected)
        seen_active |= m
        seen_inactive |= ~m
    conditional = torch.tensor([bool(space[n].conditions) for n in space.columns])
    assert bool(seen_active.all())  # every column active somewhere
    assert bool((seen_inactive == conditional).all())  # exactly the conditional ones inactive somewhere


def test_active_mask_keeps_batch_shape() -> None:
    space = rich_space()
    X = torch.rand(3, 5, space.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    assert space.active_mask(X).shape == (3, 5, space.dim)
    assert torch.equal(space.active_mask(X).reshape(15, -1), space.active_mask(X.reshape(15, -1)))


def test_active_mask_agrees_with_is_active_for_a_threshold_outside_the_parent_range() -> None:
    space = SearchSpace([
        Float("x", low=0.0, high=1.0),
        Float("y", low=0.0, high=1.0, conditions=(Condition("x", "<", 2.0),)),  # always holds
        Float("z", low=0.0, high=1.0, conditions=(Condition("x", ">", -1.0),)),  # always holds
    ])
    X = torch.tensor([[0.0, 0.5, 0.5], [0.5, 0.5, 0.5], [1.0, 0.5, 0.5]], dtype=torch.float64)
    for row, m in zip(X.tolist(), space.active_mask(X).tolist()):
        assert m == [name in space.decode(row) for name in space.columns]


def test_is_active_requires_the_parent_to_be_active() -> None:
    space = rich_space()
    # nesterov needs momentum > 0.5, and momentum needs optimizer == sgd.
    assert space.is_active("nesterov", {"optimizer": "sgd", "momentum": 0.9})
    assert not space.is_active("nesterov", {"optimizer": "adam", "momentum": 0.9})
    assert not space.is_active("nesterov", {"optimizer": "sgd", "momentum": 0.1})


@pytest.mark.parametrize("method", ["sobol", "random", "lhs"])
def test_sample_respects_conditions(method: str) -> None:
    space = rich_space()
    pts = space.sample(64, method, seed=5)
    assert len(pts) == 64
    for p in pts:
        assert space.validate(p) == p  # every active parameter present and legal, nothing inactive
        for name in space.parameters:
            assert (name in p) == space.is_active(name, p)
    for name in ("momentum", "width_3", "beta2", "act"):
        present = sum(name in p for p in pts)
        assert 0 < present < len(pts), name  # the design reaches both branches


def test_sample_is_seeded_and_skip_continues_the_sequence() -> None:
    space = rich_space()
    assert space.sample(8, "sobol", seed=1) == space.sample(8, "sobol", seed=1)
    assert space.sample(8, "sobol", seed=1) != space.sample(8, "sobol", seed=2)
    assert space.sample(8, "sobol", seed=1)[4:] == space.sample(4, "sobol", seed=1, skip=4)


def test_lhs_stratifies_every_column() -> None:
    space = SearchSpace([Float("a", low=0.0, high=1.0), Float("b", low=-1.0, high=1.0)])
    n = 20
    pts = space.sample(n, "lhs", seed=7)
    for name in ("a", "b"):
        bins = sorted(int(space[name].encode(p[name]) * n) for p in pts)
        assert bins == list(range(n))


def test_grid_dedupes_conditional_duplicates() -> None:
    space = SearchSpace([
        Float("lr", low=1e-4, high=1e-1, log=True),
        Categorical("optimizer", choices=("sgd", "adam", "rmsprop")),
        Float("momentum", low=0.0, high=0.9, conditions=(Condition("optimizer", "==", "sgd"),)),
        Bool("nesterov", conditions=(Condition("optimizer", "==", "sgd"),)),
    ])
    k = 3
    grid = space.grid(points_per_float=k)
    # lr levels x (sgd: momentum levels x nesterov + adam + rmsprop)
    assert len(grid) == k * (k * 2 + 1 + 1)
    assert len({space.key(p) for p in grid}) == len(grid)
    assert len({tuple(sorted(p.items(), key=lambda kv: kv[0])) for p in grid}) == len(grid)
    for p in grid:
        assert space.validate(p) == p
    assert sorted(map(repr, space.grid(points_per_float=k, seed=1))) == sorted(map(repr, grid))


def test_grid_refuses_to_allocate_a_huge_grid() -> None:
    space = SearchSpace([Float(f"x{i}", low=0.0, high=1.0) for i in range(8)])
    with pytest.raises(SearchSpaceError) as e:
        space.grid(points_per_float=10, max_size=1000)
    assert str(e.value) == (
        "grid: would hold 100000000 points (more than 1000), got 100000000. "
        "Fix: lower points_per_float or use random or sobol search."
    )


def test_from_dict_to_dict_round_trip() -> None:
    space = rich_space()
    assert SearchSpace.from_dict(space.to_dict()) == space


# -- validation -------------------------------------------------------------------------------
def small_space() -> SearchSpace:
    return SearchSpace([
        Categorical("optimizer", choices=("sgd", "adam")),
        Float("momentum", low=0.0, high=0.99, conditions=(Condition("optimizer", "==", "sgd"),)),
        Int("n_layers", low=1, high=4),
        Fixed("epochs", value=3),
    ])


def test_validate_fills_fixed_and_orders_the_parameters() -> None:
    space = small_space()
    assert list(space.validate({"n_layers": 2, "optimizer": "adam"})) == ["optimizer", "n_layers", "epochs"]
    assert space.validate({"n_layers": 2, "optimizer": "adam"})["epochs"] == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"optimizer": "sgd", "n_layers": 2},
            "params.momentum: is missing (it is active). Fix: give a value for momentum.",
        ),
        (
            {"optimizer": "adam", "momentum": 0.5, "n_layers": 2},
            "params.momentum: is inactive here (it needs optimizer == 'sgd'), got 0.5. "
            "Fix: drop it from these parameters.",
        ),
        (
            {"optimizer": "adam", "n_layers": 7},
            "params.n_layers: must be in range(1, 5, 1), got 7. Fix: use a value inside the space.",
        ),
        (
            {"optimizer": "nadam", "n_layers": 2},
            "params.optimizer: must be one of ['sgd', 'adam'], got 'nadam'. Fix: use a value inside the space.",
        ),
        (
            {"optimizer": "adam", "n_layers": 2, "width": 3},
            "params.width: is not a parameter of the space, got 3. "
            "Fix: remove it; known: optimizer, momentum, n_layers, epochs.",
        ),
    ],
)
def test_validate_errors_name_the_parameter_value_and_fix(params: dict[str, Any], message: str) -> None:
    with pytest.raises(SearchSpaceError) as e:
        small_space().validate(params)
    assert str(e.value) == message


@pytest.mark.parametrize(
    ("params", "value"),
    [({"optimizer": "adam", "n_layers": 2.0}, "2.0"), ({"optimizer": "adam", "n_layers": 2, "epochs": 4}, "4")],
)
def test_validate_names_the_value_once(params: dict[str, Any], value: str) -> None:
    with pytest.raises(SearchSpaceError) as e:
        small_space().validate(params)
    assert str(e.value).count(f"got {value}") == 1, str(e.value)


def test_bool_is_not_an_int_and_int_is_not_a_bool() -> None:
    space = SearchSpace([Int("n", low=0, high=3), Bool("b")])
    with pytest.raises(SearchSpaceError):
        space.validate({"n": True, "b": False})
    with pytest.raises(SearchSpaceError):
        space.validate({"n": 1, "b": 1})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: SearchSpace([Int("a", low=0, high=3), Int("a", low=0, high=3)]),
            "parameters.a: is defined twice, got 'a'. Fix: rename one of them.",
        ),
        (
            lambda: SearchSpace([Float("a", low=0.0, high=1.0, conditions=(Condition("zz", "==", 1),))]),
            "parameters.a.when.zz: is a condition on an unknown parameter, got 'zz'. "
            "Fix: define 'zz' or fix the name; known: a.",
        ),
        (
            lambda: SearchSpace([
                Categorical("opt", choices=("sgd", "adam")),
                Float("m", low=0.0, high=1.0, conditions=(Condition("opt", "==", "nadam"),)),
            ]),
            "parameters.m.when.opt: can never hold: opt takes only ['sgd', 'adam'], got 'nadam'. "
            "Fix: compare with a value opt can take.",
        ),
        (
            lambda: SearchSpace([
                Bool("a", conditions=(Condition("c", "==", True),)),
                Bool("b", conditions=(Condition("a", "==", True),)),
                Bool("c", conditions=(Condition("b", "==", True),)),
            ]),
            "parameters.a.when: conditions form a cycle, got 'a -> c -> b -> a'. "
            "Fix: make the conditions a tree: a parameter may not depend on itself through others.",
        ),
        (
            lambda: Float("lr", low=0.0, high=1.0, log=True),
            "parameters.lr.low: must be > 0 for a log-scaled float, got 0.0. "
            "Fix: use a positive lower bound such as 1e-5, or set log: false.",
        ),
        (
            lambda: Int("n", low=1, high=10, step=4),
            "parameters.n.high: must be low + a multiple of step (1 + k*4), got 10. Fix: use high: 9.",
        ),
        (
            lambda: SearchSpace([]),
            "parameters: must define at least one parameter, got {}. Fix: add a parameter.",
        ),
    ],
)
def test_definition_errors(build: Any, message: str) -> None:
    with pytest.raises(SearchSpaceError) as e:
        build()
    assert str(e.value) == message
