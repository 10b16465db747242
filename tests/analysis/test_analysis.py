"""The analysis views: GP-based importance, slices, contour, EDF, learning curves, the HTML report."""

from __future__ import annotations

import math
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("plotly")

from autotune.analysis import (
    TITLES,
    Importance,
    analysis_figures,
    contour_data,
    curves_data,
    edf_data,
    fit_surface,
    importance_from_surface,
    parameter_importance,
    plot_contour,
    report_html,
    slice_data,
    sobol_indices,
    write_report,
)
from autotune.optimizer import Optimizer
from autotune.space import Categorical, Condition, Float, Int, SearchSpace


def _sin_optimizer(n: int = 30, seed: int = 0) -> Optimizer:
    """``f(x) = sin(6 x0)``, maximised, on ``n`` random points; ``x1`` is irrelevant."""
    space = SearchSpace([Float("x0", low=0.0, high=1.0), Float("x1", low=0.0, high=1.0)])
    opt = Optimizer(space, "random", direction="maximize", seed=seed)
    rng = random.Random(seed)
    for i in range(n):
        p = {"x0": rng.random(), "x1": rng.random()}
        opt.add(p, math.sin(6 * p["x0"]), trial_id=i)
    return opt


def _warm(opt: Optimizer) -> Optimizer:
    """Fit the optimiser's objective GP once, as its last ask would have (the views then reuse it)."""
    opt.context().objective_model()
    return opt


@pytest.fixture(scope="module")
def sin_opt() -> Optimizer:
    return _warm(_sin_optimizer())


@pytest.fixture(scope="module")
def sin_surface(sin_opt: Optimizer) -> Any:
    surface = fit_surface(sin_opt)
    assert surface is not None
    return surface


def _mixed_optimizer() -> tuple[Optimizer, dict[int, list[dict[str, float]]]]:
    """A categorical parent switching a conditional child, an int, failed trials, and reports."""
    space = SearchSpace([
        Categorical("model", choices=("linear", "tree")),
        Float("lr", low=1e-4, high=1e-1, log=True),
        Int("depth", low=1, high=8, conditions=(Condition("model", "==", "tree"),)),
    ])
    opt = Optimizer(space, "random", direction="minimize", seed=0)
    reports: dict[int, list[dict[str, float]]] = {}
    for i, p in enumerate(space.sample(16, "random", seed=3)):
        if i in (2, 7):
            opt.add(p, None, state="failed", trial_id=i)
            reports[i] = [{"step": 0, "loss": 5.0}]
            continue
        v = (math.log10(p["lr"]) + 2.5) ** 2 + (0.3 * p["depth"] if p["model"] == "tree" else 1.0)
        opt.add(p, v, trial_id=i)
        reports[i] = [{"step": s, "loss": v + 1.0 / (s + 1)} for s in range(4)]
    return _warm(opt), reports


# -- importance ------------------------------------------------------------------------------
def test_sobol_estimator_on_an_additive_function() -> None:
    """``f = x0 + 2 x1`` on the uniform square: S0 = 1/5, S1 = 4/5, x2 unused: S2 = 0."""
    import numpy as np

    rng = np.random.default_rng(0)
    N = 20_000
    A, B = rng.random((N, 3)), rng.random((N, 3))

    def f(X: Any) -> Any:
        return X[..., 0] + 2 * X[..., 1]

    AB = np.stack([np.where(np.arange(3) == i, B, A) for i in range(3)])  # `3 x N x 3`
    first, total = sobol_indices(f(A), f(B), f(AB))
    assert first == pytest.approx([0.2, 0.8, 0.0], abs=0.03)
    assert total == pytest.approx([0.2, 0.8, 0.0], abs=0.03)
    flat, _ = sobol_indices(np.ones(10), np.ones(10), np.ones((2, 10)))
    assert flat.tolist() == [0.0, 0.0]


