"""``mobster``: the GP over (configuration, step) and its acquisition level, by their properties."""

from __future__ import annotations

import math

import pytest
import torch

from autotune import Optimizer
from autotune.exceptions import ConfigError
from autotune.space import Categorical, Float, SearchSpace
from autotune.strategies import get_strategy
from autotune.strategies._fidelity import AtFidelity, Mobster, fidelity_of, levels
from autotune.trial import TrialState

SPACE = SearchSpace([Float("x", 0.0, 1.0)])
OPTIONS = {"min_step": 1, "max_step": 9, "eta": 3}


def _curve(x: float, step: int) -> float:
    """A learning curve ending at ``(x - 0.2)^2``: the same offset for every x at a step."""
    return (x - 0.2) ** 2 + 1.0 / step


def _optimizer(**kw: object) -> Optimizer:
    return Optimizer(SPACE, "mobster", seed=0, n_initial=0, strategy_options=OPTIONS, **kw)  # type: ignore[arg-type]


def test_levels_and_log_fidelity() -> None:
    assert levels(1, 27, 3) == [1, 3, 9, 27]
    assert levels(2, 20, 3) == [2, 6, 18, 20]
    assert levels(0, 9, 3) == [1, 3, 9]
    s = fidelity_of(torch.tensor([1.0, 3.0, 9.0, 27.0]), 1, 27)
    assert torch.allclose(s, torch.tensor([0.0, 1 / 3, 2 / 3, 1.0], dtype=s.dtype))


def test_level_data_takes_the_last_value_at_or_below_each_level_a_trial_reached() -> None:
    opt = _optimizer()
    a, b, c = (opt.add_pending({"x": v}) for v in (0.1, 0.5, 0.9))
    for step in (1, 2, 4, 8, 9):  # reaches every level; no report at exactly 3
        opt.report(a, step, 10.0 + step)
    for step in (1, 2):  # pruned after step 2: only level 1 was reached
        opt.report(b, step, 20.0 + step)
    opt.tell(a, 19.5)
    opt.tell(b, 22.0, state=TrialState.PRUNED)
    opt.tell(c, 5.0)  # completed without reports: enters at the top level with its final value
    X, level, y, lv = opt.strategy.level_data(opt.context())  # type: ignore[attr-defined]
    assert lv == [1, 3, 9]
    got = sorted((round(float(x), 3), int(k), -float(v)) for x, k, v in zip(X[:, 0], level, y))
    # minimised objective: y is negated; a's level-3 value is its step-2 report, level 9 its report at 9
    assert got == [(0.1, 0, 11.0), (0.1, 1, 12.0), (0.1, 2, 19.0), (0.5, 0, 21.0), (0.9, 2, 5.0)]


def test_acquisition_level_is_the_highest_with_enough_points() -> None:
    m = Mobster(**OPTIONS)  # type: ignore[arg-type]
    level = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2])
    assert m.acquisition_level(level, 3, d=1) == 1  # d + 2 = 3 points: level 1 has 3, level 2 has 1
    assert m.acquisition_level(level, 3, d=2) == 0
    assert m.acquisition_level(torch.tensor([2, 2]), 3, d=5) == 2  # none has enough: the lowest observed
    assert Mobster(min_points=1, **OPTIONS).acquisition_level(level, 3, d=1) == 2  # type: ignore[arg-type]


def test_at_fidelity_is_the_joint_posterior_with_the_column_appended() -> None:
    from autotune.models import make_gp

    torch.manual_seed(0)
    X = torch.rand(12, 2, dtype=torch.float64)
    Y = (X[:, :1] - 0.3) ** 2 + 0.5 * X[:, 1:]
    joint = make_gp(X, Y, SearchSpace([Float("x", 0.0, 1.0), Float("s", 0.0, 1.0)]))
    joint.eval()
    view = AtFidelity(joint, 0.25, X[:, :1])
    Q = torch.rand(5, 1, dtype=torch.float64)
    expected = joint.posterior(torch.cat([Q, torch.full_like(Q, 0.25)], -1))
    got = view.posterior(Q)
    assert torch.allclose(got.mean, expected.mean) and torch.allclose(got.variance, expected.variance)
    conditioned = view.condition_on_observations(Q[:1], torch.tensor([[0.0]], dtype=torch.float64))
    with torch.no_grad():
        assert float(conditioned.posterior(Q[:1]).variance) < float(got.variance[0]) * 0.5  # it learned the point
    assert view.train_inputs[0].shape == (12, 1) and view.num_outputs == 1


