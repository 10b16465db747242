"""The Slurm executor: real jobs through submitit's local executor, and sbatch scripts and job
states through fake cluster commands (``sbatch``, ``sacct``, ``scancel``, ``srun`` on ``PATH``).

The generated sbatch scripts are compared with golden copies in ``golden/``. After an intended
change, regenerate them and review the diff::

    AUTOTUNE_REGEN_GOLDEN=1 python -m pytest -q tests/executors/test_slurm.py -k golden
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autotune.exceptions import ConfigError, MissingExtraError
from autotune.executors import SubmitError, get_executor
from autotune.executors._slurm import SlurmExecutor
from autotune.study import Study, load_study_config
from autotune.testing.executors import CASES as _CASES
from autotune.testing.executors import ISOLATED_CASES
from autotune.trial import Resources, TrialResult, TrialSpec, TrialState
from tests.executors.helpers import CHILD_ENV, FNS, is_alive
from tests.study.helpers import study_runs, write_study

GOLDEN = Path(__file__).with_name("golden")
CASES = {**_CASES, **ISOLATED_CASES}
SAME_AS_LOCAL = ["completed", "failed", "timeout", "sigkill"]

FAKE_SBATCH = """#!/bin/sh
# Keeps the script it is given and answers as sbatch does.
n=$(cat "$FAKE_SLURM/next_id")
echo $((n + 1)) > "$FAKE_SLURM/next_id"
cp "$1" "$FAKE_SLURM/sbatch_$n.sh"
echo "$@" > "$FAKE_SLURM/sbatch_$n.argv"
echo "Submitted batch job $n"
"""
FAKE_SACCT = """#!/bin/sh
# Answers every job id (-j ID) with the states listed in $FAKE_SLURM/states, one per array task.
echo "JobID|State|NodeList"
while [ $# -gt 0 ]; do
  if [ "$1" = "-j" ]; then
    i=0
    for state in $(cat "$FAKE_SLURM/states"); do echo "$2_$i|$state|node$i"; i=$((i + 1)); done
    echo "$2|$(head -n 1 "$FAKE_SLURM/states")|node0"
    shift
  fi
  shift
done
"""
FAKE_SCANCEL = """#!/bin/sh
echo "$@" >> "$FAKE_SLURM/scancel.log"
"""


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake Slurm commands first on ``PATH``; returns their folder (scripts, argv, states)."""
    folder = tmp_path / "fake_slurm"
    folder.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("sacct", FAKE_SACCT), ("scancel", FAKE_SCANCEL), ("srun", "")):
        path = folder / name
        path.write_text(text or "#!/bin/sh\n", encoding="utf-8")
        path.chmod(0o755)
    (folder / "next_id").write_text(str(random.randrange(10_000, 900_000_000)))  # ids unseen by submitit's cache
    (folder / "states").write_text("RUNNING\n")
    monkeypatch.setenv("FAKE_SLURM", str(folder))
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def _spec(trial_id: int, entry: str, root: Path, **kwargs: Any) -> TrialSpec:
    return TrialSpec(trial_id, kwargs.pop("params", {}), entry, workdir=str(root / "trials" / str(trial_id)), **kwargs)


