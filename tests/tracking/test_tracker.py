"""MlflowTracker against real MLflow: a SQLite store and a local ``mlflow server``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from autotune.exceptions import ConfigError, TrackingError
from autotune.tracking import (
    TAG_ACQ_VALUE,
    TAG_FAILURE_REASON,
    TAG_REQUEUE,
    TAG_SEED,
    TAG_STRATEGY,
    MlflowTracker,
    _tracker,
)
from autotune.trial import TrialResult, TrialState

CONFIG = {"strategy": {"name": "qei", "q": 2}, "seed": 7, "space": {"lr": {"low": 1e-5}}}


def _artifacts(tracker: MlflowTracker, run_id: str, path: str | None = None) -> dict[str, int]:
    return {f.path: f.file_size for f in tracker.client.list_artifacts(run_id, path)}


def test_mlflow_limits_match_this_mlflow() -> None:
    from mlflow.utils import validation

    assert _tracker.MAX_TAG_VAL_LENGTH == validation.MAX_TAG_VAL_LENGTH
    assert _tracker.MAX_PARAM_VAL_LENGTH == validation.MAX_PARAM_VAL_LENGTH
    assert _tracker.MAX_ENTITY_KEY_LENGTH == validation.MAX_ENTITY_KEY_LENGTH


def test_ids_before_the_study_starts_raise_with_advice(sqlite_tracker: MlflowTracker) -> None:
    with pytest.raises(TrackingError, match=r"Fix: call start_study\(\)"):
        _ = sqlite_tracker.parent_run_id
    assert sqlite_tracker.find_study() is None


def test_second_start_study_resumes_the_one_parent_run(
    tracker: MlflowTracker, tmp_path: Path
) -> None:
    study_file = tmp_path / "demo.yaml"
    study_file.write_text("name: demo\n")
    parent = tracker.start_study(CONFIG, study_file, {"team": "chem"})
    tracker.end_study("KILLED")

    again = MlflowTracker(tracker.tracking_uri, tracker.study_name)
    assert again.start_study(CONFIG, None, {}) == parent
    assert again.experiment_id == tracker.experiment_id
    studies = again.client.search_runs(
        [again.experiment_id], "tags.`autotune.role` = 'study'", max_results=10
    )
    assert [run.info.run_id for run in studies] == [parent]
    run = again.client.get_run(parent)
    assert run.info.status == "RUNNING"
    assert run.data.tags[TAG_STRATEGY] == "qei"
    assert run.data.tags[TAG_SEED] == "7"
    assert run.data.tags["team"] == "chem"
    assert {"python", "mlflow", "torch"} <= {
        key.removeprefix("autotune.version.") for key in run.data.tags
    }
    assert set(_artifacts(again, parent, "study")) == {"study/config.yaml", "study/demo.yaml"}
    # MLflow 3's UI opens the experiment on its model-training view, not the GenAI overview.
    experiment = again.client.get_experiment(again.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_params_round_trip_with_their_types(tracker: MlflowTracker) -> None:
    import numpy as np

    params = {
        "lr": 0.1 + 0.2,
        "tiny": 5e-324,
        "n_layers": 3,
        "big": 2**62 + 1,
        "batch_norm": True,
        "act": "relu",
        "dropout": None,
        "widths": [64, 32],
        "np_int": np.int64(4),
        "np_float": np.float64(1 / 3),
    }
    tracker.start_study(CONFIG)
    run_id = tracker.start_trial(0, params, {TAG_ACQ_VALUE: 0.25})

    [loaded] = tracker.load_trials()
    assert loaded.run_id == run_id
    assert loaded.params == {**params, "np_int": 4, "np_float": 1 / 3}
    for key, value in loaded.params.items():
        expected = {"np_int": int, "np_float": float}.get(key, type(params[key]))
        assert type(value) is expected, key
    assert loaded.params["lr"].hex() == (0.1 + 0.2).hex()
    assert loaded.state is TrialState.RUNNING and loaded.status == "RUNNING"
    assert loaded.tags[TAG_ACQ_VALUE] == "0.25"
    mlflow_params = tracker.client.get_run(run_id).data.params
    assert mlflow_params["n_layers"] == "3" and mlflow_params["batch_norm"] == "True"


def test_params_and_metrics_longer_than_a_tag_go_to_artifacts(tracker: MlflowTracker) -> None:
    params = {"smiles": "C" * 5000, "notes": "n" * 4000, "x": 0.5}  # > 8000 characters of JSON
    metrics = {f"validation_rmse_of_fold_{i:03d}": i / 3 for i in range(200)}  # > 8000 too
    tracker.start_study(CONFIG)
    run_id = tracker.start_trial(0, params)
    tracker.end_trial(run_id, TrialResult(0, TrialState.COMPLETED, metrics=metrics))
    [loaded] = tracker.load_trials()
    assert (loaded.params, loaded.metrics) == (params, metrics)
    assert loaded.tags["autotune.params"] == "@artifact:trial/params.json"


def test_more_than_1000_reported_points_all_arrive(tracker: MlflowTracker) -> None:
    tracker.start_study(CONFIG)
    run_id = tracker.start_trial(0, {"lr": 0.1})
    reports = [{"step": s, "loss": 1.0 / (s + 1), "acc": s / 600} for s in range(550)]
    reports[3]["loss"] = math.nan  # skipped
    reports[4]["note"] = "warm-up"  # not a number: skipped
    tracker.log_reports(run_id, reports)
    tracker.log_reports(run_id, [{"loss": 0.5}, {"loss": 0.25}])  # no step: continues at 550

    loss = tracker.client.get_metric_history(run_id, "loss")
    assert len(loss) + len(tracker.client.get_metric_history(run_id, "acc")) == 551 + 550
    by_step = {m.step: m.value for m in loss}
    assert 3 not in by_step and by_step[551] == 0.25 and by_step[10] == 1 / 11


def test_end_states_map_to_run_statuses(tracker: MlflowTracker, tmp_path: Path) -> None:
    stdout = tmp_path / "stdout.txt"
    stdout.write_text("epoch 1\n")
    error = "Traceback (most recent call last):\n" + "  frame\n" * 2000 + "ValueError: boom"
    tracker.start_study(CONFIG)
    expected = {
        TrialState.COMPLETED: "FINISHED",
        TrialState.FAILED: "FAILED",
        TrialState.OOM: "FAILED",
        TrialState.NONFINITE: "FAILED",
        TrialState.TIMEOUT: "FAILED",
        TrialState.KILLED: "KILLED",
    }
    runs = {}
    for trial_id, state in enumerate(expected):
        runs[state] = tracker.start_trial(trial_id, {"lr": 0.1})
        completed = state is TrialState.COMPLETED
        result = TrialResult(
            trial_id,
            state,
            metrics={"objective": 0.5 if completed else math.nan},
            error=error if state is TrialState.FAILED else None,
            device="cuda:1",
            duration_s=12.5,
            stdout_path=str(stdout) if completed else None,
        )
        tracker.end_trial(runs[state], result, {"autotune.note": "x"})

    for state, run_id in runs.items():
        run = tracker.client.get_run(run_id)
        tags = run.data.tags
        assert (run.info.status, tags["autotune.state"]) == (expected[state], state.value)
        assert tags["autotune.device"] == "cuda:1" and tags["autotune.duration_s"] == "12.5"
        assert tags["autotune.note"] == "x"
        if state is TrialState.COMPLETED:
            assert run.data.metrics == {"objective": 0.5, "param/lr": 0.1}
            assert TAG_FAILURE_REASON not in tags
        else:
            assert "objective" not in run.data.metrics  # NaN is not logged as an MLflow metric
            assert tags["autotune.nonfinite_metrics"] == "objective"
    assert "logs/stdout.txt" in _artifacts(tracker, runs[TrialState.COMPLETED], "logs")
    assert tracker.client.get_run(runs[TrialState.OOM]).data.tags[TAG_FAILURE_REASON] == "oom"
    assert tracker.client.get_run(runs[TrialState.KILLED]).data.tags.get(TAG_FAILURE_REASON) is None
    failed = tracker.client.get_run(runs[TrialState.FAILED]).data.tags[TAG_FAILURE_REASON]
    assert failed == "ValueError: boom"  # one line; the traceback is in trial/error.txt
    full = tracker.client.download_artifacts(
        runs[TrialState.FAILED], "trial/error.txt", str(tmp_path)
    )
    assert Path(full).read_text() == error


def test_end_trial_refuses_an_unfinished_state(sqlite_tracker: MlflowTracker) -> None:
    sqlite_tracker.start_study(CONFIG)
    run_id = sqlite_tracker.start_trial(0, {})
    with pytest.raises(TrackingError, match="needs a finished state, got 'running'"):
        sqlite_tracker.end_trial(run_id, TrialResult(0, TrialState.RUNNING))


def test_load_trials_returns_exactly_what_was_recorded(
    tracker: MlflowTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_tracker, "_SEARCH_PAGE_SIZE", 2)  # several pages of real pagination
    tracker.start_study(CONFIG)
    recorded = {}
    for trial_id in (7, 0, 3, 1, 5):  # out of order on purpose
        params = {"lr": 10.0**-trial_id, "n": trial_id, "use_bn": trial_id % 2 == 0}
        state = TrialState.FAILED if trial_id == 3 else TrialState.COMPLETED
        metrics = {} if trial_id == 3 else {"objective": trial_id / 7, "n_params": 1e6}
        run_id = tracker.start_trial(trial_id, params)
        if trial_id != 5:  # trial 5 is still running
            tracker.end_trial(run_id, TrialResult(trial_id, state, metrics=metrics, error="oops"))
        recorded[trial_id] = (run_id, params, state, metrics)
    recorded[5] = (recorded[5][0], recorded[5][1], TrialState.RUNNING, {})

    trials = tracker.load_trials()
    assert [t.trial_id for t in trials] == [0, 1, 3, 5, 7]
    for trial in trials:
        run_id, params, state, metrics = recorded[trial.trial_id]
        assert (trial.run_id, trial.params, trial.state, trial.metrics) == (
            run_id,
            params,
            state,
            metrics,
        )
        assert trial.status == {"completed": "FINISHED", "failed": "FAILED"}.get(
            state.value, "RUNNING"
        )
    observation = trials[1].to_observation("objective")
    assert (observation.value, observation.trial_id, observation.params) == (
        1 / 7,
        1,
        trials[1].params,
    )
    assert trials[2].to_observation("objective").value is None


def test_load_trials_with_hundreds_of_runs(mlflow_sqlite_uri: str) -> None:
    tracker = MlflowTracker(mlflow_sqlite_uri, "many")
    tracker.start_study(CONFIG)
    run_ids = [tracker.start_trial(trial_id, {}) for trial_id in range(200)]
    other = MlflowTracker(mlflow_sqlite_uri, "other")  # another study in the same store
    other.start_study(CONFIG)
    other.start_trial(0, {"x": 0.0})

    trials = MlflowTracker(mlflow_sqlite_uri, "many")
    trials.start_study(CONFIG)
    loaded = trials.load_trials()
    assert [(t.trial_id, t.run_id) for t in loaded] == list(enumerate(run_ids))


@pytest.mark.parametrize("mode", ["fail", "requeue"])
def test_close_orphans_after_the_driver_died(tracker: MlflowTracker, mode: str) -> None:
    tracker.start_study(CONFIG)
    done = tracker.start_trial(0, {"lr": 0.1})
    tracker.end_trial(done, TrialResult(0, TrialState.COMPLETED, metrics={"objective": 1.0}))
    orphan = tracker.start_trial(1, {"lr": 0.2, "n": 2})
    half_ended = tracker.start_trial(2, {"lr": 0.3})
    tracker.client.set_tag(half_ended, "autotune.state", "completed")  # died inside end_trial
    uri, name = tracker.tracking_uri, tracker.study_name
    del tracker  # the driver dies: two trial runs (and the study run) are left RUNNING

    resumed = MlflowTracker(uri, name)
    resumed.start_study(CONFIG)
    closed = resumed.close_orphans(mode)  # type: ignore[arg-type]

    assert [(t.trial_id, t.run_id, t.params) for t in closed] == [(1, orphan, {"lr": 0.2, "n": 2})]
    expected_state = TrialState.FAILED if mode == "fail" else TrialState.KILLED
    assert closed[0].state is expected_state and closed[0].status == "FAILED"
    assert closed[0].requeue is (mode == "requeue")
    assert closed[0].tags[TAG_FAILURE_REASON] == "driver died"
    by_id = {t.trial_id: t for t in resumed.load_trials()}
    assert all(t.status != "RUNNING" for t in by_id.values())
    assert by_id[1] == closed[0]
    assert (by_id[2].state, by_id[2].status) == (TrialState.COMPLETED, "FINISHED")
    assert (by_id[0].state, by_id[0].status) == (TrialState.COMPLETED, "FINISHED")
    assert TAG_REQUEUE not in by_id[0].tags
    assert resumed.close_orphans(mode) == []  # type: ignore[arg-type]


def test_close_orphans_refuses_an_unknown_mode(sqlite_tracker: MlflowTracker) -> None:
    sqlite_tracker.start_study(CONFIG)
    with pytest.raises(ConfigError, match="mode: must be 'fail' or 'requeue', got 'retry'"):
        sqlite_tracker.close_orphans("retry")  # type: ignore[arg-type]


def test_study_level_metrics_tags_and_artifacts(tracker: MlflowTracker, tmp_path: Path) -> None:
    parent = tracker.start_study(CONFIG)
    for step, best in enumerate([3.0, 2.0, 2.0], start=1):
        tracker.log_study_metrics({"best_objective": best, "bad": math.inf}, step)
    tracker.set_study_tags({"autotune.best_trial": 4, "autotune.note": "ok"})
    report = tmp_path / "summary.json"
    report.write_text("{}")
    tracker.log_study_artifact(report, "reports")
    tracker.end_study()

    history = tracker.client.get_metric_history(parent, "best_objective")
    assert [(m.step, m.value) for m in history] == [(1, 3.0), (2, 2.0), (3, 2.0)]
    run = tracker.client.get_run(parent)
    assert "bad" not in run.data.metrics
    assert run.data.tags["autotune.best_trial"] == "4" and run.info.status == "FINISHED"
    assert "reports/summary.json" in _artifacts(tracker, parent, "reports")


# -- a readable record (issue 17) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            (
                "Traceback (most recent call last):\n  File \"t.py\", line 3, in f\n"
                "    raise ValueError('x')\nValueError: boom"
            ),
            "ValueError: boom",
        ),
        (
            (
                "Traceback (most recent call last):\n  File \"a.py\", line 1\nKeyError: 'a'\n\n"
                "During handling of the above exception, another exception occurred:\n\n"
                "Traceback (most recent call last):\n  File \"b.py\", line 2\n    g()\n"
                "RuntimeError: two\nlines of message\n"
            ),
            "RuntimeError: two lines of message",
        ),
        (
            (
                "the trial process exited with code 1 without writing a result. End of err.txt:\n"
                "Traceback (most recent call last):\n  File \"x\", line 1\nMemoryError\n"
            ),
            "MemoryError",
        ),
        ("timed out after 30 s\nstderr tail: ...", "timed out after 30 s"),
        ("driver died", "driver died"),
        ("E" * 2000, "E" * 497 + "..."),
    ],
    ids=["traceback", "chained-multiline", "exit-with-traceback", "plain", "one-line", "long"],
)
def test_failure_line_is_the_exception_in_one_line(error: str, line: str) -> None:
    assert _tracker.failure_line(error) == line


def test_numbers_are_metrics_too(tracker: MlflowTracker) -> None:
    parent = tracker.start_study(CONFIG)
    proposal = {TAG_ACQ_VALUE: -1.5, _tracker.TAG_PRED_MEAN: "0.25", _tracker.TAG_PRED_STD: "nan"}
    runs = [
        tracker.start_trial(3, {"lr": 0.02, "n": 4, "bn": True, "act": "relu", "w": [1]}, proposal),
        tracker.start_trial(4, {"lr": 0.001, "n": 2, "bn": False, "act": "gelu", "w": [2]}),
    ]
    run = tracker.client.get_run(runs[0])
    assert run.data.metrics == {
        "param/lr": 0.02, "param/n": 4.0, "proposal/acq_value": -1.5, "proposal/pred_mean": 0.25
    }  # bools, strings, lists and NaN are not metrics
    assert run.data.params["lr"] == "0.02" and run.data.params["act"] == "relu"  # still params
    # they sort and filter in MLflow's search, which params (strings) cannot
    found = tracker.client.search_runs(
        [tracker.experiment_id], "metrics.`param/lr` > 0.01", order_by=["metrics.`param/n` DESC"]
    )
    assert [r.info.run_id for r in found] == [runs[0]]
    # on the study run, the proposals are a curve over trials
    history = tracker.client.get_metric_history(parent, "proposal/acq_value")
    assert [(m.step, m.value) for m in history] == [(3, -1.5)]
    # and they are not mistaken for the trial's own metrics while it runs
    assert all(trial.metrics == {} for trial in tracker.load_trials())


def test_final_metrics_without_a_fake_step(sqlite_tracker: MlflowTracker) -> None:
    tracker = sqlite_tracker
    tracker.start_study(CONFIG)
    run_id = tracker.start_trial(0, {"lr": 0.1})
    tracker.log_reports(run_id, [{"epoch": e, "val_loss": 1.0 / (e + 1)} for e in range(3)])
    # the final val_loss (the best epoch's) differs from the last report's, in the same millisecond
    final = {"val_loss": 0.4, "n_params": 1000, "train_seconds": 2.5, "best_epoch": 1}
    tracker.end_trial(run_id, TrialResult(0, TrialState.COMPLETED, metrics=final))

    client = tracker.client
    curve = [(m.step, m.value) for m in client.get_metric_history(run_id, "val_loss")]
    assert curve == [(0, 1.0), (1, 0.5), (2, 1 / 3), (2, 0.4)]  # no step 3
    for scalar in ("n_params", "train_seconds", "best_epoch"):
        assert [(m.step, m.value) for m in client.get_metric_history(run_id, scalar)] == [
            (0, float(final[scalar]))
        ]
    assert client.get_run(run_id).data.metrics["val_loss"] == 0.4  # the final value is the latest
    [loaded] = tracker.load_trials()
    assert loaded.metrics == final


# -- what is read back is not trusted (issue 13) -------------------------------------------


def _bad_trial(tracker: MlflowTracker, tag: str, value: str, trial_id: int = 1) -> str:
    """A finished trial whose tag ``tag`` is then overwritten, as anyone with access could."""
    run_id = tracker.start_trial(trial_id, {"lr": 0.5})
    tracker.end_trial(run_id, TrialResult(trial_id, TrialState.COMPLETED, metrics={"objective": 2.0}))
    tracker.client.set_tag(run_id, tag, value)  # MlflowClient directly: the attacker's way in
    return run_id


@pytest.mark.parametrize(
    "value",
    ["{not json", "[1, 2]", "@artifact:../../../../../secret.json", "@artifact:/etc/hostname",
     "@artifact:file:///etc/hostname", "@artifact:trial/./params.json", "@artifact:trial/missing.json",
     "[" * 100_000],
    ids=["not-json", "not-object", "dotdot", "absolute", "uri", "not-normal", "missing", "deep"],
)
def test_an_unreadable_params_tag_leaves_the_trial_out_with_a_warning(
    tracker: MlflowTracker, value: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    (tmp_path / "secret.json").write_text('{"lr": 123}')
    tracker.start_study(CONFIG)
    good = tracker.start_trial(0, {"lr": 0.1})
    tracker.end_trial(good, TrialResult(0, TrialState.COMPLETED, metrics={"objective": 1.0}))
    bad = _bad_trial(tracker, "autotune.params", value)

    with caplog.at_level("WARNING", logger="autotune.tracking._tracker"):
        trials = tracker.load_trials()  # no crash: resume and status go on
        tracker.load_trials()
    assert [t.run_id for t in trials] == [good]
    warned = [r.getMessage() for r in caplog.records if bad in r.getMessage()]
    assert len(warned) == 1 and "autotune.params" in warned[0]  # once, naming run and tag
    shown = {t.run_id: t for t in tracker.load_trials(include_unreadable=True)}
    assert shown[bad].unreadable and "autotune.params" in shown[bad].unreadable
    assert shown[bad].value("objective") is None and shown[bad].params != {"lr": 123}
    with pytest.raises(TrackingError, match="unreadable|autotune.params"):
        shown[bad].to_observation("objective")


def test_an_artifact_reference_may_not_escape_by_a_symbolic_link(
    sqlite_tracker: MlflowTracker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = sqlite_tracker
    tracker.start_study(CONFIG)
    outside = tmp_path / "outside.json"
    outside.write_text('{"lr": 0.123}')
    run_id = _bad_trial(tracker, "autotune.params", "@artifact:trial/params.json")
    root = Path(tracker.client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    (root / "trial").mkdir(parents=True, exist_ok=True)
    (root / "trial" / "params.json").symlink_to(outside)

    with caplog.at_level("WARNING", logger="autotune.tracking._tracker"):
        assert tracker.load_trials() == []
    assert "outside the run's artifact store" in caplog.text
    # a reference inside the run's artifacts is followed as before
    (root / "trial" / "params.json").unlink()
    (root / "trial" / "params.json").write_text('{"lr": 0.5}')
    assert [t.params for t in tracker.load_trials()] == [{"lr": 0.5}]


@pytest.mark.parametrize(
    "value", ["not json", '{"objective": "abc"}', '["x"]', "@artifact:../x.json"],
    ids=["not-json", "string-value", "not-object", "dotdot"],
)
def test_an_unreadable_metrics_tag_falls_back_to_the_mlflow_metrics(
    sqlite_tracker: MlflowTracker, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = sqlite_tracker
    tracker.start_study(CONFIG)
    run_id = _bad_trial(tracker, "autotune.metrics", value)
    with caplog.at_level("WARNING", logger="autotune.tracking._tracker"):
        [trial] = tracker.load_trials()
    assert trial.metrics == {"objective": 2.0} and trial.value("objective") == 2.0
    assert run_id in caplog.text and "autotune.metrics" in caplog.text


def test_numeric_tags_are_parsed_defensively(
    sqlite_tracker: MlflowTracker, caplog: pytest.LogCaptureFixture
) -> None:
    from autotune.tracking import plot_acquisition_trace

    tracker = sqlite_tracker
    tracker.start_study(CONFIG)
    good = tracker.start_trial(0, {"lr": 0.1}, {TAG_ACQ_VALUE: 0.5})
    _bad_trial(tracker, "autotune.trial_id", "1; DROP")  # not a trial number: ignored, with a warning
    for tag, junk in ((TAG_ACQ_VALUE, "abc"), (_tracker.TAG_PRED_MEAN, "1e999"), ("autotune.duration_s", "x")):
        tracker.client.set_tag(good, tag, junk)
    with caplog.at_level("WARNING", logger="autotune.tracking._tracker"):
        [trial] = tracker.load_trials()
    assert "autotune.trial_id" in caplog.text
    assert trial.float_tag(TAG_ACQ_VALUE) is None and trial.float_tag(_tracker.TAG_PRED_MEAN) is None
    plot_acquisition_trace([trial])  # draws, without the junk


def test_close_orphans_closes_an_unreadable_orphan_without_requeueing_it(
    sqlite_tracker: MlflowTracker,
) -> None:
    tracker = sqlite_tracker
    tracker.start_study(CONFIG)
    orphan = tracker.start_trial(0, {"lr": 0.1})
    tracker.client.set_tag(orphan, "autotune.params", "{bad")
    assert tracker.close_orphans("requeue") == []
    [trial] = tracker.load_trials(include_unreadable=True)
    assert (trial.status, trial.state, trial.requeue) == ("FAILED", TrialState.FAILED, False)
