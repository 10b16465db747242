"""Suggestions asked in a background process (``parallelism.ask_process``, :class:`AskAhead`).

The mirror is a real second Python process; the failures a user can meet (it cannot be
started, it dies, its ask raises) are injected, and the study must finish every trial in the
driver's own process with one warning.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autotune.executors import SimulatedExecutor
from autotune.optimizer import Optimizer
from autotune.space import SearchSpace
from autotune.study import Study, StudyConfig
from autotune.study._ahead import AskAhead, AskAheadError
from autotune.study._config import ASK_PROCESS_FROM
from autotune.study._study import wants_ask_process
from autotune.trial import TrialState
from tests.study.helpers import study_dict
from tests.study.trial_fns import sim_duration, sim_objective

GRID = SearchSpace.from_dict({"parameters": {
    "a": {"type": "categorical", "choices": ["p", "q", "r"]},
    "b": {"type": "int", "low": 0, "high": 1},
}})  # six points


def _told(n: int, seed: int = 0) -> Optimizer:
    opt = Optimizer(SearchSpace.from_dict({"parameters": {
        "x": {"type": "float", "low": -2.0, "high": 2.0}, "y": {"type": "float", "low": -2.0, "high": 2.0}}}),
        seed=seed, n_initial=5)
    for s in opt.ask(n) if n else []:
        opt.tell(s, (s.params["x"] - 1.0) ** 2 + s.params["y"] ** 2)
    return opt


def test_the_mirror_proposes_from_the_drivers_history_and_pending_set() -> None:
    opt = Optimizer(GRID, strategy="random", seed=0)
    ahead = AskAhead(opt)  # started with an empty history
    try:
        for s in opt.ask(3):
            opt.tell(s, 1.0)
        pending = opt.ask(2)
        ahead.request(1)
        got = ahead.collect(timeout_s=60.0)
        assert got is not None and len(got) == 1
        # The one point neither told nor pending in the driver: the mirror saw both.
        busy = {GRID.key(o.params) for o in opt.observations} | {GRID.key(s.params) for s in pending}
        assert len(busy) == 5 and GRID.key(got[0].params) not in busy
        # Adopted as the driver's own pending suggestion, with the driver's next trial id.
        assert got[0].trial_id == 5 and [s.trial_id for s in opt.pending] == [3, 4, 5]
    finally:
        ahead.close()


def test_model_based_proposals_once_the_mirror_has_the_initial_design() -> None:
    opt = _told(0)
    ahead = AskAhead(opt)
    try:
        for s in opt.ask(6):
            opt.tell(s, (s.params["x"] - 1.0) ** 2 + s.params["y"] ** 2)
        ahead.request(2)
        got = ahead.collect(timeout_s=120.0)
        assert got is not None and [s.info["strategy"] for s in got] == ["ei", "ei"]
        assert all(math.isfinite(s.info["pred_mean"]) for s in got)
        assert len({s.info["batch_id"] for s in got}) == 1  # one batch, numbered by the driver
        assert ahead.asks == 1 and not ahead.busy
    finally:
        ahead.close()


def test_a_point_proposed_meanwhile_is_dropped() -> None:
    opt = Optimizer(GRID, strategy="random", seed=0)
    for s in opt.ask(5):
        opt.tell(s, 1.0)
    ahead = AskAhead(opt)
    try:
        ahead.request(1)
        last = opt.ask(1)  # the driver takes the last free point before the mirror answers
        got = ahead.collect(timeout_s=60.0)
        assert got == [] and ahead.dropped == 1
        assert [s.trial_id for s in opt.pending] == [last[0].trial_id]
    finally:
        ahead.close()


def test_an_optimizer_that_cannot_be_sent_is_refused_with_its_cause() -> None:
    opt = _told(0)
    opt.known_cost = lambda X: X.sum(-1)  # a closure: not picklable
    with pytest.raises(AskAheadError, match="cannot be sent to a second process"):
        AskAhead(opt)


def test_a_dead_mirror_is_reported_not_waited_for() -> None:
    opt = _told(6)
    ahead = AskAhead(opt)
    try:
        os.kill(ahead._proc.pid, signal.SIGKILL)
        ahead._proc.wait()
        with pytest.raises(AskAheadError, match="gone"):
            ahead.request(1)
            ahead.collect(timeout_s=10.0)
    finally:
        ahead.close()


def test_the_mirror_exits_by_itself_when_the_driver_is_gone() -> None:
    """A SIGKILLed driver closes the pipe without a word: the mirror must not outlive it."""
    ahead = AskAhead(_told(6))
    ahead.request(2)  # mid-ask when its input closes
    ahead._to.close()
    assert ahead._proc.wait(timeout=60) == 0
    ahead.close()


def test_a_raising_ask_is_reported_with_its_traceback() -> None:
    opt = _told(6)
    ahead = AskAhead(opt)
    try:
        ahead.request(1)
        assert ahead.collect(timeout_s=60.0)
        ahead._optimizer.observations.append("not an observation")  # type: ignore[arg-type]
        ahead.request(1)
        with pytest.raises(AskAheadError, match="its ask raised"):
            ahead.collect(timeout_s=60.0)
    finally:
        ahead.close()


def _study(tmp_path: Path, store_factory: Callable[[Path], str], **parallelism: Any) -> tuple[StudyConfig, SimulatedExecutor]:
    config = StudyConfig(**study_dict(
        name="ahead", strategy={"name": "ei"}, budget={"max_trials": 24},
        parallelism={"workers": 4, "prefetch": 2, **parallelism}, executor={"name": "simulated"},
        output_dir=str(tmp_path / "out"),
    ))
    store_factory(config.resolved_output_dir)
    return config, SimulatedExecutor(4, duration_fn=sim_duration, objective_fn=sim_objective)


def _spy(monkeypatch: pytest.MonkeyPatch, kill_after: int | None = None) -> list[int]:
    """Count the suggestions the mirror gave; with ``kill_after``, SIGKILL it after that many answers."""
    adopted: list[int] = []
    real = AskAhead.collect

    def collect(self: AskAhead, timeout_s: float = 0.0) -> Any:
        if kill_after is not None and self.asks >= kill_after and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        out = real(self, timeout_s)
        adopted.extend(s.trial_id for s in out or [])
        return out

    monkeypatch.setattr(AskAhead, "collect", collect)
    return adopted


def test_a_study_runs_its_trials_from_the_mirrors_suggestions(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    adopted = _spy(monkeypatch)
    config, executor = _study(tmp_path, mlflow_store_factory, ask_process=True)
    summary = Study(config, executor=executor).optimize(progress=False)
    assert summary.counts["completed"] == 24 and summary.n_trials == 24
    assert adopted  # some trials ran the mirror's suggestions
    recorded = list(Study(config).trials().index)
    assert len(recorded) == len(set(recorded)) == 24
    assert set(adopted) & set(recorded)


def test_a_study_whose_mirror_dies_finishes_in_the_drivers_process(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    adopted = _spy(monkeypatch, kill_after=1)
    config, executor = _study(tmp_path, mlflow_store_factory, ask_process=True)
    with pytest.warns(RuntimeWarning, match=r"asked in the driver's process from now on.*process is gone"):
        summary = Study(config, executor=executor).optimize(progress=False)
    assert summary.counts["completed"] == 24 and summary.n_trials == 24
    assert adopted  # it answered once before it died


def test_ask_process_default_and_refusals() -> None:
    def cfg(workers: int, strategy: str = "ei", ask_process: bool | None = None) -> StudyConfig:
        return StudyConfig(**study_dict(strategy={"name": strategy},
                                        parallelism={"workers": workers, "ask_process": ask_process}))

    # resolved with the file: on from ASK_PROCESS_FROM workers for a strategy that can use it
    assert cfg(ASK_PROCESS_FROM).parallelism.ask_process is True
    assert cfg(ASK_PROCESS_FROM - 1).parallelism.ask_process is False
    assert cfg(ASK_PROCESS_FROM, "random").parallelism.ask_process is False
    assert cfg(ASK_PROCESS_FROM, "mobster").parallelism.ask_process is False
    assert cfg(ASK_PROCESS_FROM, ask_process=False).parallelism.ask_process is False
    assert cfg(2, ask_process=True).parallelism.ask_process is True
    opt = _told(0)
    assert wants_ask_process(cfg(ASK_PROCESS_FROM), opt)
    assert not wants_ask_process(cfg(ASK_PROCESS_FROM), Optimizer(GRID, strategy="random"))
    for strategy, why in (("random", "without a model"), ("mobster", "curves")):
        with pytest.raises(ValueError, match=rf"parallelism.ask_process.*{why}.*Fix"):
            cfg(4, strategy, ask_process=True)
    with pytest.raises(ValueError, match="ask_process"):
        cfg(4, ask_process="yes")  # type: ignore[arg-type]


def test_the_mirror_is_asked_only_for_the_models_points(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The initial design is the driver's: a mirror asked then proposes the same Sobol points, all dropped."""
    states: list[tuple[bool, int]] = []
    real = AskAhead.request

    def request(self: AskAhead, n: int) -> None:
        opt = self._optimizer
        states.append((opt.models_next, len(opt.observations)))
        real(self, n)

    monkeypatch.setattr(AskAhead, "request", request)
    adopted = _spy(monkeypatch)
    config, executor = _study(tmp_path, mlflow_store_factory, ask_process=True)
    Study(config, executor=executor).optimize(progress=False)
    assert states and all(ready for ready, _ in states)
    assert min(told for _, told in states) >= 1  # not before a trial has a value
    assert adopted


def test_models_next_follows_the_initial_design() -> None:
    from autotune import Float

    opt = Optimizer(SearchSpace([Float("x", 0.0, 1.0)]), "ei", n_initial=3, seed=0)
    assert not opt.models_next
    first = opt.ask(3)
    assert not opt.models_next  # proposed, but nothing has a value yet
    opt.tell(first[0], None, state=TrialState.FAILED)
    assert not opt.models_next  # a failure is no value
    opt.tell(first[1], 0.5)
    assert opt.models_next
    assert not Optimizer(SearchSpace([Float("x", 0.0, 1.0)]), "random", seed=0).models_next