def _run_all(executor: SlurmExecutor, specs: list[TrialSpec], timeout_s: float = 60) -> list[TrialResult]:
    jobs = [executor.submit(spec) for spec in specs]
    pending, deadline = list(jobs), time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for job in executor.wait(pending, timeout_s=1.0):
            pending.remove(job)
    assert not pending, f"{len(pending)} jobs still running after {timeout_s} s"
    return [job.result() for job in jobs]


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("AUTOTUNE_REGEN_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{path} differs; see this module's docstring to regenerate"


def _scripts(fake_slurm: Path) -> list[Path]:
    """The scripts given to sbatch, in submission order."""
    return sorted(fake_slurm.glob("sbatch_*.sh"), key=lambda path: int(path.stem.split("_")[1]))


def _script(fake_slurm: Path, n: int, tmp_path: Path) -> str:
    """The n-th script given to sbatch, with this test's folders written as ``/shared``."""
    scripts = _scripts(fake_slurm)
    assert len(scripts) == n, [s.name for s in scripts]
    return scripts[-1].read_text(encoding="utf-8").replace(str(tmp_path), "/shared")


# -- real jobs: submitit's local executor ------------------------------------------------------------


def test_local_jobs_end_in_the_same_states_as_on_the_local_executor(tmp_path: Path) -> None:
    specs = [
        _spec(i, CASES[name].entry_point, tmp_path, params=CASES[name].params, timeout_s=CASES[name].timeout_s)
        for i, name in enumerate(SAME_AS_LOCAL)
    ]
    specs.append(_spec(len(specs), f"{FNS}:hard_exit", tmp_path))
    executor = SlurmExecutor(4, cluster="local", env=CHILD_ENV, kill_grace_s=1.0)
    results = _run_all(executor, specs)

    for name, result in zip(SAME_AS_LOCAL, results):
        assert result.state is CASES[name].state, f"{name}: {result.error}"
        CASES[name].check(result)
        assert result.device.startswith("cpu@")
    died = results[-1]
    assert died.state is TrialState.FAILED and "exited with code 7" in (died.error or "")
    logs = sorted((tmp_path / "trials" / "submitit").glob("*_log.err"))  # submitit's folder, beside the trials
    assert len(logs) == len(specs)


def test_cancel_stops_a_running_job_and_its_trial(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.json"
    executor = SlurmExecutor(1, cluster="local", root_dir=tmp_path / "root", env=CHILD_ENV, kill_grace_s=1.0)
    job = executor.submit(TrialSpec(0, {}, f"{FNS}:sleepy", fixed_args={"pid_file": str(pid_file)}))  # no workdir
    assert job.state is TrialState.PENDING
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:
        assert not job.done()  # done() is a look of the driver: it sends the queued job
        seen += job.new_reports()  # read from the trial's reports.jsonl while it runs
        time.sleep(0.05)
    assert job.state is TrialState.RUNNING and seen[0] == {"step": 0, "loss": 1.0}
    pids = json.loads(pid_file.read_text())

    assert job.cancel() is True
    result = job.result()
    assert result.state is TrialState.KILLED and len(result.history) >= 2
    assert Path(result.stdout_path or "").parent == tmp_path / "root" / "trial_0"
    deadline = time.monotonic() + 30  # the job handles SIGINT, then kills its trial (slow on a busy machine)
    while any(is_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(is_alive(p) for p in pids.values())


def test_a_study_file_runs_on_slurm_local_jobs_and_records_every_trial(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str]
) -> None:
    path = write_study(tmp_path, mlflow_store_factory, budget={"max_trials": 3}, parallelism={"workers": 3},
                       executor={"name": "slurm", "options": {"cluster": "local", "env": CHILD_ENV}})
    config = load_study_config(path)
    summary = Study(config).optimize(progress=False)

    assert summary.counts["completed"] == 3 and summary.n_trials == 3 and summary.stop_reason == "max_trials"
    _, trials = study_runs(config)
    assert len(trials) == 3 and all(r.data.tags["autotune.state"] == "completed" for r in trials)
    assert (config.resolved_output_dir / "trials" / "submitit").is_dir()


# -- sbatch scripts and Slurm's own job states: fake cluster commands -------------------------------


def _slurm_executor(n_workers: int = 3, **options: Any) -> SlurmExecutor:
    return SlurmExecutor(n_workers, cluster="slurm", python="/shared/venv/bin/python", poll_interval_s=0.01,
                         sacct_interval_s=0.1, result_wait_s=0.0, **options)


def test_golden_sbatch_script_of_one_gpu_trial(fake_slurm: Path, tmp_path: Path) -> None:
    executor = _slurm_executor(partition="gpu", mem_gb=32, account="ml", setup=["module load cuda/12.4"],
                               additional_parameters={"exclude": "node7"})
    job = executor.submit(_spec(0, "train:train", tmp_path, resources=Resources(gpus=1, cpus=4), timeout_s=3000))
    assert executor.wait([job], timeout_s=0) == []  # sent at the driver's first look
    argv = next(fake_slurm.glob("sbatch_*.argv")).read_text()

    _check_golden("gpu_trial.sbatch", _script(fake_slurm, 1, tmp_path))
    assert argv.strip().endswith(".sh") and " " not in argv.strip()  # one argument: the script path
    executor.shutdown(kill=True)
    assert job.result().state is TrialState.KILLED
    assert (fake_slurm / "scancel.log").read_text().split() == [str(job.job_id)]


def test_golden_sbatch_script_of_a_job_array_for_a_batch(fake_slurm: Path, tmp_path: Path) -> None:
    executor = _slurm_executor(partition="cpu", time_min=30)
    jobs = [executor.submit(_spec(i, "train:train", tmp_path)) for i in range(3)]
    executor.wait(jobs, timeout_s=0)

    _check_golden("cpu_batch_array.sbatch", _script(fake_slurm, 1, tmp_path))  # one sbatch call for the batch
    array_id = jobs[0].job_id.split("_")[0]  # type: ignore[union-attr]
    assert [job.job_id for job in jobs] == [f"{array_id}_{i}" for i in range(3)]
    extra = executor.submit(_spec(3, "train:train", tmp_path))
    executor.shutdown(kill=True)  # the queued fourth trial is never sent
    assert extra.result().state is TrialState.KILLED and extra.job_id is None
    assert len(_scripts(fake_slurm)) == 1


def test_trials_with_different_needs_go_as_separate_jobs(fake_slurm: Path, tmp_path: Path) -> None:
    executor = _slurm_executor(2)
    jobs = [executor.submit(_spec(i, "train:train", tmp_path, resources=Resources(gpus=g)))
            for i, g in enumerate([2, 0])]
    executor.wait(jobs, timeout_s=0)

    gpu, cpu = (path.read_text(encoding="utf-8") for path in _scripts(fake_slurm))
    assert "#SBATCH --gpus-per-node=2\n" in gpu and "--array" not in gpu
    assert "gpus-per-node" not in cpu  # nothing left over from the GPU job's submission
    executor.shutdown(kill=True)


def test_jobs_that_slurm_ends_map_to_trial_states(fake_slurm: Path, tmp_path: Path) -> None:
    (fake_slurm / "states").write_text("TIMEOUT\nOUT_OF_MEMORY\nNODE_FAIL\nCANCELLED\n")
    executor = _slurm_executor(4)
    results = _run_all(executor, [_spec(i, "train:train", tmp_path) for i in range(4)], timeout_s=30)

    states = [r.state for r in results]
    assert states == [TrialState.TIMEOUT, TrialState.OOM, TrialState.FAILED, TrialState.KILLED]
    assert all(f"ended {s} without a trial result" in (r.error or "")
               for r, s in zip(results, ["TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "CANCELLED"]))


def test_a_refused_submission_is_a_submit_error_and_later_groups_stay_queued(fake_slurm: Path, tmp_path: Path) -> None:
    sbatch = fake_slurm / "sbatch"
    sbatch.write_text("#!/bin/sh\necho 'sbatch: error: Batch job submission failed: Invalid account' >&2\nexit 1\n")
    executor = _slurm_executor(3, account="nope")
    refused = [executor.submit(_spec(i, "train:train", tmp_path)) for i in range(2)]
    later = executor.submit(_spec(2, "train:train", tmp_path, resources=Resources(gpus=1)))  # another group
    with pytest.raises(SubmitError, match=r"trials 0, 1: the Slurm job could not be submitted.*Invalid account.*Fix:"):
        executor.wait(refused, timeout_s=0)
    assert [job.state for job in refused] == [TrialState.FAILED, TrialState.FAILED]
    assert "Invalid account" in (refused[0].result().error or "")
    assert later.state is TrialState.PENDING and later in executor._queue  # not sent, not failed
    sbatch.write_text(FAKE_SBATCH)  # fixed: the queued trial goes out at the next look
    executor.wait([later], timeout_s=0)
    assert later.job_id is not None  # type: ignore[attr-defined]
    executor.shutdown(kill=True)
    assert later.result().state is TrialState.KILLED


def test_options_are_checked_and_a_missing_submitit_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"SlurmExecutor\(cluster=...\): must be one of slurm, local"):
        get_executor("slurm", cluster="pbs")
    with pytest.raises(ConfigError, match="must be a list of shell lines"):
        SlurmExecutor(setup="module load cuda")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="Slurm gives whole GPUs"):
        SlurmExecutor(cluster="local").submit(_spec(0, "m:f", tmp_path, resources=Resources(1, 1, trials_per_gpu=2)))
    with pytest.raises(ConfigError, match="root_dir"):
        SlurmExecutor().submit(TrialSpec(0, {}, "m:f"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun, no sbatch
    with pytest.raises(ConfigError, match="needs the Slurm commands on PATH.*use cluster: local"):
        SlurmExecutor(root_dir=tmp_path).submit(TrialSpec(0, {}, "m:f"))
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "submitit" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"pip install 'autotune\[slurm\]'"):
        get_executor("slurm")


def test_local_jobs_of_a_driver_that_ignores_sigint_can_still_be_cancelled() -> None:
    import signal

    from autotune.executors._slurm import _sigint_reaches_local_jobs

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a driver started with `cmd &`
    try:
        with _sigint_reaches_local_jobs():
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # what children start with
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # restored
    finally:
        signal.signal(signal.SIGINT, previous)
