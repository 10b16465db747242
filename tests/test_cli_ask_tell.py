"""``autotune ask`` and ``autotune tell``: JSON out, the record in MLflow, clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from autotune.cli import main


@pytest.fixture
def study_file(tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> Path:
    out = tmp_path / "out"
    mlflow_store_factory(out)  # the default tracking_uri: out/mlflow.db, migrated
    data = {
        "name": "beam", "space": {"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0},
                                                 "y": {"type": "float", "low": 0.0, "high": 1.0}}},
        "objective": {"metric": "radius", "direction": "maximize"}, "strategy": "max_variance", "n_initial": 2,
        "budget": {"max_trials": 10}, "trial": {"entry_point": "instrument:measure_trial"}, "output_dir": "out",
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_ask_prints_a_point_and_tell_records_it(study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", str(study_file)]) == 0
    asked = json.loads(capsys.readouterr().out)
    assert asked["trial_id"] == 0 and set(asked["params"]) == {"x", "y"}
    assert main(["ask", str(study_file)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["trial_id"] == 1 and second["params"] != asked["params"]

    assert main(["tell", str(study_file), "--trial", "0", "--value", "51.5", "--metric", "instrument_s=12.5"]) == 0
    told = json.loads(capsys.readouterr().out)
    assert told == {"trial_id": 0, "state": "completed", "value": 51.5, "params": asked["params"],
                    "metrics": {"instrument_s": 12.5, "radius": 51.5}}

    assert main(["status", str(study_file), "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"]["completed"] == 1 and status["counts"]["running"] == 1
    assert status["best"]["trial_id"] == 0 and status["best"]["value"] == 51.5


def test_tell_errors_exit_2_with_one_line(study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", str(study_file)]) == 0
    capsys.readouterr()
    assert main(["tell", str(study_file), "--trial", "5", "--value", "1"]) == 2
    err = capsys.readouterr().err
    assert "trial 5 is not in the record" in err and "pending trials [0]" in err and err.count("\n") == 1
    assert main(["tell", str(study_file), "--trial", "0", "--value", "1", "--metric", "instrument_s"]) == 2
    assert "--metric: must read NAME=NUMBER, got 'instrument_s'" in capsys.readouterr().err


def test_tell_without_a_value_records_a_failure(study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["ask", str(study_file)])
    capsys.readouterr()
    assert main(["tell", str(study_file), "--trial", "0"]) == 0
    told = json.loads(capsys.readouterr().out)
    assert told["state"] == "failed" and told["value"] is None


def test_ask_and_tell_are_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "ask" in out and "tell" in out
