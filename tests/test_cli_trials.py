"""``autotune trials``, ``autotune report``, ``autotune ui``'s link and busy port, ``run``'s hint."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import pytest

from autotune.cli import _ui_hint, main
from autotune.study import Study, StudyRecord, load_study_config
from autotune.study._trials import (
    read_reports,
    sort_rows,
    study_url,
    trials_frame,
    trials_table,
)
from tests.study.helpers import FNS, write_study

N_RUN = 4  # completed by the run; one more trial is asked and told failed


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, mlflow_store_factory: Callable[[Path], str]) -> Path:
    """A finished in-process study: 4 completed trials (3 reports each) and 1 failed one (told)."""
    folder = tmp_path_factory.mktemp("finished")
    write_study(folder, mlflow_store_factory, executor={"name": "inprocess"}, parallelism={"workers": 1},
                budget={"max_trials": N_RUN + 1}, trial={"entry_point": f"{FNS}:quadratic", "fixed_args": {"steps": 3}})
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["run", "study.yaml", "--no-progress", "--max-trials", str(N_RUN)]) == 0
        assert main(["ask", "study.yaml"]) == 0
        assert main(["tell", "study.yaml", "--trial", str(N_RUN), "--state", "failed"]) == 0
    finally:
        os.chdir(cwd)
    return folder


@pytest.fixture
def study(finished: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Path]:
    monkeypatch.chdir(finished)
    capsys.readouterr()
    yield finished


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:
    assert main(["trials", "study.yaml", "--format", "json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_trials_json_holds_every_trial_with_its_columns(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _json(capsys)
    assert [r["trial_id"] for r in rows] == list(range(N_RUN + 1))
    assert [r["state"] for r in rows] == ["completed"] * N_RUN + ["failed"]
    for row in rows[:N_RUN]:
        x, y = row["params"]["x"], row["params"]["y"]
        assert row["loss"] == row["value"] == pytest.approx((x - 1) ** 2 + y**2)
        assert row["failure"] is None and row["duration_s"] >= 0 and row["device"]
        assert row["started"].endswith("+00:00") and len(row["run_id"]) == 32
    assert rows[-1]["value"] is None and rows[-1]["failure"] == "failed"


def test_trials_state_filter_sort_and_limit(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert [r["trial_id"] for r in _json(capsys, "--state", "failed")] == [N_RUN]
    both = _json(capsys, "--state", "failed", "--state", "completed")
    assert len(both) == N_RUN + 1
    by_value = _json(capsys, "--sort", "objective")
    values = [r["value"] for r in by_value]
    assert values[:N_RUN] == sorted(values[:N_RUN]) and values[-1] is None  # minimize: best first, no value last
    assert by_value[0]["value"] < by_value[N_RUN - 1]["value"]
    assert [r["trial_id"] for r in _json(capsys, "--sort", "objective", "--limit", "2")] == \
        [r["trial_id"] for r in by_value[:2]]
    durations = [r["duration_s"] for r in _json(capsys, "--sort", "duration")]
    assert durations == sorted(durations, reverse=True)
    with pytest.raises(SystemExit) as exit_info:
        main(["trials", "study.yaml", "--state", "nosuch"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err


def test_sort_follows_the_direction() -> None:
    rows = [{"trial_id": i, "value": v, "duration_s": None} for i, v in enumerate([2.0, None, 1.0, 3.0])]
    assert [r["trial_id"] for r in sort_rows(rows, "objective", "minimize")] == [2, 0, 3, 1]
    assert [r["trial_id"] for r in sort_rows(rows, "objective", "maximize")] == [3, 0, 2, 1]


def test_trials_csv_and_table(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trials", "study.yaml", "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["trial_id"]) for r in table] == list(range(N_RUN + 1))
    assert {"state", "loss", "duration_s", "device", "failure", "started", "params.x", "params.y"} <= set(table[0])
    assert table[-1]["state"] == "failed" and table[-1]["loss"] == "" and table[-1]["failure"] == "failed"
    assert float(table[0]["loss"]) == pytest.approx((float(table[0]["params.x"]) - 1) ** 2
                                                     + float(table[0]["params.y"]) ** 2)

    assert main(["trials", "study.yaml", "--state", "completed"]) == 0
    out = capsys.readouterr().out
    assert f"Study toy: {N_RUN} trials (minimize loss)" in out
    header = next(line for line in out.splitlines() if "trial" in line and "state" in line)
    assert all(word in header for word in ("loss", "duration_s", "device", "x", "y", "failure", "started"))
    assert out.count("completed") == N_RUN and "failed" not in out


def test_trials_and_report_without_a_record_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    write_study(tmp_path)
    for command in ("trials", "report"):
        assert main([command, "study.yaml"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "study 'toy' has no record in" in err and "autotune run study.yaml" in err
    assert not (tmp_path / "runs" / "toy" / "report.html").exists()


def test_python_api_frame_and_reports(study: Path) -> None:
    record = StudyRecord(load_study_config(study / "study.yaml"))
    frame = trials_frame(record, "loss")
    assert frame.equals(Study.from_file(study / "study.yaml").trials())  # Study.trials() is the same table
    assert list(frame.index) == list(range(N_RUN + 1))
    assert {"state", "loss", "duration_s", "device", "failure", "started", "params.x", "params.y"} <= set(frame.columns)
    assert frame["loss"].notna().sum() == N_RUN and str(frame["started"].dtype).startswith("datetime64")
    assert trials_table(record.trials(), "loss")[0]["started"] is None  # loaded trials alone: no start times
    reports = read_reports(record)
    assert sorted(reports) == list(range(N_RUN))  # the told failure reported nothing
    for points in reports.values():
        assert [p["step"] for p in points] == [0.0, 1.0, 2.0]
        assert all(set(p) == {"step", "loss"} for p in points)  # n_params (final only) is no curve
        assert points[0]["loss"] > points[-1]["loss"]


def test_report_writes_one_self_contained_html(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = study / "out" / "r.html"
    assert main(["report", "study.yaml", "-o", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    text = target.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "Study toy" in text
    assert f"{N_RUN + 1} finished: {N_RUN} completed, 1 failed" in text
    assert "<script src=\"http" not in text


def test_study_url_format() -> None:
    assert study_url("http://127.0.0.1:5123/", "7", "val_loss", "minimize") == (
        "http://127.0.0.1:5123/#/experiments/7/runs?searchFilter=&orderByKey=metrics.%60val_loss%60&orderByAsc=true")
    assert study_url("http://h:1", "7", "acc", "maximize").endswith("orderByKey=metrics.%60acc%60&orderByAsc=false")
    assert study_url("http://h:1", None, "acc", "maximize") == "http://h:1/#/experiments"


def test_ui_on_a_busy_port_exits_at_once_with_a_hint(study: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def no_exec(*args: object) -> None:
        raise AssertionError("mlflow ui must not start on a busy port")

    monkeypatch.setattr(os, "execv", no_exec)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "study.yaml", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"127.0.0.1:{port} is already in use" in err and "Fix: pass a free port, e.g. --port" in err


def test_ui_prints_the_sorted_link_then_starts_mlflow(study: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: started.append(argv))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["ui", "study.yaml", "--port", str(port)]) == 0
    record = StudyRecord(load_study_config(study / "study.yaml"))
    assert record.exists()
    experiment_id = record.tracker.experiment_id
    out = capsys.readouterr().out
    # the study's shared runs view: its trials best first with the review columns (tests/ui)
    assert out.strip() == f"Open http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs?viewStateShareKey=autotune-trials"
    assert started and started[0][started[0].index("--port") + 1] == str(port)


def test_run_hint_names_the_port_and_the_link(study: Path) -> None:
    config = load_study_config(study / "study.yaml")
    record = StudyRecord(config)
    assert record.exists()
    hint = _ui_hint(config, "study.yaml")
    assert hint == (f"browse it: autotune ui study.yaml --port 5000, then open http://127.0.0.1:5000/#/experiments/"
                    f"{record.tracker.experiment_id}/runs?viewStateShareKey=autotune-trials")


def test_a_served_record_gets_its_own_server_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    write_study(tmp_path, tracking_uri="http://127.0.0.1:5999", objective={"metric": "acc", "direction": "maximize"})
    config = load_study_config(tmp_path / "study.yaml")
    monkeypatch.setattr(StudyRecord, "exists", lambda self: True)
    monkeypatch.setattr(StudyRecord, "tracker", property(lambda self: mock.Mock(experiment_id="12")))
    link = "http://127.0.0.1:5999/#/experiments/12/runs?searchFilter=&orderByKey=metrics.%60acc%60&orderByAsc=false"
    assert _ui_hint(config, "study.yaml") == f"browse it: {link}"  # the URI's port, not 5000
    monkeypatch.setattr(os, "execv", mock.Mock(side_effect=AssertionError("no second server for a served record")))
    assert main(["ui", "study.yaml"]) == 0
    assert capsys.readouterr().out == f"Open {link}\n"
