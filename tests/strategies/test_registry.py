"""The strategy registry: built-ins, aliases, option names, and the errors of a bad name or option."""

from __future__ import annotations

import ast
import inspect
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import autotune.strategies._base as base
import autotune.strategies._batch as batch
from autotune.exceptions import ConfigError, UnknownNameError
from autotune.models import GPFitter
from autotune.optimizer import Optimizer
from autotune.space import Categorical, Fixed, Float, SearchSpace
from autotune.strategies import (
    Context,
    OutcomeConstraint,
    Strategy,
    get_strategy,
    option_names,
    register,
    strategy_class,
    strategy_names,
)
from autotune.strategies._sequential import ConfidenceBound, ExpectedImprovement

SPACE = SearchSpace([Float("x", low=0.0, high=1.0)])


def _imports(path: Path, runtime_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = list(ast.walk(tree))
    if runtime_only:  # leave out `if TYPE_CHECKING:` blocks
        hidden = {id(n) for top in tree.body if isinstance(top, ast.If) and "TYPE_CHECKING" in ast.unparse(top.test)
                  for n in ast.walk(top)}
        nodes = [n for n in nodes if id(n) not in hidden]
    imported = {n.module for n in nodes if isinstance(n, ast.ImportFrom) and n.module}
    return imported | {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}


def test_the_base_module_imports_no_strategy_module() -> None:
    """Built-ins register by being imported from the package: the base module has no import cycle.

    It may import the helper modules of the options it parses (cost) and the data it holds
    (the ask's domain), which never import it back.
    """
    imported = {m for m in _imports(Path(base.__file__)) if m.startswith("autotune.strategies")}
    assert imported <= {"autotune.strategies._cost", "autotune.strategies._domain"}, imported
    folder = Path(base.__file__).parent
    helpers = {"_acquisitions", "_cost", "_domain", "_optimize"}  # none registers a strategy or imports the base
    for helper in helpers:
        runtime = {m for m in _imports(folder / f"{helper}.py", runtime_only=True) if m.startswith("autotune.strategies")}
        assert runtime <= {f"autotune.strategies.{h}" for h in helpers}, (helper, runtime)


def test_every_builtin_is_registered_and_aliases_are_listed() -> None:
    names = strategy_names(aliases=False)
    assert {"ei", "ucb", "qei", "thompson", "sobol", "local_penalization"} <= set(names)
    assert "lcb" not in names and "kriging_believer" not in names
    assert {"lcb", "kriging_believer"} <= set(strategy_names())


@pytest.mark.parametrize(("alias", "cls"), [("lcb", ConfidenceBound), ("kriging_believer", ExpectedImprovement)])
def test_an_alias_builds_its_target_with_the_callers_options(alias: str, cls: type[Strategy]) -> None:
    assert strategy_class(alias) is cls
    strat = get_strategy(alias, {"num_restarts": 3, "raw_samples": 30})
    assert type(strat) is cls and strat.options()["raw_samples"] == 30


def test_an_alias_records_its_own_name() -> None:
    opt = Optimizer(SPACE, "kriging_believer", n_initial=1, strategy_options={"num_restarts": 2, "raw_samples": 16})
    (first,) = opt.ask()
    assert first.info["strategy"] == "sobol"  # the initial design
    opt.tell(first, 1.0)
    opt.add({"x": 0.9}, 0.2)
    (s,) = opt.ask()
    assert s.info["strategy"] == "kriging_believer"


def test_an_alias_refuses_an_option_it_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base._ALIASES, "ucb_wide", ("ucb", {"beta": 9.0}))
    assert get_strategy("ucb_wide").options()["beta"] == 9.0
    with pytest.raises(ConfigError, match=r"strategy\.options\.beta: is fixed by the alias 'ucb_wide'.*use strategy 'ucb'"):
        get_strategy("ucb_wide", beta=1.0)


def test_a_strategy_may_not_take_an_alias_name() -> None:
    class Lcb(ExpectedImprovement):
        name = "lcb"

    with pytest.raises(ValueError, match="alias"):
        register(Lcb)


def test_an_unknown_name_offers_the_closest_one() -> None:
    with pytest.raises(UnknownNameError, match=r"study\.strategy\.name: .*did you mean 'lcb'"):
        get_strategy("lbc", where="study.strategy")


