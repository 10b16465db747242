"""Ax experiments (JSON) in and out of autotune, through Ax's own encoders (no mocks)."""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import pytest

from autotune import Optimizer
from autotune.exceptions import ConfigError, MissingExtraError
from autotune.integrations import import_trials, study_history
from autotune.integrations.ax import load_experiment, save_experiment
from autotune.space import Bool, Categorical, Fixed, Float, Int, Ordinal, SearchSpace
from autotune.trial import TrialState


@pytest.fixture(scope="module")
def ax_client_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict], list[float | None]]:
    """An experiment made with Ax's Client: 4 completed trials and a failed one, saved both ways."""
    from ax import ChoiceParameterConfig, Client, RangeParameterConfig
    from ax.storage.json_store.save import save_experiment as ax_save

    client = Client(random_seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.configure_experiment(name="ax-demo", parameters=[
            RangeParameterConfig(name="x", bounds=(-1.0, 1.0), parameter_type="float"),
            RangeParameterConfig(name="lr", bounds=(1e-5, 1e-1), parameter_type="float", scaling="log"),
            RangeParameterConfig(name="n", bounds=(1, 8), parameter_type="int"),
            ChoiceParameterConfig(name="act", values=["relu", "tanh", "gelu"], parameter_type="str", is_ordered=False),
            ChoiceParameterConfig(name="bs", values=[16, 32, 64], parameter_type="int", is_ordered=True),
            ChoiceParameterConfig(name="bn", values=[False, True], parameter_type="bool"),
        ])
        client.configure_optimization(objective="-val_loss")
    params = [
        {"x": 0.1 * i, "lr": 10.0 ** (-1 - i), "n": i + 1, "act": ["relu", "tanh", "gelu"][i % 3], "bs": [16, 32, 64][i % 3],
         "bn": bool(i % 2)}
        for i in range(5)
    ]
    values: list[float | None] = [0.5, 0.25, None, 0.75, 0.125]
    for p, v in zip(params, values):
        index = client.attach_trial(p)
        if v is None:
            client.mark_trial_failed(index, failed_reason="oom")
        else:
            client.complete_trial(index, raw_data={"val_loss": v, "n_params": 10.0 * p["n"]})
    folder = tmp_path_factory.mktemp("ax")
    experiment_file, snapshot_file = folder / "experiment.json", folder / "client.json"
    ax_save(client._experiment, str(experiment_file))
    client.save_to_json_file(str(snapshot_file))
    return experiment_file, snapshot_file, params, values


def test_ax_experiment_json_imports_as_observations(ax_client_file: tuple) -> None:
    experiment_file, snapshot_file, params, values = ax_client_file
    history = load_experiment(experiment_file)
    assert history.metric == "val_loss" and history.direction == "minimize" and history.name == "ax-demo"
    space = history.space
    assert space["x"] == Float("x", low=-1.0, high=1.0) and space["lr"] == Float("lr", low=1e-5, high=0.1, log=True)
    assert space["n"] == Int("n", low=1, high=8) and space["act"] == Categorical("act", choices=("relu", "tanh", "gelu"))
    assert space["bs"] == Ordinal("bs", values=(16, 32, 64)) and space["bn"] == Bool("bn")
    assert [o.params for o in history.observations] == params
    assert [o.value for o in history.observations] == values
    assert [o.state for o in history.observations] == [TrialState.COMPLETED] * 2 + [TrialState.FAILED] + [
        TrialState.COMPLETED] * 2
    assert history.observations[1].metrics == {"n_params": 20.0}
    snapshot = load_experiment(snapshot_file)  # a Client snapshot holds the same experiment
    assert [(o.params, o.value) for o in snapshot.observations] == [(o.params, o.value) for o in history.observations]

    opt = Optimizer(space, "ei", seed=0)
    import_trials(opt, history)
    assert opt.best().value == 0.125 and sum(o.state is TrialState.FAILED for o in opt.observations) == 1


def test_ax_to_autotune_to_ax_keeps_params_and_values(ax_client_file: tuple, tmp_path: Path) -> None:
    from ax.storage.json_store.load import load_experiment as ax_load

    experiment_file, _, params, values = ax_client_file
    history = load_experiment(experiment_file)
    out = tmp_path / "back.json"
    save_experiment(history, out)

    experiment = ax_load(str(out))  # Ax reads it with its own decoder
    assert experiment.optimization_config.objective.minimize
    assert [t.arm.parameters for _, t in sorted(experiment.trials.items())] == params
    assert [t.status.is_completed for _, t in sorted(experiment.trials.items())] == [v is not None for v in values]
    df = experiment.lookup_data().df
    means = {int(r.trial_index): r.mean for r in df.itertuples() if r.metric_name == "val_loss"}
    assert [means.get(i) for i in range(5)] == values
    again = load_experiment(out)
    assert again.space == history.space
    assert [(o.params, o.value, o.state, o.metrics) for o in again.observations] == [
        (o.params, o.value, o.state, o.metrics) for o in history.observations]


def test_an_autotune_history_exports_to_ax_with_every_parameter_kind(tmp_path: Path) -> None:
    space = SearchSpace([Float("lr", low=1e-4, high=1.0, log=True), Int("k", low=0, high=8, step=4), Bool("bn"),
                         Ordinal("w", values=(8, 16)), Categorical("c", choices=("a",)), Fixed("seed", value=7)])
    opt = Optimizer(space, "sobol", direction="maximize", seed=0)
    for s in opt.ask(4):
        opt.tell(s, None if s.trial_id == 2 else math.log(s.params["lr"]) + s.params["k"], state="oom" if s.trial_id == 2 else None,
                 metrics={"mem_gb": 1.5})
    history = study_history(opt)
    history.metric = "val-acc"  # not a valid Ax expression name: exported through the metric form
    save_experiment(history, tmp_path / "opt.json")
    back = load_experiment(tmp_path / "opt.json")
    assert back.direction == "maximize" and back.metric == "val-acc" and back.space == space
    assert [(o.params, o.state) for o in back.observations] == [(o.params, o.state) for o in opt.observations]
    # Ax's JSON encoder writes data means with 10 decimals
    assert [o.value for o in back.observations] == pytest.approx([o.value for o in opt.observations], abs=1e-10)
    assert back.observations[2].state is TrialState.OOM and back.observations[0].metrics == {"mem_gb": 1.5}


def test_bad_files_and_paths_get_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"__type": "GenerationStrategy"}))
    with pytest.raises(ConfigError, match="is not an Ax experiment.*GenerationStrategy"):
        load_experiment(bad)
    history = study_history(Optimizer(SearchSpace([Float("x")]), "random"))
    with pytest.raises(ConfigError, match=r"must end in .json.*Fix: use .*out.json"):
        save_experiment(history, tmp_path / "out.txt")


def test_a_missing_ax_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ax", None)  # what an environment without ax-platform looks like
    with pytest.raises(MissingExtraError, match=r"pip install 'autotune\[ax\]'"):
        load_experiment(tmp_path / "x.json")
