"""The output warp: a monotone, invertible power transform fitted to the observations."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from scipy import stats

from autotune.exceptions import ConfigError, StudyConfigError
from autotune.models import GPFitter, PowerWarp, evidence_exponent, fit_output_warp
from autotune.models._warp import LAMBDA_GRID, LAMBDA_RANGE
from autotune.optimizer import Optimizer
from autotune.space import Float, SearchSpace
from tests.study.helpers import study_dict


def heavy_tailed(n: int = 40, seed: int = 0) -> torch.Tensor:
    """Maximised values with a long tail of very bad points (Rosenbrock-like), float64."""
    g = torch.Generator().manual_seed(seed)
    return -torch.rand(n, generator=g, dtype=torch.float64).pow(4) * 1e4


@pytest.mark.parametrize("seed", range(3))
def test_the_warp_is_strictly_increasing_and_inverts(seed: int) -> None:
    w = PowerWarp.fit(heavy_tailed(seed=seed))
    assert w is not None
    y = torch.linspace(-2e4, 1e3, 2001, dtype=torch.float64)
    z = w(y)
    assert bool((z.diff() > 0).all())
    inside = torch.isfinite(w.inverse(z))
    assert torch.allclose(w.inverse(z)[inside], y[inside], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("lam", [-1.5, 0.0, 0.7, 2.0, 3.5])
def test_inverse_of_every_branch(lam: float) -> None:
    w = PowerWarp(loc=3.0, scale=2.0, lam=lam)
    y = torch.linspace(-5.0, 10.0, 301, dtype=torch.float64)
    assert torch.allclose(w.inverse(w(y)), y, atol=1e-8)
    x = ((y - 3.0) / 2.0).numpy()
    assert torch.allclose(w(y), torch.from_numpy(stats.yeojohnson(x, lam)), atol=1e-10)  # scipy's definition


def test_a_heavy_tail_is_pulled_in_and_normal_data_are_left_almost_alone() -> None:
    y = heavy_tailed(200)
    w = PowerWarp.fit(y)
    assert w is not None and w.lam > 1.2  # the long lower tail is compressed
    z = w(y)
    assert abs(float(stats.skew(z.numpy()))) < abs(float(stats.skew(y.numpy())))
    g = torch.Generator().manual_seed(1)
    normal = PowerWarp.fit(torch.randn(200, generator=g, dtype=torch.float64))
    assert normal is not None and abs(normal.lam - 1.0) < 0.3


def test_the_exponent_stays_in_its_range() -> None:
    y = torch.tensor([0.0] * 30 + [-1e12, -1e11, 1.0], dtype=torch.float64)
    w = PowerWarp.fit(y)
    assert w is None or LAMBDA_RANGE[0] <= w.lam <= LAMBDA_RANGE[1]


def test_nothing_to_fit_gives_no_warp() -> None:
    assert PowerWarp.fit(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)) is None  # too few
    assert PowerWarp.fit(torch.full((10,), 2.5, dtype=torch.float64)) is None  # constant
    nan = torch.tensor([math.nan] * 8 + [1.0, 2.0], dtype=torch.float64)
    assert PowerWarp.fit(nan) is None  # two finite values
    assert fit_output_warp("none", heavy_tailed()) is None


def test_nan_stays_nan() -> None:
    y = torch.cat([heavy_tailed(), torch.tensor([math.nan], dtype=torch.float64)])
    w = PowerWarp.fit(y)
    assert w is not None
    z = w(y)
    assert math.isnan(float(z[-1])) and bool(torch.isfinite(z[:-1]).all())


SPACE = SearchSpace([Float("x", low=-2.0, high=2.0), Float("y", low=-1.0, high=3.0)])


def rosenbrock(p: dict[str, float]) -> float:
    return (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2


def test_the_strategy_sees_the_warped_objective_and_predictions_come_back_in_its_units() -> None:
    opt = Optimizer(SPACE, "ei", seed=0, n_initial=12, output_warp="power",
                    strategy_options={"num_restarts": 2, "raw_samples": 64})
    for p in SPACE.sample(12, "sobol", seed=0):
        opt.add(p, rosenbrock(p))
    ctx = opt.context()
    assert ctx.warp is not None
    raw = -torch.tensor([o.value for o in opt.observations], dtype=torch.float64)  # maximised
    assert torch.allclose(ctx.y, ctx.warp(raw))
    assert int(ctx.y.argmax()) == int(raw.argmax())  # the incumbent is the same point
    (s,) = opt.ask()
    # at the observed points the GP all but interpolates: back in Rosenbrock's units, not warped ones
    mean, sd = opt.predict([o.params for o in opt.observations])
    values = [o.value for o in opt.observations]
    spread = max(values) - min(values)
    assert spread > 100
    assert max(abs(m - v) for m, v in zip(mean, values)) < 0.02 * spread
    assert stats.spearmanr(mean, values).statistic > 0.95
    assert all(x >= 0 for x in sd)
    assert math.isfinite(s.info["pred_mean"]) and s.info["pred_std"] >= 0


def test_without_the_warp_the_context_holds_the_raw_values() -> None:
    opt = Optimizer(SPACE, "ei", seed=0, output_warp="none")
    for p in SPACE.sample(8, "sobol", seed=0):
        opt.add(p, rosenbrock(p))
    ctx = opt.context()
    assert ctx.warp is None
    assert torch.allclose(ctx.y, -torch.tensor([o.value for o in opt.observations], dtype=torch.float64))


def test_an_unknown_warp_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="output_warp.*log.*use power or none"):
        Optimizer(SPACE, output_warp="log")  # type: ignore[arg-type]


def test_the_study_file_sets_the_warp_and_refuses_an_unknown_one(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from autotune.study import StudyRecord, load_study_config

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(study_dict(model={"output_warp": "none"})), encoding="utf-8")
    assert StudyRecord(load_study_config("x.yaml")).new_optimizer().output_warp == "none"
    path.write_text(yaml.safe_dump(study_dict()), encoding="utf-8")  # absent: the optimiser's default
    assert StudyRecord(load_study_config("x.yaml")).new_optimizer().output_warp == Optimizer(SPACE).output_warp
    path.write_text(yaml.safe_dump(study_dict(model={"output_warp": "log"})), encoding="utf-8")
    with pytest.raises(StudyConfigError) as info:
        load_study_config("x.yaml")
    assert info.value.where == "x.yaml: model.output_warp" and info.value.value == "log"
    assert "power" in str(info.value)


def _smooth(X: torch.Tensor) -> torch.Tensor:
    g = torch.sin(3 * X[:, 0]) + torch.cos(2 * X[:, 1]) + X[:, 0] * X[:, 1]
    return (g - g.median()) / g.std()


@pytest.mark.parametrize(("name", "low", "high"), [("log-normal", -2.0, 0.5), ("mirrored", 1.75, 4.0),
                                                    ("plain", 0.75, 1.25)])
def test_the_evidence_chooses_the_exponent_that_undoes_the_distortion(name: str, low: float, high: float) -> None:
    """A smooth GP-like function seen through exp (a long upper tail), through -exp (a long lower
    tail, Rosenbrock-like when maximised) or plainly: the evidence of the GP fitted on the
    normality-chosen warp picks an exponent below 1, above 1, or about 1."""
    space = SearchSpace([Float("a", 0.0, 1.0), Float("b", 0.0, 1.0)])
    X = torch.rand(40, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = _smooth(X)
    y = {"log-normal": torch.exp(2 * g), "mirrored": -torch.exp(2 * g), "plain": g}[name]
    w = PowerWarp.fit(y)
    assert w is not None
    model = GPFitter(space).fit("objective", X, w(y).unsqueeze(-1))
    lam = evidence_exponent(model, X, y, w)
    assert low <= lam <= high
    assert lam in LAMBDA_GRID.tolist()


def test_the_optimizer_carries_the_chosen_exponent_to_the_next_ask() -> None:
    opt = Optimizer(SPACE, "ei", seed=0, n_initial=10, output_warp="power",
                    strategy_options={"num_restarts": 2, "raw_samples": 64})
    for p in SPACE.sample(10, "sobol", seed=0):
        opt.add(p, rosenbrock(p))
    first = opt.context().warp
    assert first is not None and opt._warp_lam is None  # the first warp: the most nearly normal
    (s,) = opt.ask()
    assert opt._warp_lam in LAMBDA_GRID.tolist()
    opt.tell(s.trial_id, rosenbrock(s.params))
    after = opt.context().warp
    assert after is not None and after.lam == opt._warp_lam


def test_a_mapping_strategy_sees_the_raw_values() -> None:
    """Maximum variance maps the objective: its GP is fitted to the values themselves."""
    opt = Optimizer(SPACE, "max_variance", seed=0, output_warp="power")
    for p in SPACE.sample(8, "sobol", seed=0):
        opt.add(p, rosenbrock(p))
    assert opt.context().warp is None
    assert Optimizer(SPACE, "ucb", seed=0, output_warp="power").strategy.optimizes


def test_the_evidence_uses_the_fitted_models_factor_and_chooses_as_a_fresh_one_would(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from autotune.models import _warp

    space = SearchSpace([Float("a", 0.0, 1.0), Float("b", 0.0, 1.0)])
    X = torch.rand(40, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.exp(2 * _smooth(X))
    w = PowerWarp.fit(y)
    assert w is not None
    model = GPFitter(space).fit("objective", X, w(y).unsqueeze(-1))
    L = _warp._primed_factor(model, X)  # the fit left K + noise I factored
    assert L is not None
    with torch.no_grad():
        K = model.covar_module(X).to_dense() + model.likelihood.noise * torch.eye(len(X), dtype=X.dtype)
    assert torch.allclose(L @ L.T, K, atol=1e-8)
    assert _warp._primed_factor(model, X[:-1]) is None  # other points: computed afresh
    reused = evidence_exponent(model, X, y, w)
    monkeypatch.setattr(_warp, "_primed_factor", lambda gp, Xt: None)
    assert evidence_exponent(model, X, y, w) == reused