@pytest.mark.parametrize("option", ["where", "name", "options", "self"])
def test_any_unknown_option_name_is_a_config_error_naming_it(option: str) -> None:
    with pytest.raises(ConfigError, match=rf"strategy\.options\.{option}: is not an option of strategy 'ei'"):
        get_strategy("ei", {option: 1})
    with pytest.raises(ConfigError, match=rf"^strategy\.options\.{option}: is not an option"):
        Optimizer(SPACE, "ei", strategy_options={option: 1})
    with pytest.raises(ConfigError, match=rf"^sampler\.options\.{option}: is not an option"):
        get_strategy("ei", {option: 1}, where="sampler")  # options as a mapping: no name clashes with ours
    if option != "where":  # as keywords too (`where` is get_strategy's own keyword there)
        with pytest.raises(ConfigError, match=rf"^strategy\.options\.{option}: is not an option"):
            get_strategy("ei", **{option: 1})


def test_an_unknown_option_offers_the_closest_one() -> None:
    with pytest.raises(ConfigError, match=r"raw_sample: .*did you mean 'raw_samples'"):
        Optimizer(SPACE, "ei", strategy_options={"raw_sample": 64})
    with pytest.raises(ConfigError, match="takes no options"):
        get_strategy("sobol", {"beta": 1.0})


@pytest.mark.parametrize(("options", "key"), [({"raw_samples": -5}, "raw_samples"), ({"beta": "x"}, "beta")])
def test_a_bad_option_value_is_refused_at_the_callers_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^strategy\.options\.{key}: "):
        get_strategy("ucb", options)
    with pytest.raises(ConfigError, match=rf"^AutotuneSampler\.strategy\.options\.{key}: "):
        get_strategy("lcb", options, where="AutotuneSampler.strategy")


def test_option_names_are_the_constructor_parameters_and_the_cost_options() -> None:
    constructor = list(inspect.signature(ConfidenceBound.__init__).parameters)[1:]
    assert option_names(ConfidenceBound) == [*constructor, "cost", "cost_exponent"]  # cost-aware
    assert option_names(strategy_class("sobol")) == []


# -- the optimiser ----------------------------------------------------------------------------
@pytest.mark.parametrize("space", [
    SearchSpace([Fixed("epochs", value=3)]),
    SearchSpace([Categorical("opt", ["adam"]), Fixed("epochs", value=3)]),
])
def test_the_optimiser_refuses_a_space_with_nothing_to_tune(space: SearchSpace) -> None:
    with pytest.raises(ConfigError, match=r"^space: has nothing to tune.*Fix: give at least one parameter a range"):
        Optimizer(space)


# -- outcome constraints ----------------------------------------------------------------------
@pytest.mark.parametrize("text", ["c <= nan", "c >= inf", "c <= -inf", "c >= -Infinity"])
def test_a_constraint_bound_must_be_finite(text: str) -> None:
    with pytest.raises(ConfigError, match="must have a finite bound"):
        OutcomeConstraint.parse(text)


@pytest.mark.parametrize("text", [" <= 3", "<=3", "   >= 1e6"])
def test_a_constraint_must_name_a_metric(text: str) -> None:
    with pytest.raises(ConfigError, match="names no metric"):
        OutcomeConstraint.parse(text)


def test_a_good_constraint_still_parses() -> None:
    c = OutcomeConstraint.parse("n_params<= 2e6")
    assert (c.metric, c.op, c.bound) == ("n_params", "<=", 2e6) and math.isfinite(c.bound)


# -- per-ask memo -----------------------------------------------------------------------------
def test_local_penalization_estimates_the_lipschitz_constant_once_per_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counting(model: Any, X: Any, cols: Any = None) -> float:
        calls.append(1)
        return 2.0

    monkeypatch.setattr(batch, "estimate_lipschitz", counting)
    X = torch.tensor([[0.1], [0.5], [0.9]], dtype=torch.float64)
    ctx = Context(space=SPACE, X=X, y=torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64),
                  failed=torch.zeros(3, dtype=torch.bool), fitter=GPFitter(SPACE))
    strat = get_strategy("local_penalization")
    assert [strat.estimate_L(None, ctx) for _ in range(3)] == [2.0, 2.0, 2.0]  # type: ignore[attr-defined]
    assert len(calls) == 1 and ctx.models.memo["lipschitz"] == 2.0