def test_importance_finds_the_relevant_parameter(sin_surface: Any) -> None:
    imp = importance_from_surface(sin_surface, seed=0)
    s = dict(zip(imp.names, imp.first_order))
    assert s["x0"] > 0.8, imp
    assert s["x1"] < 0.05, imp
    assert imp.ranked() == ["x0", "x1"]
    assert imp.method == "posterior paths"
    for lo, point, hi in zip(imp.low, imp.first_order, imp.high):
        assert 0.0 <= lo <= point <= hi <= 1.0
    # The interval separates the two, and the draws themselves (not only the widening) cover
    # the point estimate of the relevant parameter.
    assert imp.low[0] > imp.high[1]
    import numpy as np

    draws = np.asarray(imp.draws)
    assert draws.shape == (64, 2)
    assert np.quantile(draws[:, 0], 0.05) <= s["x0"] <= np.quantile(draws[:, 0], 0.95) + 1e-9


def test_interval_falls_back_to_a_bootstrap(sin_surface: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A joint posterior draw that fails (not positive definite) gives a bootstrap interval instead."""
    import autotune.analysis._importance as mod

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cholesky: not positive definite")

    monkeypatch.setattr(mod, "_draw_paths", broken)
    imp = importance_from_surface(sin_surface, n_paths=32, seed=1)
    assert imp.method == "bootstrap"
    assert len(imp.draws) == 32
    for lo, point, hi in zip(imp.low, imp.first_order, imp.high):
        assert 0.0 <= lo <= point <= hi <= 1.0
    assert imp.low[0] > imp.high[1]


def test_a_gp_that_cannot_be_fitted_says_so(sin_opt: Optimizer, monkeypatch: pytest.MonkeyPatch) -> None:
    from autotune.exceptions import ModelFitError
    from autotune.models import Surrogates

    def broken(self: Any) -> Any:
        raise ModelFitError("The GP for 'objective' could not be fitted")

    monkeypatch.setattr(Surrogates, "objective", broken)
    assert fit_surface(sin_opt) is None
    figs = analysis_figures(sin_opt, {})
    for key in ("importance", "slices", "contour"):
        assert "could not be fitted" in figs[key].layout.annotations[0].text, key
    assert not figs["edf"].layout.annotations  # the EDF needs no GP


def test_report_leaves_the_optimizer_unchanged(sin_opt: Optimizer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The views fit on a copy of the fitter: the optimiser's warm starts (so its next asks) stay."""
    import torch

    monkeypatch.setitem(sin_opt.fitter._fitted_n, "objective", 1)  # the copy refits: nothing may leak back
    before = {k: {n: t.clone() for n, t in v.items()} for k, v in sin_opt.fitter._good.items()}
    n_obs = len(sin_opt.observations)
    imp = parameter_importance(sin_opt, n_paths=8)
    assert imp is not None
    assert len(sin_opt.observations) == n_obs
    assert sin_opt.fitter._good.keys() == before.keys()
    assert sin_opt.fitter._fitted_n["objective"] == 1
    for name, state in before.items():
        for key, value in state.items():
            assert torch.equal(sin_opt.fitter._good[name][key], value), (name, key)
    assert not sin_opt.pending


# -- slices, contour, EDF, curves ----------------------------------------------------------------
def test_slice_band_holds_the_observed_points(sin_surface: Any) -> None:
    import numpy as np

    s = slice_data(sin_surface, "x0")
    assert s.active and not s.categorical and len(s.x) == 60
    assert all(sd >= 0 for sd in s.std)
    mean = np.interp(s.obs_x, s.x, s.mean)
    sd = np.interp(s.obs_x, s.x, s.std)
    inside = np.abs(np.asarray(s.obs_y) - mean) <= 2 * sd + 0.05
    assert inside.mean() >= 0.9, (inside.mean(), s)
    # The GP mean follows sin(6 x0) along the slice.
    assert np.max(np.abs(np.asarray(s.mean) - np.sin(6 * np.asarray(s.x)))) < 0.25


def test_edf_is_a_monotone_distribution() -> None:
    xs, fs = edf_data([3.0, None, 1.0, float("nan"), 2.0, 2.0, float("inf")])
    assert xs == [1.0, 2.0, 2.0, 3.0]
    assert fs == sorted(fs) and fs[-1] == 1.0 and fs[0] > 0
    assert edf_data([]) == ([], [])


def test_curves_skip_missing_values_and_count_steps() -> None:
    reports = {0: [{"loss": 3.0}, {"loss": 2.0}], 1: [{"step": 5, "acc": 0.1}], 2: []}
    assert curves_data(reports, "loss") == {0: ([0.0, 1.0], [3.0, 2.0])}


# -- every view, odd histories -------------------------------------------------------------------
def test_report_is_self_contained_with_every_view(sin_opt: Optimizer, tmp_path: Path) -> None:
    reports = {i: [{"step": s, "objective": 1.0 / (s + 1)} for s in range(3)] for i in range(5)}
    path = write_report(sin_opt, reports, tmp_path / "sub" / "report.html", title="sin <study>")
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", text, re.IGNORECASE), "a script is fetched"
    for title in TITLES.values():
        assert title in text.replace("&amp;", "&"), title
    assert "sin &lt;study&gt;" in text  # the title is escaped
    assert "not enough data" not in text
    assert text.count("<script type=\"text/javascript\">/**") <= 1  # plotly.js inlined once
    assert path.stat().st_size < 8_000_000
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left


def test_categorical_conditional_and_failed_trials() -> None:
    opt, reports = _mixed_optimizer()
    figs = analysis_figures(opt, reports, objective="loss")
    assert set(figs) == set(TITLES)
    surface = fit_surface(opt)
    assert surface is not None and len(surface.failed) == 2
    imp = importance_from_surface(surface, n_paths=16)
    assert imp.names == ["model", "lr", "depth"]
    for lo, point, hi in zip(imp.low, imp.first_order, imp.high):
        assert 0.0 <= lo <= point <= hi <= 1.0
    assert imp.ranked()[0] == "lr", imp  # (log10 lr + 2.5)^2 spans about 2.3, the rest about 1.1
    s = slice_data(surface, "model")
    assert s.categorical and s.x == ["linear", "tree"]
    depth = slice_data(surface, "depth")
    assert depth.obs_x and all(isinstance(v, int) for v in depth.obs_x)
    if not depth.active:  # an inactive child cannot move the GP: a flat slice
        assert max(depth.mean) - min(depth.mean) < 1e-9
    # A categorical axis in the contour: one cell per category.
    forced = Importance(names=["model", "lr", "depth"], first_order=[0.9, 0.5, 0.1], low=[0.0] * 3, high=[1.0] * 3,
                        total_order=[0.9, 0.5, 0.1])
    contour = plot_contour(surface, forced)
    assert contour.data[0].type == "heatmap" and list(contour.data[0].x) == ["linear", "tree"]
    assert set(contour.data[1].x) <= {"linear", "tree"} and len(contour.data[1].x) == 14
    xs, ys, z = contour_data(surface, "lr", "depth")
    assert len(z) == len(ys) == 8 and all(len(row) == len(xs) == 40 for row in z)
    # The learning curves draw the failed trials too, and the report holds every view.
    curves = figs["intermediate"]
    assert len([t for t in curves.data if t.name and t.name.startswith("trial")]) == 16
    text = report_html(opt, reports, objective="loss", figures=figs)
    assert "not enough data" not in text
    for title in TITLES.values():
        assert title in text.replace("&amp;", "&")


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_observations_say_not_enough_data(n: int, tmp_path: Path) -> None:
    opt = _sin_optimizer(n)
    opt.add({"x0": 0.5, "x1": 0.5}, None, state="failed")
    assert parameter_importance(opt) is None
    figs = analysis_figures(opt, {})
    for key in ("importance", "slices", "contour", "intermediate"):
        assert "not enough data" in figs[key].layout.annotations[0].text, key
    if n == 0:
        assert "not enough data" in figs["edf"].layout.annotations[0].text
    else:
        assert not figs["edf"].layout.annotations
    text = write_report(opt, None, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "not enough data" in text
    for title in TITLES.values():
        assert title in text.replace("&amp;", "&")


def test_import_is_light() -> None:
    code = ("import sys, autotune.analysis; "
            "print(sorted(m for m in ('torch', 'plotly', 'botorch', 'mlflow', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_missing_plotly_names_the_fix(sin_opt: Optimizer, monkeypatch: pytest.MonkeyPatch) -> None:
    from autotune.exceptions import MissingExtraError

    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly now raises ImportError
    with pytest.raises(MissingExtraError, match="plotly is not installed"):
        analysis_figures(sin_opt, {})
