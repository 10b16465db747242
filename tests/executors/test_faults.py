"""Trial faults on the local executor: OOM kills, escaping processes, huge output, dead drivers.

Each test injects one fault and checks the recorded state, and that nothing else (other
trials, unrelated processes, the files of other trials) is affected.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from autotune.exceptions import TrialError
from autotune.executors import LocalExecutor, SubmitError
from autotune.executors._base import read_new_reports
from autotune.executors._local import PID_FILE, cap_log, kill_orphan_trial
from autotune.executors._proctree import start_ticks
from autotune.testing.executors import wait_gone
from autotune.trial import TrialResult, TrialSpec, TrialState
from tests.executors.helpers import CHILD_ENV, FNS, REPO_ROOT, is_alive

pytestmark = pytest.mark.skipif(sys.platform == "win32" or not os.path.isdir("/proc"), reason="needs POSIX and /proc")

CONTRACT = "autotune.testing.executors"


def _wait_for(path: Path, timeout_s: float = 20.0) -> None:
    give_up = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < give_up, f"{path} never appeared"
        time.sleep(0.02)


# -- OOM ---------------------------------------------------------------------------------------


def test_a_sigkill_from_outside_is_oom_and_our_own_kills_are_not(tmp_path: Path) -> None:
    executor = LocalExecutor(3, root_dir=tmp_path, env=CHILD_ENV, kill_grace_s=0.5)
    victim = executor.submit(TrialSpec(0, {}, f"{CONTRACT}:sleepy"))
    cancelled = executor.submit(TrialSpec(1, {}, f"{CONTRACT}:sleepy"))
    bystander = executor.submit(TrialSpec(2, {"x": 2.0}, f"{CONTRACT}:quadratic"))
    while not victim.new_reports() or not cancelled.new_reports():
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)  # type: ignore[attr-defined]  # as the kernel's OOM killer does
    result = victim.result()
    assert result.state is TrialState.OOM
    assert "killed by signal 9" in (result.error or "") and "out of memory" in (result.error or "")
    assert result.history and result.history[0] == {"step": 0, "loss": 1.0}  # reports kept
    assert cancelled.state is TrialState.RUNNING  # the other trials are untouched
    assert cancelled.cancel() and cancelled.result().state is TrialState.KILLED  # our own SIGKILL: not OOM
    assert bystander.result().state is TrialState.COMPLETED and bystander.result().metrics["objective"] == 1.0
    executor.shutdown()


def test_a_timeout_that_needs_sigkill_is_still_a_timeout(tmp_path: Path) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import signal, time\nfrom autotune.report import report\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nreport(step=0, loss=1.0)\ntime.sleep(60)\n"
    )
    executor = LocalExecutor(1, root_dir=tmp_path, env=CHILD_ENV, kill_grace_s=0.3)
    result = executor.submit(TrialSpec(0, {}, str(script), timeout_s=1.0)).result()
    assert result.state is TrialState.TIMEOUT and "time limit" in (result.error or "")


# -- process trees -----------------------------------------------------------------------------


def test_a_worker_that_dies_abruptly_takes_its_escaped_processes_with_it(tmp_path: Path) -> None:
    executor = LocalExecutor(2, root_dir=tmp_path, env=CHILD_ENV, kill_grace_s=0.5, tree_scan_interval_s=0.05)
    pid_file = tmp_path / "pids.json"
    job = executor.submit(TrialSpec(0, {}, f"{CONTRACT}:escapees", fixed_args={"pid_file": str(pid_file), "then": "crash"}))
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        result = job.result()
        pids = json.loads(pid_file.read_text())
        assert result.state is TrialState.FAILED and "exited with code 9" in (result.error or "")
        assert wait_gone(pids) == []  # the setsid grandchild and the daemon were orphaned to init, and still ended
        assert unrelated.poll() is None  # nothing else was hit
    finally:
        unrelated.kill()
        unrelated.wait()


# -- output caps -------------------------------------------------------------------------------


def test_output_is_capped_to_its_tail_with_the_original_size_recorded(tmp_path: Path) -> None:
    executor = LocalExecutor(2, root_dir=tmp_path, env=CHILD_ENV, max_log_bytes=16 * 1024)
    big = executor.submit(TrialSpec(0, {}, f"{CONTRACT}:chatty", fixed_args={"n_bytes": 2_000_000}))
    small = executor.submit(TrialSpec(1, {}, f"{CONTRACT}:chatty", fixed_args={"n_bytes": 1000}))
    executor.shutdown()
    result = big.result()
    assert result.state is TrialState.COMPLETED
    assert result.log_bytes["stdout"] > 2_000_000 and result.logs_truncated == ["stdout"]
    text = Path(result.stdout_path or "").read_bytes()
    assert len(text) <= 16 * 1024 + 200
    lines = text.decode().splitlines()
    assert lines[0].startswith("[autotune: stdout.log truncated: the last ") and f"of {result.log_bytes['stdout']} bytes" in lines[0]
    assert lines[-1] == "LAST LINE" and all(len(line) == 99 for line in lines[1:-1])  # whole lines only
    assert Path(result.stderr_path or "").read_text() == "stderr line\n" and result.log_bytes["stderr"] == 12
    kept = small.result()
    assert kept.logs_truncated == [] and Path(kept.stdout_path or "").read_text().endswith("LAST LINE\n")
    assert kept.log_bytes["stdout"] == Path(kept.stdout_path or "").stat().st_size


def test_cap_log_keeps_everything_without_a_cap(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_bytes(b"a" * 5000)
    assert cap_log(path, None) == (5000, False) and path.stat().st_size == 5000
    assert cap_log(tmp_path / "missing.log", 10) == (0, False)
    assert cap_log(path, 100) == (5000, True)
    assert path.read_bytes().endswith(b"\n" + b"a" * 100)  # no newline near: the raw tail


# -- bad values --------------------------------------------------------------------------------


def test_reports_that_are_not_floats_are_dropped_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    channel = tmp_path / "reports.jsonl"
    channel.write_text(
        '{"step": 0, "loss": 1.5}\n'
        '{"step": 1, "loss": "abc", "acc": 1e999, "big": ' + "9" * 400 + ', "flag": true}\n'
        "not json\n"
        '{"step": 2, "loss": 0.5'  # being written
    )
    records, offset = read_new_reports(channel, 0)
    assert records == [{"step": 0, "loss": 1.5}, {"step": 1, "acc": float("inf")}]
    assert offset == len(channel.read_bytes()) - len('{"step": 2, "loss": 0.5')
    assert "'loss'" in caplog.text and "'big'" in caplog.text and "'flag'" in caplog.text


def test_a_forged_result_file_is_a_clean_failure(tmp_path: Path) -> None:
    script = tmp_path / "forger.py"
    script.write_text(
        "import json, os, sys\n"
        "json.dump({'state': 'completed', 'metrics': {'objective': 'abc'}}, open('result.json', 'w'))\n"
        "os._exit(0)\n"
    )
    executor = LocalExecutor(1, root_dir=tmp_path, env=CHILD_ENV)
    result = executor.submit(TrialSpec(0, {}, str(script))).result()
    assert result.state is TrialState.FAILED and "unreadable result" in (result.error or "")


def test_set_result_is_set_once_and_checked(tmp_path: Path) -> None:
    executor = LocalExecutor(1, root_dir=tmp_path, env=CHILD_ENV)
    job = executor.submit(TrialSpec(0, {"x": 1.0}, f"{CONTRACT}:quadratic"))
    first = job.result()
    assert job.set_result(TrialResult(0, TrialState.FAILED)) is False and job.result() is first
    with pytest.raises(TrialError, match="finished result of this trial"):
        job.set_result(TrialResult(5, TrialState.COMPLETED))
    with pytest.raises(TrialError, match="finished result"):
        job.set_result(TrialResult(0, TrialState.RUNNING))


# -- submit failures ---------------------------------------------------------------------------


def test_a_missing_interpreter_is_a_submit_error_not_a_failed_trial(tmp_path: Path) -> None:
    not_executable = tmp_path / "python3"
    not_executable.write_text("#!/bin/sh\n")
    for python in (str(tmp_path / "no" / "python"), str(not_executable)):
        executor = LocalExecutor(1, root_dir=tmp_path / "trials", python=python)
        with pytest.raises(SubmitError, match=r"interpreter does not exist or is not executable.*Fix:"):
            executor.submit(TrialSpec(0, {"x": 1.0}, f"{CONTRACT}:quadratic"))
        assert executor._jobs == [] and executor._running == []
    assert not (tmp_path / "trials").exists()  # nothing was written for a trial that never existed
    ok = LocalExecutor(1, root_dir=tmp_path / "ok", env=CHILD_ENV)  # another executor is unaffected
    assert ok.submit(TrialSpec(0, {"x": 1.0}, f"{CONTRACT}:quadratic")).result().state is TrialState.COMPLETED


def test_a_process_that_cannot_start_is_a_submit_error(tmp_path: Path) -> None:
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text("#!/nonexistent/interpreter\n")  # exists and is executable, but exec fails
    wrapper.chmod(0o755)
    executor = LocalExecutor(1, root_dir=tmp_path / "trials", python=str(wrapper))
    with pytest.raises(SubmitError, match="could not start the trial process"):
        executor.submit(TrialSpec(0, {"x": 1.0}, f"{CONTRACT}:quadratic"))
    assert executor._jobs == [] and executor._running == [] and executor.allocator.load() == {}


# -- a dead driver: kill its orphans, or adopt them ------------------------------------------------

_DRIVER = """
import json, sys, time
from autotune.executors import LocalExecutor
from autotune.trial import TrialSpec
root, specs, env = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
executor = LocalExecutor(len(specs), root_dir=root, env=env)
jobs = [executor.submit(TrialSpec(**spec)) for spec in specs]
print("started", flush=True)
time.sleep(120)
"""


def _dead_driver(root: Path, specs: list[dict[str, Any]]) -> None:
    """Start trials from a driver process, then SIGKILL the driver (its trials run on)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    driver = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, str(root), json.dumps(specs), json.dumps(CHILD_ENV)],
        stdout=subprocess.PIPE, env=env, text=True,
    )
    assert driver.stdout is not None and driver.stdout.readline().strip() == "started"
    for spec in specs:
        _wait_for(root / f"trial_{spec['trial_id']}" / PID_FILE)
    driver.kill()
    driver.wait()


