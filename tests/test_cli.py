"""The ``autotune`` command: thin over the Python API, clean one-line errors, parsable JSON."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from autotune.cli import main, ui_argv
from autotune.study import load_study_config
from autotune.tracking import record_lock_path
from tests.study.helpers import FNS, REPO_ROOT, autotune_argv, driver_env, write_study


@pytest.fixture
def inprocess_study(tmp_path: Path, mlflow_store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 3-trial study run in-process (fast), with a migrated store; the cwd is its folder."""
    monkeypatch.chdir(tmp_path)
    return write_study(tmp_path, mlflow_store_factory, executor={"name": "inprocess"}, parallelism={"workers": 1},
                       budget={"max_trials": 3}, constraints=["n_params <= 2e6"],
                       trial={"entry_point": f"{FNS}:quadratic"})


def test_help_imports_no_torch_botorch_or_mlflow() -> None:
    code = (
        "import json, sys\n"
        "from autotune.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as exc:\n    assert exc.code == 0\n"
        "print(json.dumps(sorted(m for m in ('torch', 'botorch', 'gpytorch', 'mlflow', 'matplotlib') if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=driver_env(), check=True)
    assert "autotune run" not in done.stderr and "commands:" in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    help_run = subprocess.run(autotune_argv("run", "--help"), capture_output=True, text=True, env=driver_env(), check=True)
    assert "--max-trials" in help_run.stdout and "--no-progress" in help_run.stdout


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: autotune" in capsys.readouterr().err


def test_validate_prints_the_resolved_config(inprocess_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "study.yaml"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["output_dir"] == str(inprocess_study.parent / "runs" / "toy")
    assert resolved["tracking_uri"].startswith("sqlite:///") and resolved["on_orphans"] == "fail"
    assert set(resolved["space"]["parameters"]) == {"x", "y"}
    assert main(["validate", "study.yaml", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == resolved


def test_config_errors_are_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    write_study(tmp_path, budget={"max_trials": 0})
    for argv in (["validate", "study.yaml"], ["run", "study.yaml"], ["status", "study.yaml"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == ("autotune: error: study.yaml: budget.max_trials: must be >= 1, got 0. "
                       "Fix: use e.g. max_trials: 50.\n")
    write_study(tmp_path)
    assert main(["run", "study.yaml", "--max-trials", "0"]) == 2
    assert "budget.max_trials: must be >= 1, got 0" in capsys.readouterr().err
    # the same through a real process: no traceback
    done = subprocess.run(autotune_argv("validate", "missing.yaml"), capture_output=True, text=True, env=driver_env(),
                          cwd=tmp_path, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == "autotune: error: missing.yaml: study file not found. Fix: check the path (relative paths " \
                          "start at the current directory).\n"


def test_a_missing_entry_point_fails_validate_and_run_before_any_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    write_study(tmp_path, trial={"entry_point": "nosuch_module_xyz:train"})
    for argv in (["validate", "study.yaml"], ["run", "study.yaml"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "trial.entry_point" in err and "nosuch_module_xyz:train" in err and "Fix:" in err
    assert not (tmp_path / "runs").exists()  # no record, no trial was started


def test_run_status_best_and_resume(inprocess_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "study.yaml", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["started"] is False
    assert main(["best", "study.yaml", "--format", "json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) is None and "no feasible completed trial yet" in captured.err
    assert main(["resume", "study.yaml"]) == 2
    assert "has no record to resume" in capsys.readouterr().err

    assert main(["run", "study.yaml", "--no-progress", "--max-trials", "2"]) == 0
    captured = capsys.readouterr()
    assert "Study toy: budget reached (max_trials): 2 new trials" in captured.out
    assert "trial 0: loss=" in captured.err  # one line per trial without a progress bar

    assert main(["run", "study.yaml", "--no-progress"]) == 2  # a record exists: resume it instead
    assert "Fix: continue it with `autotune resume study.yaml`" in capsys.readouterr().err
    assert main(["resume", "study.yaml", "--no-progress"]) == 0  # up to the file's max_trials: 3
    assert "Trials in the record: 3 (3 completed)" in capsys.readouterr().out

    assert main(["status", "study.yaml", "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["started"] is True and status["n_trials"] == 3 and status["counts"]["completed"] == 3
    assert status["metric"] == "loss" and status["direction"] == "minimize"
    assert main(["best", "study.yaml", "--format", "json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best["trial_id"] == status["best"]["trial_id"] and best["metric"] == "loss"
    assert best["value"] == pytest.approx((best["params"]["x"] - 1) ** 2 + best["params"]["y"] ** 2)

    assert main(["status", "study.yaml"]) == 0
    table = capsys.readouterr().out
    assert "completed       3" in table and f"best: loss={best['value']:.6g} (trial {best['trial_id']})" in table
    assert main(["best", "study.yaml"]) == 0
    assert capsys.readouterr().out.startswith(f"trial     {best['trial_id']}\nloss      {best['value']:.6g}\n")


def test_other_autotune_errors_exit_1(inprocess_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_study_config(inprocess_study)
    lock = record_lock_path(config.resolved_tracking_uri, config.name)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["run", "study.yaml", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "study 'toy' is being run by" in err


def test_ui_serves_the_study_store_on_localhost(inprocess_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_study_config(inprocess_study)
    argv = ui_argv(config, 5123)
    assert Path(argv[0]).name == "mlflow" and Path(argv[0]).is_file()
    assert argv[1:] == ["ui", "--backend-store-uri", config.tracking_uri, "--host", "127.0.0.1", "--port", "5123",
                        "--workers", "1"]
    assert main(["ui", "study.yaml", "--port", "70000"]) == 2
    assert "--port: must be between 1 and 65535, got 70000" in capsys.readouterr().err


def test_the_installed_command_runs_the_cli() -> None:
    script = Path(sys.executable).with_name("autotune")
    if not script.is_file():
        pytest.skip("autotune is not installed in this environment (pip install -e .)")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert done.stdout.startswith("autotune ")
