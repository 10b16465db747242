"""User-set length-scale bounds: converted from the parameters' units, held by every fit, validated."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from autotune.exceptions import ConfigError, StudyConfigError
from autotune.models import GPFitter, length_scale_bounds
from autotune.optimizer import Optimizer
from autotune.space import Categorical, Float, Int, SearchSpace
from autotune.study import load_study_config
from tests.study.helpers import study_dict


def _lengthscale(model: object) -> torch.Tensor:
    return model.covar_module.lengthscale.detach().reshape(-1)  # type: ignore[attr-defined]


def test_sizes_convert_to_the_model_space() -> None:
    space = SearchSpace([Float("x", 0.0, 10.0), Float("lr", 1e-4, 1e-1, log=True), Int("n", 0, 100)])
    b = length_scale_bounds(space, {"x": 0.5, "lr": 10.0}, {"n": 20})
    assert b is not None
    assert b.lower[0] == pytest.approx(0.05) and b.lower[1] == pytest.approx(1 / 3)  # a decade of three
    assert b.lower[2] == pytest.approx(0.025) and b.upper[2] == pytest.approx(0.2)
    assert math.isinf(b.upper[0]) and b.capped
    assert length_scale_bounds(space) is None


@pytest.mark.parametrize("seed", range(4))
def test_the_bounds_hold_after_every_fit(seed: int) -> None:
    """Property: white noise pulls the length scale down, a plane pushes it up; the bounds win."""
    space = SearchSpace([Float("x", 0.0, 2.0), Float("y", 0.0, 1.0)])
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(24, 2, generator=g, dtype=torch.float64)
    fitter = GPFitter(space, bounds=length_scale_bounds(space, {"x": 0.4}, {"y": 0.1}))
    for n in (12, 13, 24):  # a cold fit, a warm one, one that refits after growth
        noise = torch.randn(n, 1, generator=g, dtype=torch.float64)
        ls = _lengthscale(fitter.fit("noise", X[:n], noise))
        assert ls[0] >= 0.2 * (1 - 1e-6)  # 0.4 of a range of 2
        plane = X[:n, :1] + X[:n, 1:]
        ls = _lengthscale(fitter.fit("plane", X[:n], plane))
        assert ls[1] <= 0.1 * (1 + 1e-6)
    free = _lengthscale(GPFitter(space).fit("plane", X, X[:, :1] + X[:, 1:]))
    assert free[1] > 0.1  # without the bound the plane's length scale is long: the cap changed it


def test_the_bounds_reach_the_kernel_of_a_mixed_space() -> None:
    space = SearchSpace([Float("x", 0.0, 1.0), Categorical("c", ("a", "b")), Float("y", 0.0, 1.0)])
    pts = space.sample(10, "sobol", seed=0)
    X = torch.tensor([space.encode(p) for p in pts], dtype=torch.float64)
    Y = X[:, :1] + X[:, 2:]
    model = GPFitter(space, bounds=length_scale_bounds(space, max_length_scale={"y": 0.07})).fit("o", X, Y)
    ordered = model.covar_module.base_kernel.kernels[0]  # type: ignore[attr-defined]
    assert float(ordered.lengthscale.detach().reshape(-1)[1]) <= 0.07 * (1 + 1e-6)


@pytest.mark.parametrize(
    ("low", "high", "where", "rule"),
    [
        ({"z": 0.1}, None, "min_length_scale.z", "is not a parameter"),
        ({"c": 0.1}, None, "min_length_scale.c", "float and int parameters only"),
        ({"x": 0.0}, None, "min_length_scale.x", "positive finite"),
        ({"x": "0.1"}, None, "min_length_scale.x", "positive finite"),
        (None, {"x": math.inf}, "max_length_scale.x", "positive finite"),
        (None, {"lr": 0.5}, "max_length_scale.lr", "factor > 1"),
        ({"x": 0.5}, {"x": 0.1}, "min_length_scale.x", "must not exceed max_length_scale"),
        ([0.1], None, "min_length_scale", "must map parameter names"),
    ],
)
def test_bad_bounds_name_the_key_the_value_and_the_fix(low: object, high: object, where: str, rule: str) -> None:
    space = SearchSpace([Float("x", 0.0, 1.0), Float("lr", 1e-4, 1e-1, log=True), Categorical("c", ("a", "b"))])
    with pytest.raises(ConfigError) as info:
        Optimizer(space, "ei", min_length_scale=low, max_length_scale=high)  # type: ignore[arg-type]
    assert info.value.where == f"Optimizer.{where}" and rule in info.value.rule and info.value.fix


def test_the_study_file_takes_the_bounds_and_refuses_bad_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(study_dict(model={"max_length_scale": {"x": 0.2, "y": 0.2}})), encoding="utf-8")
    cfg = load_study_config("x.yaml")
    assert cfg.model.max_length_scale == {"x": 0.2, "y": 0.2}
    from autotune.study import StudyRecord

    built = StudyRecord(cfg).new_optimizer()
    assert built.fitter.bounds is not None
    assert built.fitter.bounds.upper == pytest.approx((0.05, 0.05))  # 0.2 of a range of 4
    path.write_text(yaml.safe_dump(study_dict(model={"max_length_scale": {"x": -1}})), encoding="utf-8")
    with pytest.raises(StudyConfigError) as info:
        load_study_config("x.yaml")
    assert info.value.where == "x.yaml: model.max_length_scale.x" and info.value.value == -1
    path.write_text(yaml.safe_dump(study_dict(model={"max_lengthscale": {"x": 1}})), encoding="utf-8")
    with pytest.raises(StudyConfigError, match="max_length_scale"):  # did you mean
        load_study_config("x.yaml")


def test_the_capped_gp_stays_uncertain_in_a_gap_where_a_narrow_feature_can_hide() -> None:
    """1-D, a real GP on a smooth slope measured every 0.1: uncapped it is sure of the value between
    two measurements (a bump of width 0.02 there is invisible to variance-driven exploration);
    capped at 0.02 its standard deviation there is most of the prior's, so exploration goes there."""
    space = SearchSpace([Float("x", 0.0, 1.0)])
    X = torch.linspace(0, 1, 11, dtype=torch.float64).unsqueeze(-1)
    Y = 1.0 - X
    gap = torch.tensor([[0.65]], dtype=torch.float64)

    def std_in_gap(cap: dict[str, float] | None) -> float:
        model = GPFitter(space, bounds=length_scale_bounds(space, max_length_scale=cap)).fit("o", X, Y)
        with torch.no_grad():
            return float(model.posterior(gap).variance.sqrt()) / float(Y.std())

    free, capped = std_in_gap(None), std_in_gap({"x": 0.02})
    assert free < 0.05 < 0.5 < capped


def test_the_optimizer_proposes_inside_the_gaps_with_the_cap() -> None:
    """max_variance over the same data: the proposal lies in a gap, at least 0.03 from every point."""
    opt = Optimizer(SearchSpace([Float("x", 0.0, 1.0)]), "max_variance", direction="maximize", seed=0,
                    max_length_scale={"x": 0.02})
    for k in range(11):
        opt.add({"x": k / 10}, 1.0 - k / 10)
    (s,) = opt.ask()
    assert min(abs(s.params["x"] - k / 10) for k in range(11)) > 0.03
    assert s.info["pred_std"] > 0.5 * 0.33  # most of the prior's (the data's sd is 0.33)