def test_pruned_trials_teach_it_where_the_optimum_is() -> None:
    # Every trial was stopped at step 1: no final value exists, yet the low-fidelity curve points
    # locate the optimum (x = 0.2) and the proposal goes there, not to the unexplored edges.
    opt = _optimizer()
    for x in (0.0, 0.1, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0):
        s = opt.add_pending({"x": x})
        opt.report(s, 1, _curve(x, 1))
        opt.tell(s, _curve(x, 1), state=TrialState.PRUNED)
    (s,) = opt.ask()
    assert s.info["strategy"] == "mobster"
    assert abs(s.params["x"] - 0.2) < 0.08, s.params


def test_acquisition_moves_to_the_top_level_once_enough_trials_finish() -> None:
    opt = _optimizer()
    for i, x in enumerate((0.05, 0.35, 0.5, 0.65, 0.8, 0.95)):
        s = opt.add_pending({"x": x})
        last = 9 if i < 3 else 1  # three trials ran to the end (d + 2 = 3), three were pruned
        for step in (1, 3, 9):
            if step <= last:
                opt.report(s, step, _curve(x, step))
        opt.tell(s, _curve(x, last), state=TrialState.COMPLETED if last == 9 else TrialState.PRUNED)
    m = opt.strategy
    _, level, _, lv = m.level_data(opt.context())  # type: ignore[attr-defined]
    assert m.acquisition_level(level, len(lv), 1) == 2  # type: ignore[attr-defined]


def test_pending_aware_batch_of_distinct_points() -> None:
    opt = _optimizer()
    for x in (0.0, 0.3, 0.5, 0.7, 1.0):
        s = opt.add_pending({"x": x})
        for step in (1, 3, 9):
            opt.report(s, step, _curve(x, step))
        opt.tell(s, _curve(x, 9))
    busy = opt.add_pending({"x": 0.2})
    running = opt.add_pending({"x": 0.6})  # running, already past the top level: data, not a lie
    for step in (1, 3, 9):
        opt.report(running, step, _curve(0.6, step))
    out = opt.ask(3)
    xs = [s.params["x"] for s in out]
    assert all(s.info["strategy"] == "mobster" for s in out)
    assert len({round(x, 4) for x in xs}) == 3 and all(abs(x - busy.params["x"]) > 1e-3 for x in xs), xs
    assert all(abs(x - running.params["x"]) > 1e-3 for x in xs), xs
    # every pending trial already has data at the acquisition level: no lie at all (was a crash)
    opt.forget(busy.trial_id)
    for s in out:
        opt.forget(s.trial_id)
    (s,) = opt.ask()
    assert s.info["strategy"] == "mobster" and abs(s.params["x"] - 0.6) > 1e-3


def test_without_curves_it_is_ei_on_final_values_and_other_strategies_see_no_curves() -> None:
    opt = _optimizer()
    for x in (0.0, 0.4, 0.8):
        s = opt.add_pending({"x": x})
        opt.tell(s, _curve(x, 9))
    (s,) = opt.ask()
    assert s.info["strategy"] == "mobster" and math.isfinite(s.params["x"])
    ei = Optimizer(SPACE, "ei", seed=0)
    t = ei.add_pending({"x": 0.5})
    ei.report(t, 1, 3.0)
    assert ei.context().curves is None and ei.curves == {t.trial_id: {1: 3.0}}
    ei.forget(t.trial_id)
    assert ei.curves == {}


def test_mixed_spaces_and_bad_input() -> None:
    space = SearchSpace([Float("lr", 1e-4, 1e-1, log=True), Categorical("act", ["relu", "tanh", "gelu"])])
    opt = Optimizer(space, "mobster", seed=1, n_initial=0, strategy_options=OPTIONS)
    for i, p in enumerate(space.sample(6, "sobol", seed=0)):
        s = opt.add_pending(p)
        for step in (1, 3):
            opt.report(s, step, math.log10(p["lr"]) ** 2 + (p["act"] == "relu") + 1.0 / step + 0.01 * i)
        opt.tell(s, math.log10(p["lr"]) ** 2 + 1.0, state=TrialState.PRUNED)
    (s,) = opt.ask()
    assert s.params["act"] in ("relu", "tanh", "gelu") and 1e-4 <= s.params["lr"] <= 1e-1
    with pytest.raises(ConfigError, match="step"):
        opt.report(s, -1, 1.0)
    with pytest.raises(ConfigError, match="value"):
        opt.report(s, 1, "low")  # type: ignore[arg-type]
    opt.report(s, 1, float("nan"))  # a diverged epoch is not a level: ignored
    assert s.trial_id not in opt.curves
    with pytest.raises(ConfigError, match="max_step"):
        get_strategy("mobster", {"min_step": 9, "max_step": 3})
    with pytest.raises(ConfigError, match="eta"):
        get_strategy("mobster", {"eta": 1})


