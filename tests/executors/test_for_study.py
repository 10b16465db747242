"""``Executor.for_study``: each executor adapts a study's folder and parallelism itself."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from autotune.exceptions import ConfigError
from autotune.executors import (
    Executor,
    InProcessExecutor,
    LocalExecutor,
    SimulatedExecutor,
    _registry,
    get_executor_class,
    register_executor,
)
from autotune.executors._local import _PACKAGE_ROOT
from autotune.study import Study, load_study_config
from autotune.trial import TrialSpec
from tests.study.helpers import write_study


class _Parallelism:
    workers = 3
    trials_per_gpu = 2


class RecordingExecutor(InProcessExecutor):
    """A plugin that keeps what the study gave its hook."""

    calls: ClassVar[list[tuple[str, int, dict[str, Any]]]] = []

    @classmethod
    def for_study(cls, study_dir: str | os.PathLike[str], parallelism: Any, options: dict[str, Any]) -> Any:
        cls.calls.append((os.fspath(study_dir), parallelism.workers, dict(options)))
        return super().for_study(study_dir, parallelism, options)


class InheritingExecutor(InProcessExecutor):
    """A plugin that does not override the hook."""


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    copy = dict(_registry._REGISTRY)
    monkeypatch.setattr(_registry, "_REGISTRY", copy)
    return copy


@pytest.fixture
def keep_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_a_registered_plugin_gets_for_study_with_the_study_folder(
    tmp_path: Path, registry: dict[str, Any], keep_sys_path: None
) -> None:
    register_executor("recording")(RecordingExecutor)
    RecordingExecutor.calls.clear()
    path = write_study(tmp_path / "s", executor={"name": "recording", "options": {"threaded": True}})
    executor = Study(load_study_config(path))._make_executor()
    assert isinstance(executor, RecordingExecutor) and executor.threaded and executor.n_workers == 2
    assert RecordingExecutor.calls == [(str((tmp_path / "s").resolve()), 2, {"threaded": True})]
    assert str((tmp_path / "s").resolve()) in sys.path  # InProcessExecutor's own hook, inherited


def test_a_plugin_inherits_the_hook_and_bad_options_name_the_study_key(
    tmp_path: Path, registry: dict[str, Any], keep_sys_path: None
) -> None:
    register_executor("inheriting")(InheritingExecutor)
    path = write_study(tmp_path / "s", executor={"name": "inheriting", "options": {}})
    executor = Study(load_study_config(path))._make_executor()
    assert type(executor) is InheritingExecutor and executor.n_workers == 2
    path = write_study(tmp_path / "t", executor={"name": "inheriting", "options": {"nope": 1}})
    with pytest.raises(ConfigError, match=r"executor.options.*nope"):
        Study(load_study_config(path))._make_executor()


def test_a_factory_function_is_not_an_executor_class(registry: dict[str, Any]) -> None:
    register_executor("factory")(lambda **kw: InProcessExecutor(**kw))
    with pytest.raises(ConfigError, match="Executor subclass"):
        get_executor_class("factory")
    assert get_executor_class("local") is LocalExecutor


def test_local_trials_import_from_the_study_folder_first(tmp_path: Path) -> None:
    options = {"env": {"PYTHONPATH": "/extra", "A": "1"}}
    executor = LocalExecutor.for_study(tmp_path, _Parallelism(), options)
    assert options == {"env": {"PYTHONPATH": "/extra", "A": "1"}}  # the caller's options are not changed
    assert executor.n_workers == 3 and executor.trials_per_gpu == 2 and executor.leaves_trial_files

    class _Job:
        gpu_ids: ClassVar[list[str]] = []
        trial_id = 0
        workdir = tmp_path
        params_path = fixed_args_path = reports_path = tmp_path / "x"
        spec = TrialSpec(trial_id=0, params={}, entry_point="m:f")

    paths = executor._child_env(_Job())["PYTHONPATH"].split(os.pathsep)  # type: ignore[arg-type]
    assert paths[:3] == [_PACKAGE_ROOT, str(tmp_path), "/extra"] and os.getcwd() in paths


def test_in_process_executors_put_the_study_folder_on_sys_path(tmp_path: Path, keep_sys_path: None) -> None:
    (tmp_path / "simfns.py").write_text("def duration(p):\n    return 2.0\n\ndef objective(p):\n    return 1.0\n")
    executor = SimulatedExecutor.for_study(
        tmp_path, _Parallelism(), {"duration_fn": "simfns:duration", "objective_fn": "simfns:objective"}
    )
    assert str(tmp_path) in sys.path and executor.n_workers == 3
    assert executor.duration_fn({}) == 2.0 and executor.objective_fn({}) == 1.0
    assert not executor.leaves_trial_files
    spec = TrialSpec(trial_id=0, params={}, entry_point="simfns:objective")
    assert executor.adopt(tmp_path, spec, root=tmp_path) is None  # the base: cannot re-attach
    assert isinstance(InProcessExecutor.for_study(tmp_path, _Parallelism(), {}), Executor)
    assert sys.path.count(str(tmp_path)) == 1
