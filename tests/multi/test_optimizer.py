"""Multi-objective Optimizer API: tell validation, Pareto front, hypervolume, reference point."""

from __future__ import annotations

import math
import random

import pytest
import torch

from autotune import Float, Optimizer, SearchSpace
from autotune.exceptions import ConfigError
from autotune.objectives import Objective, hypervolume, infer_reference_point, non_dominated, parse_objectives
from autotune.trial import TrialState

SPACE = SearchSpace([Float("x0", 0, 1), Float("x1", 0, 1)])
TWO = [Objective("loss", "minimize"), Objective("acc", "maximize")]


def _opt(strategy: str = "sobol", **kw: object) -> Optimizer:
    return Optimizer(SPACE, strategy, objectives=TWO, seed=0, **kw)  # type: ignore[arg-type]


def test_default_strategy_is_qlognehvi_and_single_objective_default_unchanged() -> None:
    assert Optimizer(SPACE, objectives=TWO).strategy_name == "qlognehvi"
    single = Optimizer(SPACE)
    assert single.strategy_name == "ei" and not single.multi_objective and single.objectives == []
    (s,) = single.ask()
    obs = single.tell(s, 1.5)
    assert obs.value == 1.5 and obs.metrics == {}


def test_one_objective_sets_the_direction_and_tell_takes_a_mapping() -> None:
    opt = Optimizer(SPACE, "sobol", objectives=[Objective("acc", "maximize")])
    assert opt.direction == "maximize"
    (s,) = opt.ask()
    assert opt.tell(s, {"acc": 0.9}).value == 0.9


def test_tell_records_every_objective() -> None:
    opt = _opt()
    (s,) = opt.ask()
    obs = opt.tell(s, {"loss": 0.5, "acc": 0.8}, metrics={"n_params": 3.0})
    assert obs.value == 0.5 and obs.metrics == {"loss": 0.5, "acc": 0.8, "n_params": 3.0}
    assert obs.state == TrialState.COMPLETED


@pytest.mark.parametrize(
    ("value", "where", "needle"),
    [
        ({"loss": 0.5}, "['acc']", "missing"),
        ({"loss": 0.5, "acc": 0.1, "lat": 3}, "['lat']", "not an objective"),
        (0.5, "value", "must map each objective"),
        ({"loss": "a", "acc": 0.1}, "['loss']", "real number"),
    ],
)
def test_tell_refuses_malformed_values_atomically(value: object, where: str, needle: str) -> None:
    opt = _opt()
    (s,) = opt.ask()
    with pytest.raises(ConfigError) as e:
        opt.tell(s, value)  # type: ignore[arg-type]
    assert where in e.value.where and needle in str(e.value)
    assert s.trial_id in {p.trial_id for p in opt.pending} and not opt.observations
    opt.tell(s, {"loss": 0.5, "acc": 0.1})  # the corrected call follows
    assert len(opt.observations) == 1


def test_non_finite_objective_records_a_failure() -> None:
    opt = _opt()
    (s, t) = opt.ask(2)
    with pytest.warns(RuntimeWarning, match="not a finite"):
        obs = opt.tell(s, {"loss": math.nan, "acc": 0.1})
    assert obs.state == TrialState.NONFINITE and obs.value is None and "loss" not in obs.metrics
    assert opt.tell(t, None).state == TrialState.NONFINITE


def test_strategy_must_match_the_number_of_objectives() -> None:
    with pytest.raises(ConfigError, match="optimises one objective"):
        Optimizer(SPACE, "ei", objectives=TWO)
    with pytest.raises(ConfigError, match="needs two or more objectives"):
        Optimizer(SPACE, "qlognehvi")
    with pytest.raises(ConfigError, match="needs two or more"):
        Optimizer(SPACE).pareto_front()
    Optimizer(SPACE, "random", objectives=TWO)  # model-free strategies take any number


def test_objectives_and_reference_point_are_validated() -> None:
    with pytest.raises(ConfigError, match="names a metric twice"):
        parse_objectives([Objective("a"), ("a", "maximize")])
    with pytest.raises(ConfigError, match="minimize or maximize"):
        parse_objectives([{"metric": "a", "direction": "down"}])
    with pytest.raises(ConfigError) as e:
        _opt(reference_point={"loss": 1.0})
    assert "reference_point.acc" in e.value.where
    with pytest.raises(ConfigError, match="one value per objective"):
        _opt(reference_point=[1.0])
    with pytest.raises(ConfigError, match="finite"):
        _opt(reference_point={"loss": 1.0, "acc": math.inf})


