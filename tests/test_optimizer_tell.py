"""The optimiser's ask/tell contract: a refused call changes nothing, every result is checked.

Faults injected by hand: a bad state, a string value, a dict passed as the value, bad
metrics, an unknown or twice-told trial, huge and non-finite values, absurd ``ask(n)``.
After each refused call the suggestion must still be pending and the corrected call must
record it (no trial lost).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest

from autotune.exceptions import ConfigError
from autotune.optimizer import MAX_ASK, Optimizer, Suggestion, best_feasible, feasible
from autotune.space import Float, SearchSpace
from autotune.strategies import OutcomeConstraint
from autotune.trial import Observation, TrialState

SPACE = SearchSpace([Float("x", low=0.0, high=1.0)])


def fresh(**kw: Any) -> tuple[Optimizer, Suggestion]:
    opt = Optimizer(SPACE, "random", seed=0, **kw)
    (s,) = opt.ask()
    return opt, s


BAD_CALLS = [
    pytest.param({"value": 1.0, "state": "bogus"}, "state", "bogus", id="unknown-state"),
    pytest.param({"value": 1.0, "state": "running"}, "state", "running", id="non-terminal-state"),
    pytest.param({"value": "abc"}, "value", "abc", id="string-value"),
    pytest.param({"value": {"val_loss": 1.0}}, "value", "val_loss", id="dict-as-value"),
    pytest.param({"value": True}, "value", "True", id="bool-value"),
    pytest.param({"value": [1.0]}, "value", "[1.0]", id="list-value"),
    pytest.param({"value": 1.0, "metrics": [("c", 1.0)]}, "metrics", "'c'", id="metrics-not-a-mapping"),
    pytest.param({"value": 1.0, "metrics": {"c": "high"}}, "metrics['c']", "high", id="metric-not-a-number"),
    pytest.param({"value": 1.0, "metrics": {3: 1.0}}, "metrics", "3", id="metric-name-not-a-string"),
]


@pytest.mark.parametrize(("kwargs", "argument", "shown"), BAD_CALLS)
def test_a_refused_tell_names_the_argument_and_leaves_the_trial_pending(
    kwargs: dict[str, Any], argument: str, shown: str
) -> None:
    opt, s = fresh(constraints=["c <= 1"])
    with pytest.raises(ConfigError) as info:
        opt.tell(s, **kwargs)
    msg = str(info.value)
    assert msg.startswith(f"Optimizer.tell: {argument}:"), msg
    assert shown in msg and "Fix:" in msg
    assert [p.trial_id for p in opt.pending] == [s.trial_id]
    assert opt.observations == []
    obs = opt.tell(s, 0.5, metrics={"c": 0.2})  # the corrected call records the trial
    assert obs.state is TrialState.COMPLETED and obs.value == 0.5 and obs.trial_id == s.trial_id
    assert opt.pending == [] and opt.observations == [obs]
    assert opt.best() is obs


def test_telling_an_unknown_trial_names_the_pending_ones() -> None:
    opt, s = fresh()
    with pytest.raises(ConfigError, match=r"Optimizer.tell: trial: must be a pending trial; trial 7 was never asked"
                       r".*got 7\. Fix: tell one of the pending trials \[0\]"):
        opt.tell(7, 1.0)
    assert opt.pending == [s]


def test_telling_a_trial_twice_says_it_was_already_told() -> None:
    opt, s = fresh()
    opt.tell(s, 1.0)
    with pytest.raises(ConfigError, match="trial 0 was already told.*none are pending"):
        opt.tell(s, 2.0)
    assert [o.value for o in opt.observations] == [1.0]


@pytest.mark.parametrize("trial", ["0", True, 0.0, None])
def test_a_trial_that_is_neither_a_suggestion_nor_an_id_is_refused(trial: Any) -> None:
    opt, s = fresh()
    with pytest.raises(ConfigError, match="Optimizer.tell: trial: must be a Suggestion or its integer trial_id"):
        opt.tell(trial, 1.0)
    assert opt.pending == [s]


@pytest.mark.parametrize("value", [10**400, -(10**400), math.nan, math.inf, -math.inf], ids=str)
def test_a_non_finite_or_overflowing_value_is_a_failed_trial_with_a_warning(value: Any) -> None:
    opt, s = fresh()
    with pytest.warns(RuntimeWarning, match="trial 0: the objective value .* recorded as failed"):
        obs = opt.tell(s, value)
    assert obs.state is TrialState.NONFINITE and obs.value is None
    assert opt.observations == [obs] and opt.pending == [] and opt.best() is None


def test_a_failure_state_drops_the_value_and_none_is_a_quiet_failure() -> None:
    opt = Optimizer(SPACE, "random", seed=0)
    a, b = opt.ask(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither call warns
        assert opt.tell(a, 3.0, state="oom").value is None
        assert opt.tell(b, None).state is TrialState.NONFINITE


def test_a_killed_trial_leaves_the_pending_set_without_being_learned() -> None:
    opt, s = fresh()
    obs = opt.tell(s, None, state=TrialState.KILLED)
    assert obs.state is TrialState.KILLED and opt.pending == [] and opt.observations == []


def test_numpy_numbers_and_huge_metrics_are_accepted() -> None:
    np = pytest.importorskip("numpy")
    opt, s = fresh(constraints=["c <= 1"])
    obs = opt.tell(s, np.float32(0.25), metrics={"c": np.int64(1), "big": 10**400, "missing": None})
    assert obs.value == 0.25 and obs.metrics["c"] == 1.0
    assert obs.metrics["big"] == math.inf and math.isnan(obs.metrics["missing"])
    assert opt.best() is obs


def test_a_refused_add_changes_nothing() -> None:
    opt = Optimizer(SPACE, "random", seed=0)
    with pytest.raises(ConfigError, match="Optimizer.add: value"):
        opt.add({"x": 0.5}, "abc")
    with pytest.raises(ConfigError, match="Optimizer.add: trial_id"):
        opt.add({"x": 0.5}, 1.0, trial_id="3")  # type: ignore[arg-type]
    assert opt.observations == []
    (s,) = opt.ask()
    assert s.trial_id == 0  # no id was used up by the refused calls
    assert opt.add({"x": 0.5}, 1.0, trial_id=5).trial_id == 5


@pytest.mark.parametrize("n", [0, -1, MAX_ASK + 1, 10**7, True, 2.0, "3"])
def test_ask_refuses_a_count_outside_one_to_the_maximum(n: Any) -> None:
    opt = Optimizer(SPACE, "random", seed=0)
    with pytest.raises(ConfigError, match=r"Optimizer.ask: n: must be an integer from 1 to 10,000"):
        opt.ask(n)
    assert opt.pending == []


def test_feasibility_has_one_rule() -> None:
    cons = [OutcomeConstraint.parse("c <= 1"), OutcomeConstraint.parse("d >= 0")]
    assert feasible({"c": 1.0, "d": 0.0}, cons)
    assert not feasible({"c": 1.1, "d": 0.0}, cons)
    assert not feasible({"c": math.nan, "d": 0.0}, cons)
    assert not feasible({"d": 0.0}, cons)
    obs = [
        Observation({"x": 0.1}, 0.1, metrics={"c": 2.0, "d": 1.0}),  # best value, infeasible
        Observation({"x": 0.2}, 0.3, metrics={"c": 0.5, "d": 1.0}),
        Observation({"x": 0.3}, None, TrialState.FAILED, metrics={"c": 0.5, "d": 1.0}),
        Observation({"x": 0.4}, 0.2, metrics={"c": 0.5, "d": 1.0}),
    ]
    assert best_feasible(obs, cons, minimize=True) is obs[3]
    assert best_feasible(obs, cons, minimize=False) is obs[1]
    assert best_feasible(obs, [], minimize=True) is obs[0]
    rows = [(0.1, {"c": 0.0, "d": 0.0}), (0.05, {"c": 0.0})]  # any record type, through accessors
    assert best_feasible(rows, cons, minimize=True, value=lambda r: r[0], metrics=lambda r: r[1]) == rows[0]


def test_a_batch_that_finishes_the_initial_design_names_each_points_strategy() -> None:
    """``ask(2)`` one point short of ``n_initial``: a Sobol point then the model's, each tagged as
    such (the whole batch was recorded as the model's: the MLflow record then miscounted the design)."""
    opt = Optimizer(SearchSpace([Float("x", 0.0, 1.0)]), "ei", n_initial=3, seed=0)
    for s in opt.ask(2):
        opt.tell(s, (s.params["x"] - 0.3) ** 2)
    assert [s.info["strategy"] for s in opt.ask(2)] == ["sobol", "ei"]
