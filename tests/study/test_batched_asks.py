"""Workers that free up together get their trials from one batched ``Optimizer.ask(k)``.

The simulated executor finishes every trial ending at the same virtual time together, so the
driver sees several free workers at once; a spy on ``Optimizer.ask`` records each call's size,
the points pending and observed at that moment, and what it returned.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autotune.executors import SimulatedExecutor
from autotune.optimizer import Optimizer
from autotune.study import Study, StudyConfig
from tests.study.helpers import study_dict
from tests.study.trial_fns import sim_objective

REAL_ASK = Optimizer.ask
CHEAP_EI = {"name": "ei", "options": {"num_restarts": 2, "raw_samples": 64}}


class AskSpy:
    """Wraps ``Optimizer.ask``: per call, ``(n, pending keys, observed keys, returned keys, strategy)``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[int, set[Any], set[Any], list[Any], str]] = []
        spy = self

        def ask(opt: Optimizer, n: int = 1) -> Any:
            pending = {opt.space.key(s.params) for s in opt.pending}
            observed = {opt.space.key(o.params) for o in opt.observations}
            out = REAL_ASK(opt, n)
            spy.calls.append((n, pending, observed, [opt.space.key(s.params) for s in out], out[0].info["strategy"]))
            return out

        monkeypatch.setattr(Optimizer, "ask", ask)


def _run(tmp_path: Path, store_factory: Callable[[Path], str], duration: Callable[[dict[str, Any]], float],
         workers: int, trials: int) -> Any:
    config = StudyConfig(**study_dict(
        name="batched", strategy=CHEAP_EI, n_initial=workers, budget={"max_trials": trials},
        parallelism={"workers": workers}, executor={"name": "simulated"}, output_dir=str(tmp_path / "out"),
    ))
    store_factory(config.resolved_output_dir)
    executor = SimulatedExecutor(workers, duration_fn=duration, objective_fn=sim_objective)
    return Study(config, executor=executor).optimize(progress=False)


@pytest.mark.slow
def test_workers_finishing_together_get_one_ask_of_all_of_them(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = AskSpy(monkeypatch)
    summary = _run(tmp_path, mlflow_store_factory, lambda p: 10.0, workers=4, trials=12)
    assert summary.counts["completed"] == 12
    # The initial design fills the 4 workers; each wave of 4 finishing together gets one ask(4).
    assert [(n, strategy) for n, *_, strategy in spy.calls] == [(4, "sobol"), (4, "ei"), (4, "ei")]
    for n, pending, observed, returned, _ in spy.calls:
        assert len(set(returned)) == n  # distinct
        assert not set(returned) & (pending | observed)


@pytest.mark.slow
def test_batched_points_differ_from_the_trials_still_running(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half the trials run longer: the batch for the others is asked with them pending."""
    spy = AskSpy(monkeypatch)
    summary = _run(tmp_path, mlflow_store_factory, lambda p: 10.0 if float(p["x"]) < 0.0 else 25.0,
                   workers=6, trials=18)
    assert summary.counts["completed"] == 18
    assert sum(n for n, *_ in spy.calls) == 18  # one ask per wave, never one per worker
    assert len(spy.calls) < 18 - 6
    with_pending = [c for c in spy.calls if c[1] and c[0] >= 2 and c[4] == "ei"]
    assert with_pending, spy.calls
    for n, pending, observed, returned, _ in spy.calls:
        assert len(set(returned)) == n
        assert not set(returned) & (pending | observed)


@pytest.mark.slow
def test_batches_are_bounded_so_the_first_workers_start_early(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wave larger than ``ASK_BATCH_MAX`` is asked for in bounded batches, each launched at once."""
    import autotune.study._study as study_module

    assert study_module.ASK_BATCH_MAX == 8
    monkeypatch.setattr(study_module, "ASK_BATCH_MAX", 3)
    spy = AskSpy(monkeypatch)
    summary = _run(tmp_path, mlflow_store_factory, lambda p: 10.0, workers=4, trials=8)
    assert summary.counts["completed"] == 8
    assert [n for n, *_ in spy.calls] == [3, 1, 3, 1]
    for n, pending, observed, returned, _ in spy.calls:
        assert len(set(returned)) == n and not set(returned) & (pending | observed)
