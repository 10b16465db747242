"""Warm start of local trials (``LocalExecutor(warm_start=True)``): fast, and as isolated as cold ones."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from autotune.exceptions import ConfigError
from autotune.executors import LocalExecutor
from autotune.trial import TrialSpec, TrialState
from tests.executors.helpers import CHILD_ENV

pytestmark = pytest.mark.skipif(sys.platform == "win32" or not os.path.isdir("/proc"), reason="needs POSIX and /proc")
FNS = "tests.executors.trial_fns"


def _executor(tmp_path: Path, **options: object) -> LocalExecutor:
    return LocalExecutor(2, root_dir=tmp_path, env=CHILD_ENV, kill_grace_s=1.0, warm_start=True,
                         preload=[FNS], **options)  # type: ignore[arg-type]


def test_trials_fork_from_one_warm_process_with_their_own_state_env_and_folder(tmp_path: Path) -> None:
    ex = _executor(tmp_path)
    try:
        results = [ex.submit(TrialSpec(i, {"x": 0.0}, f"{FNS}:set_global")).result(timeout_s=60) for i in range(3)]
        assert [r.state for r in results] == [TrialState.COMPLETED] * 3
        assert [r.metrics["objective"] for r in results] == [0.0] * 3  # no state leaks from one trial to the next
        assert len({r.metrics["pid"] for r in results}) == 3  # a process per trial
        zygote = ex._zygote
        assert zygote is not None and FNS in zygote.preloaded
        probe = ex.submit(TrialSpec(9, {"x": 0.0}, f"{FNS}:env_probe")).result(timeout_s=60)
        assert probe.state is TrialState.COMPLETED
        seen = json.loads((tmp_path / "trial_9" / "env.json").read_text())
        assert seen["AUTOTUNE_TRIAL_ID"] == "9" and seen["CUDA_VISIBLE_DEVICES"] == ""
        assert Path(seen["cwd"]) == tmp_path / "trial_9"
    finally:
        ex.shutdown(kill=True)


def test_a_dead_warm_process_is_replaced(tmp_path: Path) -> None:
    ex = _executor(tmp_path)
    try:
        assert ex.submit(TrialSpec(0, {"x": 1.0}, f"{FNS}:quadratic")).result(timeout_s=60).state is TrialState.COMPLETED
        first = ex._zygote
        assert first is not None
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(10)
        r = ex.submit(TrialSpec(1, {"x": 1.0}, f"{FNS}:quadratic")).result(timeout_s=60)
        assert r.state is TrialState.COMPLETED
        assert ex._zygote is not None and ex._zygote is not first and ex._zygote.alive()
    finally:
        ex.shutdown(kill=True)


def test_a_warm_trial_killed_by_a_sigkill_it_was_not_sent_is_oom_and_timeouts_still_kill(tmp_path: Path) -> None:
    ex = _executor(tmp_path)
    try:
        r = ex.submit(TrialSpec(0, {"x": 1.0}, f"{FNS}:self_sigkill")).result(timeout_s=60)
        assert r.state is TrialState.OOM, r.error  # the exit status came back from the warm process
        start = time.monotonic()
        slow = ex.submit(TrialSpec(1, {"x": 1.0}, f"{FNS}:timed", {"sleep_s": 30.0}, timeout_s=1.0))
        assert slow.result(timeout_s=60).state is TrialState.TIMEOUT
        assert time.monotonic() - start < 15
        crashed = ex.submit(TrialSpec(2, {"x": 1.0}, f"{FNS}:hard_exit")).result(timeout_s=60)
        assert crashed.state is TrialState.FAILED and "exited with code 7" in (crashed.error or "")
    finally:
        ex.shutdown(kill=True)


def test_warm_start_falls_back_to_cold_when_the_warm_process_cannot_start(tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    ex = LocalExecutor(1, root_dir=tmp_path, env=CHILD_ENV, warm_start=True, python="/nonexistent/python")
    try:
        ex.python = sys.executable  # the trial's own start works; only the warm process fails
        import autotune.executors._local as local

        real = local.Zygote

        def broken(*args: object, **kwargs: object) -> object:
            raise OSError("cannot start")

        local.Zygote = broken  # type: ignore[assignment,misc]
        try:
            r = ex.submit(TrialSpec(0, {"x": 1.0}, f"{FNS}:quadratic")).result(timeout_s=60)
        finally:
            local.Zygote = real  # type: ignore[misc]
        assert r.state is TrialState.COMPLETED
        assert "trials start cold" in caplog.text
    finally:
        ex.shutdown(kill=True)


def test_warm_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="warm_start"):
        LocalExecutor(1, warm_start="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="preload"):
        LocalExecutor(1, warm_start=True, preload="torch")  # type: ignore[arg-type]
