"""StudyConfig: the study file validated, defaults applied once, errors that say what to do."""

from __future__ import annotations

import datetime
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
                                       "cpus_per_trial": 1, "driver_gpu": None, "ask_process": False}
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


# -- bad input of every kind: one StudyConfigError naming file, key and value ----------------------


@pytest.mark.parametrize(
    ("overrides", "key", "value"),
    [
        ({"budget": {"max_trials": True}}, "budget.max_trials", True),
        ({"budget": {"max_trials": 5.0}}, "budget.max_trials", 5.0),
        ({"budget": {"max_time_s": "3600"}}, "budget.max_time_s", "3600"),
        ({"budget": {"max_time_s": float("inf")}}, "budget.max_time_s", float("inf")),
        ({"parallelism": {"workers": True}}, "parallelism.workers", True),
        ({"parallelism": {"workers": 10**7}}, "parallelism.workers", 10**7),
        ({"seed": False}, "seed", False),
        ({"seed": 2**64}, "seed", 2**64),
        ({"trial": {"entry_point": f"{'m'}:f", "timeout_s": True}}, "trial.timeout_s", True),
        ({"constraints": ["n_params <= nan"]}, "constraints[0]", "n_params <= nan"),
        ({"constraints": ["n_params >= -inf"]}, "constraints[0]", "n_params >= -inf"),
        ({"constraints": [" <= 3"]}, "constraints[0]", " <= 3"),
        ({"tracking_uri": "sqlite:///:memory:"}, "tracking_uri", "sqlite:///:memory:"),
        ({"tracking_uri": "sqlite://"}, "tracking_uri", "sqlite://"),
        ({"tracking_uri": "sqlite:///file:x?mode=memory&uri=true"}, "tracking_uri",
         "sqlite:///file:x?mode=memory&uri=true"),
        ({"tracking_uri": "ftp://host/x"}, "tracking_uri", "ftp"),
        ({"tracking_uri": "http://"}, "tracking_uri", "http://"),
        ({"tracking_uri": "mailto:me"}, "tracking_uri", "mailto:me"),
        ({"space": {"parameters": {"e": {"type": "fixed", "value": 3}}}}, "space", "e"),
        ({"space": {"parameters": {"x": {"type": "bool"}}, "parmeters": {}}}, "space.parmeters", {}),
        ({"space": {"include": ["nope.yaml"], "parameters": {"x": {"type": "bool"}}}}, "space.include", "nope.yaml"),
        ({"strategy": {"name": "ei", "options": {"raw_samples": -5}}}, "strategy.options.raw_samples", -5),
        ({"strategy": {"name": "ei", "options": {"num_restarts": True}}}, "strategy.options.num_restarts", True),
        ({"strategy": {"name": "ei", "options": {"num_restarts": 64, "raw_samples": 16}}},
         "strategy.options.raw_samples", 16),
        ({"strategy": {"name": "ucb", "options": {"beta": float("nan")}}}, "strategy.options.beta", None),
        ({"strategy": {"name": "ucb", "options": {"delta": "0.1"}}}, "strategy.options.delta", "0.1"),
        ({"strategy": {"name": "local_penalization", "options": {"lipschitz": "big"}}},
         "strategy.options.lipschitz", "big"),
        ({"strategy": {"name": "qei", "options": {"mc_samples": 10**9}}}, "strategy.options.mc_samples", 10**9),
        ({"strategy": {"name": "ei", "options": {"where": 1}}}, "strategy.options.where", 1),
        ({"executor": {"name": "local", "options": {"kill_grace": 3}}}, "executor.options.kill_grace", 3),
        ({"executor": {"name": "local", "options": {"kill_grace_s": "3"}}}, "executor.options.kill_grace_s", "3"),
        ({"executor": {"name": "local", "options": {"kill_grace_s": -1}}}, "executor.options.kill_grace_s", -1),
        ({"executor": {"name": "slurm", "options": {"mem_gb": True}}}, "executor.options.mem_gb", True),
        ({"executor": {"name": "ray", "options": {"adress": "auto"}}}, "executor.options.adress", "auto"),
        ({"trial": {"entry_point": "m:f", "fixed_args": {"d": datetime.date(2020, 1, 1)}}}, "trial.fixed_args.d",
         datetime.date(2020, 1, 1)),
        ({"trial": {"entry_point": "m:f", "fixed_args": {"x": float("nan")}}}, "trial.fixed_args.x", None),
    ],
    ids=lambda v: str(v)[:40] if not isinstance(v, dict) else None,
)
def test_invalid_values_are_refused_naming_file_key_and_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, object], key: str, value: object
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    path = tmp_path / "studies" / "x.yaml"
    path.write_text(yaml.safe_dump(study_dict(**overrides), sort_keys=False, allow_unicode=True), encoding="utf-8")
    with pytest.raises(StudyConfigError) as info:
        load_study_config("studies/x.yaml")
    error = info.value
    assert error.where == f"studies/x.yaml: {key}", str(error)
    if value is not None:
        assert error.value == value, str(error)
    assert error.fix, str(error)


