"""A study's ``mlflow server`` killed mid-study and restarted (short size of
``benchmarks/faults/server_outage``): every metric each trial reported must be in the record.

Real processes: ``mlflow server`` on a free loopback port (SQLite backend in ``tmp_path``),
``autotune run`` logging to it, local trial processes. The server's process group is SIGKILLed
once 3 trials have finished and started again 5 s later on the same port and store. Every
process is killed when the test ends, pass or fail. The long size (30 s outage, 60 trials) is
the figure in ``benchmarks/results/faults.md``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.faults._common import processes_under
from benchmarks.faults.server_outage import SIZES, server_outage


@pytest.mark.timeout(900)
def test_server_killed_for_5_s_loses_no_metric(tmp_path: Path) -> None:
    r = server_outage(tmp_path, seed=0, **SIZES["short"])
    assert r.outage_s >= SIZES["short"]["outage_s"], "the server was not killed mid-study"
    assert r.driver_rc == 0, f"the driver failed: {r.driver_error}"
    assert r.trials == SIZES["short"]["max_trials"]
    assert r.trials_without_run == []
    assert r.metrics_lost == 0, (f"{r.points_lost} of {r.points} reported points and {r.finals_lost} of {r.finals} "
                                 f"final metrics missing, trials {r.trials_with_loss}")
    assert r.running_runs == []
    assert r.orphans == []
    assert processes_under(tmp_path) == []
