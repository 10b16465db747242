"""``worker.pid`` is written by the trial process itself, first thing: no window without it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from autotune.executors import PID_FILE, LocalExecutor, kill_orphan_trial
from autotune.executors._local import _LAUNCHER
from autotune.executors._proctree import is_running, start_ticks
from autotune.trial import TrialSpec

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _wait_for(predicate: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_the_launcher_writes_the_pid_file_before_importing_autotune(tmp_path: Path) -> None:
    """The module the launcher runs finds the pid file there and no autotune module imported yet."""
    (tmp_path / "probe.py").write_text(textwrap.dedent("""
        import os, sys
        with open('worker.pid') as f:
            pid, ticks = f.read().split()
        ok = int(pid) == os.getpid() and not any(m.split('.')[0] == 'autotune' for m in sys.modules)
        with open('probe.out', 'w') as f:
            f.write('%s %s %s' % (ok, ticks, sys.argv[1:]))
    """))
    work = tmp_path / "trial_0"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "AUTOTUNE_WORKDIR": str(work)}
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, "probe", "a", "--b"], check=False, cwd=work,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    ok, ticks, argv = (work / "probe.out").read_text().split(" ", 2)
    assert ok == "True" and ticks.isdigit() and argv == "['a', '--b']"
    assert not list(work.glob(".worker.pid*"))  # written atomically: no temporary file left


def test_a_driver_killed_right_after_starting_the_trial_leaves_a_pid_file(tmp_path: Path) -> None:
    """Fault: the driver dies between Popen and its own bookkeeping; the orphan can still be found and killed."""
    root = tmp_path / "study"
    driver = textwrap.dedent(f"""
        import os, sys
        from autotune.executors import LocalExecutor, _local
        from autotune.trial import TrialSpec
        def die(pid):  # called right after Popen, before the driver records anything
            os._exit(9)
        _local.oom_kill_count = die
        executor = LocalExecutor(root_dir={str(root)!r}, env={{"PYTHONPATH": {str(REPO_ROOT)!r}}})
        executor.submit(TrialSpec(trial_id=0, params={{}}, entry_point="tests.executors.trial_fns:sleepy"))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", driver], check=False, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 9, proc.stderr
    workdir = root / "trial_0"
    _wait_for(lambda: (workdir / PID_FILE).is_file())
    pid, ticks = (workdir / PID_FILE).read_text().split()
    assert ticks == start_ticks(int(pid)) and is_running(int(pid), ticks)
    assert kill_orphan_trial(workdir, root=root)
    _wait_for(lambda: not is_running(int(pid), ticks))


def test_the_pid_file_names_the_trial_process_and_goes_when_it_ends(tmp_path: Path) -> None:
    with LocalExecutor(root_dir=tmp_path, env={"PYTHONPATH": str(REPO_ROOT)}, kill_grace_s=0.5) as executor:
        job = executor.submit(TrialSpec(trial_id=3, params={}, entry_point="tests.executors.trial_fns:sleepy"))
        path = tmp_path / "trial_3" / PID_FILE
        _wait_for(path.is_file)
        assert path.read_text().split() == [str(job.pid), str(job.ticks)]  # type: ignore[attr-defined]
        assert job.cancel()
        assert not path.exists()