def _digits_table() -> tuple[SearchSpace, list[dict[str, object]]]:
    import gzip
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "lc_tables" / "digits_mlp.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        table = json.load(fh)
    grid = table["grid"]
    space = SearchSpace.from_dict({"parameters": {
        k: {"type": "categorical", "choices": v} if isinstance(v[0], str) else {"type": "ordinal", "values": v}
        for k, v in grid.items()}})
    return space, table["rows"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_curves_predict_held_back_final_values_better_than_final_values_alone(seed: int) -> None:
    """Real curves (648 MLPs trained 27 epochs on digits): 10 trials trained in full and 50 stopped at
    epoch 1, 3 or 9 (as ASHA stops them). The joint GP's prediction at the last epoch for 40 held-back
    configurations ranks and fits their true final losses better than a GP on the 10 final values."""
    import random

    from autotune.models import GPFitter, PowerWarp

    space, rows = _digits_table()
    rng = random.Random(seed)
    chosen = rng.sample(rows, 100)
    full, partial, held = chosen[:10], chosen[10:60], chosen[60:]
    opt = Optimizer(space, "mobster", seed=0, n_initial=0, strategy_options={"min_step": 1, "max_step": 27, "eta": 3})
    for i, r in enumerate(full + partial):
        tid = opt.add_pending(r["config"])  # type: ignore[arg-type]
        stop = 27 if i < len(full) else rng.choice([1, 3, 9])
        for s in range(1, stop + 1):
            opt.report(tid, s, r["val_loss"][s - 1])  # type: ignore[index]
        opt.tell(tid, r["val_loss"][stop - 1], state=TrialState.COMPLETED if stop == 27 else TrialState.PRUNED)  # type: ignore[index]
    strategy, ctx = opt.strategy, opt.context()
    X, level, y, lv = strategy.level_data(ctx)  # type: ignore[attr-defined]
    s = fidelity_of(torch.tensor(lv, dtype=torch.float64), 1, 27)
    joint = strategy._fit(ctx, torch.cat([X, s[level].unsqueeze(-1)], -1), y.unsqueeze(-1))  # type: ignore[attr-defined]
    X_held = torch.tensor([space.encode(r["config"]) for r in held], dtype=torch.float64)  # type: ignore[arg-type]
    truth = -torch.tensor([r["val_loss"][-1] for r in held], dtype=torch.float64)  # type: ignore[index]
    X_full = torch.tensor([space.encode(r["config"]) for r in full], dtype=torch.float64)  # type: ignore[arg-type]
    y_full = -torch.tensor([[r["val_loss"][-1]] for r in full], dtype=torch.float64)  # type: ignore[index]
    warp = PowerWarp.fit(y_full.reshape(-1)) if ctx.warp is not None else None  # as a final-only optimiser would
    final_only = GPFitter(space).fit("objective", X_full, y_full if warp is None else warp(y_full))
    with torch.no_grad():
        pred_joint = AtFidelity(joint, 1.0, X).posterior(X_held).mean.reshape(-1)
        if ctx.warp is not None:  # the joint GP models the warped curves: back to the losses' units
            pred_joint = ctx.warp.inverse(pred_joint)
        pred_final = final_only.posterior(X_held).mean.reshape(-1)
        if warp is not None:
            pred_final = warp.inverse(pred_final)

    def rank_corr(a: torch.Tensor) -> float:
        ranks = torch.stack([a.argsort().argsort(), truth.argsort().argsort()]).double()
        return float(torch.corrcoef(ranks)[0, 1])

    def rmse(a: torch.Tensor) -> float:
        return float(((a - truth) ** 2).mean().sqrt())

    assert rank_corr(pred_joint) > rank_corr(pred_final) + 0.05
    assert rank_corr(pred_joint) > 0.5
    assert rmse(pred_joint) < rmse(pred_final)