def test_did_you_mean_for_executor_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(tmp_path, monkeypatch, study_dict(executor={"name": "local", "options": {"kill_grace": 3}}))
    assert "Fix: did you mean 'kill_grace_s'? Otherwise use one of: devices, env, kill_grace_s," in message


def test_a_duplicate_key_in_a_study_file_names_file_line_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = yaml.safe_dump(study_dict(), sort_keys=False) + "budget: {max_trials: 3}\n"
    (tmp_path / "x.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(StudyConfigError) as info:
        load_study_config("x.yaml")
    first = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("budget:"))
    assert info.value.where == f"x.yaml:{len(text.splitlines())}" and info.value.value == "budget"
    assert f"the first is on line {first}" in info.value.rule


def test_validation_is_bounded_for_a_huge_conditional_int(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import resource
    import time

    space = {"parameters": {"n": {"type": "int", "low": 1, "high": 10**12},
                            "y": {"type": "float", "low": 0, "high": 1, "when": {"n": {">=": 10**11}}}}}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(study_dict(space=space)), encoding="utf-8")
    load_study_config("x.yaml")  # warm imports
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    config = load_study_config("x.yaml")
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
    assert config.search_space.tunable == ["n", "y"]


def test_accepted_uris_and_paths(tmp_path: Path) -> None:
    for uri in ("sqlite:///runs/x.db", "sqlite:////abs/x.db", "http://127.0.0.1:5000", "https://mlflow.example.org",
                "postgresql+psycopg2://u@h/db", "file:///tmp/mlruns", "mlruns"):
        config = StudyConfig.from_dict(study_dict(tracking_uri=uri), study_file=tmp_path / "s.yaml")
        assert config.tracking_uri is not None


def test_check_entry_point_imports_and_checks_the_signature(tmp_path: Path) -> None:
    (tmp_path / "trainmod_ok.py").write_text(
        "def train(params, report, steps=1):\n    return 0.0\n"
        "def two(params):\n    return 0.0\n"
        "value = 3\n", encoding="utf-8")
    (tmp_path / "trainmod_broken.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")

    def config(entry_point: str, **fixed: object) -> StudyConfig:
        trial = {"entry_point": entry_point, "fixed_args": fixed}
        return StudyConfig.from_dict(study_dict(trial=trial), study_file=tmp_path / "s.yaml")

    config("trainmod_ok:train", steps=3).check_entry_point()
    cases = {
        "nosuch:train": "cannot be imported: no module named 'nosuch'",
        "trainmod_ok:nosuch": "names a function that module 'trainmod_ok' does not define",
        "trainmod_ok:value": "must name a callable",
        "trainmod_ok:two": "cannot be called as fn(params, report, **fixed_args)",
        "trainmod_broken:train": "fails to import (RuntimeError: boom)",
    }
    for entry_point, rule in cases.items():
        with pytest.raises(StudyConfigError) as info:
            config(entry_point).check_entry_point()
        assert info.value.where == f"{tmp_path / 's.yaml'}: trial.entry_point"
        assert info.value.rule.startswith(rule) and info.value.value == entry_point
    with pytest.raises(StudyConfigError, match="cannot be called"):
        config("trainmod_ok:train", epochs=3).check_entry_point()  # an argument train does not take


def test_strategy_constructors_check_ranges_directly() -> None:
    from autotune.exceptions import ConfigError
    from autotune.strategies import get_strategy

    for name, options in [("ei", {"raw_samples": -5}), ("ucb", {"beta": -1}), ("grid", {"points_per_float": 0}),
                          ("kmeans", {"kmeans_iter": 1.5}), ("diversity", {"n_candidates": 10**9}),
                          ("ei_per_cost", {"alpha": float("inf")}), ("constant_liar", {"lie": ["min"]})]:
        with pytest.raises(ConfigError, match=rf"^strategy\.options\.{next(iter(options))}: "):
            get_strategy(name, **options)


def test_a_study_file_names_a_shipped_space_by_name(tmp_path: Path) -> None:
    """``space: mlp`` reads the space shipped in the package; a local file of that name wins."""
    from autotune.space import load_space, shipped_space_path

    lr = {"parameters": {"lr": {"type": "float", "low": 1.0e-4, "high": 0.1, "log": True}}}
    config = load_study_config(_write(tmp_path, study_dict(space=["mlp", lr])))
    shipped = load_space(shipped_space_path("mlp"))
    assert list(config.search_space.parameters) == [*shipped.parameters, "lr"]
    assert config.space[0] == str(shipped_space_path("mlp"))  # resolved once, where the value enters

    _write(tmp_path, lr, name="mlp")  # a file called 'mlp' next to the study file is read instead
    assert list(load_study_config(_write(tmp_path, study_dict(space="mlp"))).search_space.parameters) == ["lr"]


def test_an_unknown_space_name_lists_the_shipped_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(tmp_path, monkeypatch, study_dict(space="mpl"))
    assert "names a space file that does not exist" in message and "mpl" in message and "mlp" in message
