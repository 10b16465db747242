"""The worker-side API: report(), load_params(), and its standard-library-only promise."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import autotune.report as report_module
from autotune.report import (
    FIXED_ARGS_ENV,
    PARAMS_ENV,
    REPORT_ENV,
    Reporter,
    TrialContext,
    active_trial,
    load_fixed_args,
    load_params,
    report,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_each_record_is_a_flushed_json_line(tmp_path: Path) -> None:
    channel = tmp_path / "reports.jsonl"
    reporter = Reporter(channel)
    reporter(step=0, loss=1.5)
    assert channel.read_text() == '{"step": 0, "loss": 1.5}\n'  # visible before close
    reporter(acc=np.float32(0.25), step=np.int64(1))
    reporter(note_free=3)
    lines = [json.loads(line) for line in channel.read_text().splitlines()]
    assert lines == reporter.history == [{"step": 0, "loss": 1.5}, {"step": 1, "acc": 0.25}, {"note_free": 3.0}]
    assert all(type(v) in (int, float) for record in lines for v in record.values())
    reporter.close()


def test_torch_scalars_become_floats() -> None:
    torch = pytest.importorskip("torch")
    reporter = Reporter()
    reporter(step=torch.tensor(2), loss=torch.tensor(0.5), acc=torch.tensor([0.75]))
    assert reporter.history == [{"step": 2, "loss": 0.5, "acc": 0.75}]
    assert type(reporter.history[0]["loss"]) is float


@pytest.mark.parametrize("bad", ["0.5", None, [1.0, 2.0], {"a": 1}])
def test_non_numbers_are_refused_with_the_metric_name(bad: object) -> None:
    with pytest.raises(TypeError, match="metric 'loss' must be a number"):
        Reporter()(step=0, loss=bad)


def test_a_metric_beyond_a_floats_range_is_refused_clearly(tmp_path: Path) -> None:
    reporter = Reporter(tmp_path / "reports.jsonl")
    with pytest.raises(TypeError, match=r"metric 'loss' is too large for a float .*Fix:"):
        reporter(step=0, loss=10**400)
    assert reporter.history == [] and not (tmp_path / "reports.jsonl").exists()  # nothing half-written
    reporter(step=1, loss=1e308)
    assert reporter.history == [{"step": 1, "loss": 1e308}]


def test_the_contract_trial_functions_import_no_test_framework() -> None:
    code = "import sys, autotune.testing.executors; print('pytest' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True).stdout
    assert out.strip() == "False"  # a trial process importing them stays light


@pytest.mark.parametrize(("step", "ok"), [(3, 3), (3.0, 3), (np.int32(4), 4), (True, None), (1.5, None), ("1", None)])
def test_step_must_be_an_integer(step: object, ok: int | None) -> None:
    reporter = Reporter()
    if ok is None:
        with pytest.raises(TypeError, match="step must be an integer"):
            reporter(step=step, loss=1.0)
    else:
        reporter(step=step, loss=1.0)
        assert reporter.history[0]["step"] == ok and type(reporter.history[0]["step"]) is int


def test_module_level_report_goes_to_the_active_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(REPORT_ENV, raising=False)
    report(step=0, loss=1.0)  # outside any trial: printed, never lost silently
    assert '[autotune.report] {"step": 0, "loss": 1.0}' in capsys.readouterr().err
    channel = tmp_path / "reports.jsonl"
    monkeypatch.setenv(REPORT_ENV, str(channel))
    monkeypatch.setattr(report_module, "_ENV_REPORTER", None)
    report(step=1, loss=0.5)
    report(step=2, loss=0.25)
    assert [json.loads(line)["step"] for line in channel.read_text().splitlines()] == [1, 2]
    in_memory = Reporter()
    with active_trial(TrialContext(in_memory, params={"lr": 0.1}, fixed_args={"epochs": 2})):
        report(step=3, loss=0.1)  # the in-process executor's trial wins over the env channel
        assert load_params() == {"lr": 0.1} and load_fixed_args() == {"epochs": 2}
    assert in_memory.history == [{"step": 3, "loss": 0.1}] and len(channel.read_text().splitlines()) == 2


def test_load_params_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text('{"lr": 0.1}')
    b.write_text('{"lr": 0.2}')
    monkeypatch.delenv(PARAMS_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["train.py", "--verbose", str(b)])
    assert load_params() == {"lr": 0.2}
    monkeypatch.setenv(PARAMS_ENV, str(a))
    assert load_params() == {"lr": 0.1}
    assert load_params(b) == {"lr": 0.2}
    monkeypatch.setattr(sys, "argv", ["train.py"])
    monkeypatch.delenv(PARAMS_ENV)
    with pytest.raises(FileNotFoundError, match=PARAMS_ENV):
        load_params()
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        load_params(tmp_path / "list.json")


def test_load_fixed_args_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FIXED_ARGS_ENV, raising=False)
    assert load_fixed_args() == {}
    (tmp_path / "fixed.json").write_text('{"epochs": 5}')
    monkeypatch.setenv(FIXED_ARGS_ENV, str(tmp_path / "fixed.json"))
    assert load_fixed_args() == {"epochs": 5}


def test_report_module_imports_the_standard_library_only() -> None:
    tree = ast.parse((REPO_ROOT / "autotune" / "report.py").read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - {"__future__"} <= set(sys.stdlib_module_names)


def test_worker_side_imports_pull_in_nothing_heavy() -> None:
    code = (
        "import sys, autotune.report, autotune.executors, autotune.executors._worker; "
        "print(sorted(m for m in ('torch', 'numpy', 'mlflow', 'botorch', 'gpytorch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True).stdout
    assert out.strip() == "[]"
