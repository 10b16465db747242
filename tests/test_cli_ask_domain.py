"""``autotune ask --candidates FILE.json --fixed JSON``: JSON in and out, errors naming the option."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from autotune.cli import main


@pytest.fixture
def study_file(tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> Path:
    mlflow_store_factory(tmp_path / "out")
    data = {
        "name": "slots", "space": {"parameters": {"slot": {"type": "int", "low": 0, "high": 47},
                                                  "temperature": {"type": "float", "low": 250.0, "high": 350.0}}},
        "objective": {"metric": "signal", "direction": "maximize"}, "strategy": "ucb", "n_initial": 2,
        "budget": {"max_trials": 10}, "trial": {"entry_point": "instrument:measure_trial"}, "output_dir": "out",
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_ask_over_a_candidate_file_with_a_fixed_value(study_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slots = [{"slot": s, "temperature": t} for s in (3, 7, 11) for t in (280.0, 300.0)]
    cands = study_file.parent / "slots.json"
    cands.write_text(json.dumps(slots))
    seen = []
    for _ in range(3):
        assert main(["ask", str(study_file), "--candidates", str(cands), "--fixed", '{"temperature": 300}']) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["params"]["temperature"] == 300 and out["params"]["slot"] in (3, 7, 11)
        seen.append(out["params"]["slot"])
        assert main(["tell", str(study_file), "--trial", str(out["trial_id"]), "--value", str(out["params"]["slot"])]) == 0
        capsys.readouterr()
    assert sorted(seen) == [3, 7, 11]
    assert main(["ask", str(study_file), "--candidates", str(cands), "--fixed", '{"temperature": 300}']) == 2
    err = capsys.readouterr().err
    assert f"--candidates {cands}: must leave at least n=1 points" in err and "3 differ from the fixed values" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fixed", "temperature=300"], "--fixed: must be a JSON object of parameter values, got 'temperature=300'"),
        (["--fixed", '{"temprature": 300}'], "--fixed.temprature: is not a parameter of the space"),
        (["--candidates", "missing.json"], "--candidates: cannot be read (No such file or directory)"),
        (["--candidates", "@bad.json"], "is not valid JSON"),
        (["--candidates", "@wrong.json"], "[0].slot: must be in range(0, 48, 1), got 99"),
    ],
)
def test_bad_options_exit_2_with_one_line(study_file: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                          message: str) -> None:
    (study_file.parent / "bad.json").write_text("[{'slot': 1}]")
    (study_file.parent / "wrong.json").write_text(json.dumps([{"slot": 99, "temperature": 300}]))
    args = [str(study_file.parent / a[1:]) if a.startswith("@") else a for a in args]
    assert main(["ask", str(study_file), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
