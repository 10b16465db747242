"""The shipped executor contract (``autotune.testing.executors``) run on the built-in executors.

The same trials run through the in-process executor (plain and threaded) and the local
executor (real child processes, run in parallel to keep this fast).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from autotune.executors import Executor, InProcessExecutor, LocalExecutor
from autotune.testing.executors import ExecutorContract
from tests.executors.helpers import CHILD_ENV


class TestInProcess(ExecutorContract):
    queues = False

    def make_executor(self, root_dir: Path) -> Executor:
        return InProcessExecutor()


class TestInProcessThreaded(ExecutorContract):
    def make_executor(self, root_dir: Path) -> Executor:
        return InProcessExecutor(3, threaded=True)


@pytest.mark.skipif(sys.platform == "win32" or not os.path.isdir("/proc"), reason="needs POSIX and /proc")
class TestLocal(ExecutorContract):
    isolated = True

    def make_executor(self, root_dir: Path) -> Executor:
        return LocalExecutor(4, root_dir=root_dir, env=CHILD_ENV, kill_grace_s=1.0, tree_scan_interval_s=0.1)


@pytest.mark.skipif(sys.platform == "win32" or not os.path.isdir("/proc"), reason="needs POSIX and /proc")
class TestLocalWarm(ExecutorContract):
    """The same contract with trials forked from the warm-start process (nothing preloaded, to stay fast)."""

    isolated = True

    def make_executor(self, root_dir: Path) -> Executor:
        return LocalExecutor(4, root_dir=root_dir, env=CHILD_ENV, kill_grace_s=1.0, tree_scan_interval_s=0.1,
                             warm_start=True, preload=["tests.executors.trial_fns"])
