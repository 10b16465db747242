"""StudyConfig: the study file validated, defaults applied once, errors that say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autotune.exceptions import StudyConfigError
from autotune.strategies import strategy_names
from autotune.study import StudyConfig, load_study_config
from tests.study.helpers import REPO_ROOT, study_dict


def _write(folder: Path, data: object, name: str = "x.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: object) -> str:
    """The message of loading ``data`` from ``studies/x.yaml`` (a relative path, as users type it)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir(exist_ok=True)
    _write(tmp_path / "studies", data)
    with pytest.raises(StudyConfigError) as info:
        load_study_config("studies/x.yaml")
    return str(info.value)


def test_unknown_key_names_file_key_and_the_closest_valid_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = study_dict(budget={"max_trial": 10})
    assert _error(tmp_path, monkeypatch, data) == (
        "studies/x.yaml: budget.max_trial: is not a known key, got 10. "
        "Fix: did you mean 'max_trials'? budget takes: max_time_s, max_trials."
    )
    top = study_dict(seeed=3)
    assert _error(tmp_path, monkeypatch, top).startswith(
        "studies/x.yaml: seeed: is not a known key, got 3. Fix: did you mean 'seed'? a study file takes: budget, "
    )


def test_unknown_strategy_lists_the_valid_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(tmp_path, monkeypatch, study_dict(strategy={"name": "bayes"}))
    assert message == (
        "studies/x.yaml: strategy.name: unknown strategy name, got 'bayes'. "
        f"Fix: use one of: {', '.join(strategy_names())}."
    )
    close = _error(tmp_path, monkeypatch, study_dict(strategy="eii"))  # the short form
    assert close.startswith("studies/x.yaml: strategy.name: unknown strategy name, got 'eii'. Fix: did you mean 'ei'?")


def test_strategy_options_are_checked_against_the_strategy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(tmp_path, monkeypatch, study_dict(strategy={"name": "ucb", "options": {"kappa": 2}}))
    assert message.startswith("studies/x.yaml: strategy.options.kappa: is not an option of strategy 'ucb', got 2. Fix: use one of:")


def test_max_trials_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _error(tmp_path, monkeypatch, study_dict(budget={"max_trials": 0})) == (
        "studies/x.yaml: budget.max_trials: must be >= 1, got 0. Fix: use e.g. max_trials: 50."
    )


def test_budget_needs_a_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _error(tmp_path, monkeypatch, study_dict(budget={})) == (
        "studies/x.yaml: budget: must set max_trials, max_time_s or both. Fix: write budget: {max_trials: 50}."
    )


def test_missing_objective(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = study_dict()
    del data["objective"]
    assert _error(tmp_path, monkeypatch, data) == (
        "studies/x.yaml: objective: is required. Fix: add objective: {metric: val_loss, direction: minimize}."
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"objective": {"metric": "loss", "direction": "down"}},
         "studies/x.yaml: objective.direction: must be 'minimize' or 'maximize', got 'down'. Fix: use e.g. direction: minimize."),
        ({"parallelism": {"workers": "two"}},
         "studies/x.yaml: parallelism.workers: must be an integer, got 'two'. Fix: use e.g. workers: 4."),
        ({"parallelism": {"trials_per_gpu": 2}},
         "studies/x.yaml: parallelism.trials_per_gpu: needs gpus_per_trial: 1 (only single-GPU trials share a "
         "device), got 2. Fix: set gpus_per_trial: 1, or trials_per_gpu: 1."),
        ({"constraints": ["n_params < 2e6"]},
         "studies/x.yaml: constraints[0]: must read 'metric <= number' or 'metric >= number', got 'n_params < 2e6'. "
         "Fix: write e.g. 'n_params <= 2e6'."),
        ({"executor": {"name": "locale"}},
         "studies/x.yaml: executor.name: unknown executor name, got 'locale'. Fix: did you mean 'local'? Otherwise "
         "use one of: inprocess, local, ray, simulated, slurm."),
        ({"executor": {"name": "local", "options": {"n_workers": 4}}},
         "studies/x.yaml: executor.options.n_workers: is set by parallelism.workers, got 4. "
         "Fix: remove it and set parallelism.workers instead."),
        ({"trial": {"entry_point": "train"}},
         "studies/x.yaml: trial.entry_point: must be 'module:function' or a path to a .py script, got 'train'. "
         "Fix: write e.g. entry_point: 'train:train' (train.py beside the study file) or 'scripts/train.py'."),
        ({"space": {"parameters": {"lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}}},
         "studies/x.yaml: space.parameters.lr.low: must be > 0 for a log-scaled float, got 0.0. "
         "Fix: use a positive lower bound such as 1e-5, or set log: false."),
    ],
)
def test_bad_values_name_key_value_and_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, object], expected: str
) -> None:
    assert _error(tmp_path, monkeypatch, study_dict(**overrides)) == expected