def _fill(opt: Optimizer, values: list[tuple[float, float]]) -> None:
    for v in values:
        opt.add({"x0": random.random(), "x1": random.random()}, {"loss": v[0], "acc": v[1]})


def test_reference_point_inferred_as_nadir_minus_ten_percent_or_given() -> None:
    opt = _opt()
    assert opt.reference_point() is None
    _fill(opt, [(1.0, 0.5), (2.0, 0.9), (3.0, 0.4)])  # front: (1, .5), (2, .9); (3, .4) dominated
    ref = opt.reference_point()
    assert ref is not None
    assert ref["loss"] == pytest.approx(2.0 + 0.1 * 1.0) and ref["acc"] == pytest.approx(0.5 - 0.1 * 0.4)
    given = _opt(reference_point={"loss": 10.0, "acc": 0.0})
    _fill(given, [(1.0, 0.5)])
    assert given.reference_point() == {"loss": 10.0, "acc": 0.0}
    assert given.hypervolume() == pytest.approx(9.0 * 0.5)


def test_pareto_front_and_hypervolume_properties() -> None:
    rng = random.Random(0)
    for rep in range(20):
        opt = _opt(reference_point={"loss": 1.0, "acc": 0.0})
        pts = [(rng.random(), rng.random()) for _ in range(rng.randint(1, 15))]
        _fill(opt, pts)
        front = {id(o) for o in opt.pareto_front()}
        for o in opt.observations:
            dominated = any(
                p.metrics["loss"] <= o.metrics["loss"] and p.metrics["acc"] >= o.metrics["acc"]
                and (p.metrics["loss"], p.metrics["acc"]) != (o.metrics["loss"], o.metrics["acc"])
                for p in opt.observations
            )
            assert (id(o) in front) == (not dominated), rep
        hist = opt.hypervolume(history=True)
        assert isinstance(hist, list) and all(b >= a - 1e-12 for a, b in zip(hist, hist[1:]))
        assert hist[-1] == pytest.approx(opt.hypervolume())


def test_infeasible_and_failed_trials_stay_off_the_front() -> None:
    opt = _opt(constraints=["n <= 1"], reference_point={"loss": 1.0, "acc": 0.0})
    opt.add({"x0": 0.1, "x1": 0.1}, {"loss": 0.0, "acc": 1.0}, metrics={"n": 5.0})  # best, infeasible
    opt.add({"x0": 0.2, "x1": 0.1}, None, state="failed")
    opt.add({"x0": 0.3, "x1": 0.1}, {"loss": 0.5, "acc": 0.5}, metrics={"n": 0.0})
    assert [o.metrics["loss"] for o in opt.pareto_front()] == [0.5]
    assert opt.hypervolume() == pytest.approx(0.25)
    assert opt.hypervolume(history=True) == pytest.approx([0.0, 0.0, 0.25])


def test_helpers_on_tensors() -> None:
    Y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.2], [math.nan, 3.0]], dtype=torch.float64)
    assert non_dominated(Y).tolist() == [True, True, True, False, False]
    ref = torch.zeros(2, dtype=torch.float64)
    assert hypervolume(Y, ref) == pytest.approx(0.25)  # (1, 0) and (0, 1) are not above the reference point
    assert hypervolume(Y, ref - 1) == pytest.approx(2 + 0.75 + 0.5)  # the staircase, slab by slab
    r = infer_reference_point(Y[:3])
    assert r.tolist() == pytest.approx([-0.1, -0.1])


def test_several_objectives_start_from_twice_the_dimension_plus_one_initial_points() -> None:
    """BoTorch's multi-objective tutorials' 2(d + 1); one objective keeps clip(d + 1, 5, 10)."""
    from autotune.optimizer import default_n_initial

    space = SearchSpace([Float(f"x{i}", 0, 1) for i in range(6)])
    assert Optimizer(space, objectives=TWO, seed=0).n_initial == 14 == default_n_initial(6, 2)
    assert Optimizer(space, seed=0).n_initial == 7 == default_n_initial(6)
    assert Optimizer(space, objectives=TWO, seed=0, n_initial=3).n_initial == 3  # the user's wins
    assert [default_n_initial(d) for d in (1, 4, 9, 20)] == [5, 5, 10, 10]
    opt = Optimizer(SPACE, objectives=TWO, seed=0)
    rng = random.Random(0)
    kinds = []
    for _ in range(7):
        (s,) = opt.ask()
        kinds.append(s.info.get("strategy"))
        opt.tell(s, {"loss": rng.random(), "acc": rng.random()})
    assert kinds == ["sobol"] * 6 + ["qlognehvi"]  # d = 2: six design points, then the model
