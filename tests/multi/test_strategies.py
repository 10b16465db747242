"""Multi-objective strategies: distinct, pending-aware proposals; qLogNEHVI prefers dominating points;
hypervolume beats random on a toy problem."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autotune import Float, Optimizer, SearchSpace
from autotune.objectives import Objective

SPACE = SearchSpace([Float("x0", 0, 1), Float("x1", 0, 1)])
TWO = [Objective("f1", "minimize"), Objective("f2", "minimize")]
FAST = {"qlognehvi": {"mc_samples": 32, "num_restarts": 2, "raw_samples": 64},
        "qnparego": {"mc_samples": 32, "num_restarts": 2, "raw_samples": 64},
        "mo_thompson": {"n_candidates": 128}}


def toy(x0: float, x1: float) -> dict[str, float]:
    """A two-objective trade-off: f1 wants x0 = 0, f2 wants x0 = 1; x1 = 0.3 is best for both."""
    return {"f1": x0**2 + (x1 - 0.3) ** 2, "f2": (1 - x0) ** 2 + (x1 - 0.3) ** 2}


def _opt(strategy: str, n: int = 6, **kw: object) -> Optimizer:
    opt = Optimizer(SPACE, strategy, objectives=TWO, seed=1, strategy_options=FAST.get(strategy), **kw)  # type: ignore[arg-type]
    for s in opt.ask(n):
        opt.tell(s, toy(**s.params))
    return opt


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["qlognehvi", "qnparego", "mo_thompson", "random", "sobol"])
def test_batch_proposals_are_distinct_and_model_based(strategy: str) -> None:
    opt = _opt(strategy)
    old = {SPACE.key(o.params) for o in opt.observations}
    batch = opt.ask(3)
    keys = {SPACE.key(s.params) for s in batch}
    assert len(keys) == 3 and not keys & old
    assert all(s.info["strategy"] == strategy and "fallback" not in s.info for s in batch)


def _dist(a: dict[str, float], b: dict[str, float]) -> float:
    return math.hypot(a["x0"] - b["x0"], a["x1"] - b["x1"])


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["qlognehvi", "qnparego", "mo_thompson"])
def test_proposals_move_away_from_pending_points(strategy: str) -> None:
    opt = _opt(strategy, n=8)
    (first,) = opt.ask()  # stays pending
    (second,) = opt.ask()
    assert _dist(first.params, second.params) > 0.02
    opt.forget(first.trial_id)
    opt.forget(second.trial_id)
    (again,) = opt.ask()  # without the pending point the strategy returns to its choice
    assert _dist(again.params, first.params) < _dist(second.params, first.params) + 1e-9 or strategy == "mo_thompson"


def test_qlognehvi_prefers_a_dominating_point() -> None:
    from autotune.strategies import get_strategy

    opt = _opt("sobol", n=10)
    strat = get_strategy("qlognehvi", FAST["qlognehvi"])
    acqf = strat.build(opt.context())  # type: ignore[attr-defined]
    front = opt.pareto_front()
    best = min(front, key=lambda o: o.metrics["f1"] + o.metrics["f2"])
    # (0.5, 0.3) dominates everything observed except points on the x1 = 0.3 line; (0.95, 0.95) is dominated.
    good = torch.tensor([[[0.5, 0.3]]], dtype=torch.float64)
    bad = torch.tensor([[[0.95, 0.95]]], dtype=torch.float64)
    with torch.no_grad():
        assert float(acqf(good)) > float(acqf(bad)) + 1.0
    assert toy(0.5, 0.3)["f1"] < best.metrics["f1"] or toy(0.5, 0.3)["f2"] < best.metrics["f2"]


def test_constraints_and_crashes_reach_the_multi_objective_models() -> None:
    opt = Optimizer(SPACE, "qlognehvi", objectives=TWO, seed=0, constraints=["c <= 0.5"],
                    strategy_options=FAST["qlognehvi"])
    for i, s in enumerate(opt.ask(8)):
        if i == 3:
            opt.tell(s, None, state="failed")
        else:
            opt.tell(s, toy(**s.params), metrics={"c": s.params["x0"]})
    (s,) = opt.ask()
    assert s.info["strategy"] == "qlognehvi" and "fallback" not in s.info
    assert s.params["x0"] <= 0.6  # the constraint GP steers it to the feasible half


@pytest.mark.slow
def test_hypervolume_beats_random_on_the_toy_problem() -> None:
    ref = {"f1": 1.5, "f2": 1.5}
    hv = {}
    for strategy in ("mo_thompson", "qlognehvi", "random"):
        opt = Optimizer(SPACE, strategy, objectives=TWO, seed=3, reference_point=ref, n_initial=5,
                        strategy_options=FAST.get(strategy))
        for _ in range(14):
            (s,) = opt.ask()
            opt.tell(s, toy(**s.params))
        hv[strategy] = opt.hypervolume()
    assert hv["qlognehvi"] > hv["random"] and hv["mo_thompson"] > hv["random"], hv


_STALE_LOCK_SCRIPT = """
import json, os, sys
from autotune import Float, Optimizer, SearchSpace
from autotune.objectives import Objective
space = SearchSpace([Float("x0", 0, 1), Float("x1", 0, 1)])
opt = Optimizer(space, "qlognehvi", objectives=[Objective("f1", "minimize"), Objective("f2", "minimize")], seed=1,
                strategy_options={"mc_samples": 16, "num_restarts": 1, "raw_samples": 16})
for s in opt.ask(5):
    opt.tell(s, {"f1": s.params["x0"], "f2": 1 - s.params["x0"] + s.params["x1"]})
print(json.dumps(opt.ask(1)[0].params))
"""


def test_a_lock_left_by_a_killed_kernel_compile_does_not_hang_the_first_ask(tmp_path: Path) -> None:
    """BoTorch 0.18 JIT-compiles a fused qLogNEHVI kernel behind a lock file; a process killed during that
    compile leaves the lock, and torch then waits on it for ever. The first multi-objective ask in a fresh
    process must neither wait on such a lock nor start a compile (a driver killed mid-compile would hang
    every later study)."""
    extensions = tmp_path / "torch_extensions"
    build = extensions / "py311_cpu" / "logei_fused_ext"
    build.mkdir(parents=True)
    (build / "lock").touch()  # what a SIGKILL during the compile leaves
    before = sorted(p.name for p in build.iterdir())
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(extensions / "py311_cpu"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _STALE_LOCK_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    params = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(params) == {"x0", "x1"}
    assert sorted(p.name for p in build.iterdir()) == before  # nothing compiled, lock untouched
    assert "Failed to compile fused" not in done.stderr


def test_a_prebuilt_fused_kernel_is_still_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skipping the compile keeps an installed, prebuilt extension: BoTorch's first choice."""
    import types

    from botorch.acquisition.multi_objective import logei

    from autotune.models._compile import skip_fused_kernel_compile

    prebuilt = types.ModuleType("logei_fused_ext")
    monkeypatch.setitem(sys.modules, "logei_fused_ext", prebuilt)
    monkeypatch.setattr(logei, "_load_attempted", False)
    monkeypatch.setattr(logei, "_C", None)
    skip_fused_kernel_compile()
    assert logei._C is prebuilt and logei._load_attempted
    monkeypatch.setattr(logei, "_load_attempted", False)
    monkeypatch.setattr(logei, "_C", None)
    monkeypatch.delitem(sys.modules, "logei_fused_ext")
    monkeypatch.setattr(sys, "path", [])  # nothing importable: no prebuilt kernel
    skip_fused_kernel_compile()
    assert logei._C is None and logei._load_attempted