def test_file_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StudyConfigError, match=r"^nope\.yaml: study file not found\. Fix: check the path"):
        load_study_config("nope.yaml")
    (tmp_path / "bad.yaml").write_text("name: x\nspace: [a, b\n", encoding="utf-8")
    with pytest.raises(StudyConfigError, match=r"^bad\.yaml:3:1: is not valid YAML"):
        load_study_config("bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n", encoding="utf-8")
    with pytest.raises(StudyConfigError, match=r"^list\.yaml: must be a mapping of study keys, got 'list'"):
        load_study_config("list.yaml")


def test_paths_resolve_against_the_study_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Space files, scripts and the output folder are relative to the study file, not the cwd."""
    folder = tmp_path / "studies" / "demo"
    folder.mkdir(parents=True)
    (tmp_path / "spaces").mkdir()
    _write(tmp_path / "spaces", {"name": "xy", "parameters": {"x": {"type": "float", "low": 0, "high": 1}}}, "xy.yaml")
    (folder / "train.py").write_text("print('hi')\n", encoding="utf-8")
    data = study_dict(space=["../../spaces/xy.yaml", {"parameters": {"lr": {"type": "float", "low": 1e-4, "high": 0.1}}}],
                      trial={"entry_point": "train.py"})
    study_file = _write(folder, data, "study.yaml")
    monkeypatch.chdir(REPO_ROOT)  # anywhere else
    config = load_study_config(study_file)
    assert list(config.search_space.parameters) == ["x", "lr"]
    assert config.space == [str(tmp_path / "spaces" / "xy.yaml"), data["space"][1]]
    assert config.trial.entry_point == str(folder / "train.py")
    assert config.output_dir == folder / "runs" / "toy"
    assert config.tracking_uri == f"sqlite:///{folder / 'runs' / 'toy' / 'mlflow.db'}"
    assert config.study_file == study_file and config.base_dir == folder
    # defaults, applied once, visible in the resolved config
    resolved = config.to_dict()
    assert resolved["parallelism"] == {"workers": 2, "prefetch": 0, "gpus_per_trial": 0, "trials_per_gpu": 1,
                                       "cpus_per_trial": 1}
    assert resolved["on_orphans"] == "fail" and resolved["seed"] == 0 and resolved["initial_design"] == "sobol"
    assert resolved["space"]["parameters"]["lr"] == {"type": "float", "low": 1e-4, "high": 0.1}
    # a relative SQLite store is relative to the study file too
    study_file = _write(folder, {**data, "tracking_uri": "sqlite:///db/mlflow.db", "output_dir": "out"}, "other.yaml")
    other = load_study_config(study_file)
    assert other.tracking_uri == f"sqlite:///{folder / 'db' / 'mlflow.db'}" and other.output_dir == folder / "out"


def test_python_construction_equals_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = study_dict(executor={"name": "inprocess"}, output_dir="out")
    from_file = load_study_config(_write(tmp_path, data))
    in_python = StudyConfig(**data)
    assert in_python.to_dict() == from_file.to_dict()
    assert in_python.executor.options == {"threaded": True}  # 2 workers in-process: threads, by default
    assert StudyConfig.from_dict(in_python.to_dict()).to_dict() == in_python.to_dict()  # the resolved form reloads
    with pytest.raises(StudyConfigError, match=r"^budget\.max_trials: must be >= 1, got -1\."):
        StudyConfig.from_dict(study_dict(budget={"max_trials": -1}))


def test_overrides_merge_into_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, study_dict(budget={"max_trials": 6, "max_time_s": 60}))
    config = load_study_config(path, overrides={"budget": {"max_trials": 2}})
    assert (config.budget.max_trials, config.budget.max_time_s) == (2, 60)
    with pytest.raises(StudyConfigError, match=r"x\.yaml: budget\.max_trials: must be >= 1, got 0"):
        load_study_config(path, overrides={"budget": {"max_trials": 0}})


def test_the_example_studies_are_valid() -> None:
    for name in ("study.yaml", "smoke.yaml"):
        config = load_study_config(REPO_ROOT / "studies" / "quadratic" / name)
        assert "lr" in config.search_space.parameters and "width_1" in config.search_space.parameters
        assert config.trial.entry_point == "train:train" and config.objective.metric == "val_loss"