def test_kill_orphan_trial_kills_only_a_real_trial_inside_the_study(tmp_path: Path) -> None:
    root = tmp_path / "study"
    pid_file = tmp_path / "pids.json"
    _dead_driver(root, [{"trial_id": 0, "params": {}, "entry_point": f"{CONTRACT}:escapees",
                         "fixed_args": {"pid_file": str(pid_file), "then": "sleep"}}])
    _wait_for(pid_file)
    pids = json.loads(pid_file.read_text())
    workdir = root / "trial_0"
    try:
        assert all(is_alive(pid) for pid in pids.values())  # the trial outlived its driver
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        (outside / "link").symlink_to(workdir)  # a path from a forged record: escapes via a symlink
        assert not kill_orphan_trial(outside / "link", root=outside)
        assert not kill_orphan_trial(workdir, root=outside)  # not inside the study's folder
        fake = root / "fake"
        fake.mkdir()
        (fake / PID_FILE).symlink_to(workdir / PID_FILE)
        assert not kill_orphan_trial(fake, root=root)  # the pid file is a symlink
        (fake / PID_FILE).unlink()
        (fake / PID_FILE).write_text((workdir / PID_FILE).read_text())
        assert not kill_orphan_trial(fake, root=root)  # a live worker, but of another workdir
        bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
        try:
            (fake / PID_FILE).write_text(f"{bystander.pid} {start_ticks(bystander.pid)}\n")
            assert not kill_orphan_trial(fake, root=root)  # pid and start time match, but not a worker
            assert bystander.poll() is None
        finally:
            bystander.kill()
            bystander.wait()
        ticks = (workdir / PID_FILE).read_text().split()[1]
        (fake / PID_FILE).write_text(f"{pids['worker']} {int(ticks) + 1}\n")
        assert not kill_orphan_trial(fake, root=root)  # a recycled pid: another start time
        assert all(is_alive(pid) for pid in pids.values())  # every refusal left the trial alone
        with pytest.warns(DeprecationWarning, match="root="):
            assert not kill_orphan_trial(fake)
        assert kill_orphan_trial(workdir, root=root)
        assert wait_gone(pids) == []  # the worker, its setsid grandchild and the daemon
        assert not (workdir / PID_FILE).exists() and not kill_orphan_trial(workdir, root=root)
    finally:
        for pid in pids.values():
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_adopt_waits_for_trials_a_dead_driver_left_running(tmp_path: Path) -> None:
    root = tmp_path / "study"
    specs = [
        {"trial_id": 0, "params": {"x": 3.0}, "entry_point": f"{FNS}:timed", "fixed_args": {"sleep_s": 2.0}},
        {"trial_id": 1, "params": {}, "entry_point": f"{CONTRACT}:sleepy", "timeout_s": 2.5},
        {"trial_id": 2, "params": {"x": 2.0}, "entry_point": f"{CONTRACT}:quadratic"},
        {"trial_id": 3, "params": {}, "entry_point": f"{CONTRACT}:sleepy"},
    ]
    _dead_driver(root, specs)
    _wait_for(root / "trial_2" / "result.json")  # finished while no driver ran
    workers = {tid: int((root / f"trial_{tid}" / PID_FILE).read_text().split()[0]) for tid in (0, 1, 3)}
    executor = LocalExecutor(4, root_dir=root, env=CHILD_ENV, kill_grace_s=0.5)
    jobs = {s["trial_id"]: executor.adopt(root / f"trial_{s['trial_id']}", TrialSpec(**s), reports_seen=1) for s in specs}
    assert executor.adopt(root / "trial_9", TrialSpec(9, {}, f"{CONTRACT}:sleepy")) is None  # lost: nothing to adopt
    assert executor.adopt(tmp_path / "outside", TrialSpec(8, {}, f"{CONTRACT}:sleepy")) is None
    assert all(job is not None for job in jobs.values())
    assert jobs[0].state is TrialState.RUNNING and jobs[3].state is TrialState.RUNNING  # type: ignore[union-attr]
    done = jobs[2].result()  # type: ignore[union-attr]
    assert done.state is TrialState.COMPLETED and done.metrics["objective"] == 1.0 and len(done.history) == 3
    assert jobs[2].new_reports() == done.history[1:]  # type: ignore[union-attr]  # the first was handled before
    assert jobs[3].cancel() is True and jobs[3].result().state is TrialState.KILLED  # type: ignore[union-attr]
    timed_out = jobs[1].result()  # type: ignore[union-attr]
    assert timed_out.state is TrialState.TIMEOUT and 2.5 <= timed_out.duration_s < 6  # counted from its real start
    finished = jobs[0].result()  # type: ignore[union-attr]
    assert finished.state is TrialState.COMPLETED and finished.metrics["objective"] == 3.0
    assert finished.start_time - 1.0 <= finished.metrics["t_start"] < finished.start_time + 5  # the process's start
    assert wait_gone({str(k): v for k, v in workers.items()}) == []
    assert not any((root / f"trial_{tid}" / PID_FILE).exists() for tid in range(4))


def test_the_descendant_walk_finds_setsid_children_with_or_without_children_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotune.executors import _proctree

    pid_file = tmp_path / "pids.json"
    code = f"from autotune.testing.executors import spawn_escapees; import time; spawn_escapees({str(pid_file)!r}); time.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        _wait_for(pid_file)
        pids = json.loads(pid_file.read_text())
        walked = _proctree.descendants(parent.pid)
        assert pids["setsid"] in walked and walked == _proctree.descendants(parent.pid, _proctree.parent_map())
        monkeypatch.setattr(_proctree, "_children", lambda pid: None)  # a kernel without the children files
        assert _proctree.descendants(parent.pid) == walked
        _proctree.end_tree(parent.pid, _proctree.start_ticks(parent.pid), {pids["daemon"]: _proctree.start_ticks(pids["daemon"]) or ""})
        assert wait_gone({"parent": parent.pid, **pids}) == []
    finally:
        parent.kill()
        parent.wait()
