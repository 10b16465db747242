"""Driver SIGKILLs through the ``autotune`` command (short sizes of ``benchmarks/faults/driver_kills``).

Each test starts real drivers (``autotune run``/``resume`` subprocesses, local trial
processes, a SQLite store in ``tmp_path``), SIGKILLs them and asserts issue 13's targets on
what the record and the trial folders hold: no finished trial lost or re-run, no run left
RUNNING, no trial process left behind, the budget spent exactly, the store usable. Every
process a test starts is killed when it ends, pass or fail. The long sizes (20 kills across
60 trials, 10 first-start kills, 10 concurrent pairs) are the figures in
``benchmarks/results/faults.md``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.faults._common import Executions, processes_under
from benchmarks.faults.driver_kills import (
    KillStudyResult,
    concurrent_first_starts,
    first_start_kills,
    kill_study,
)


def _assert_nothing_lost(r: KillStudyResult, n_kills: int) -> None:
    assert r.kills == n_kills, f"only {r.kills} of {n_kills} kills landed: {r.starts}"
    assert not r.failed_starts, f"a driver start failed by itself: {r.failed_starts}"
    assert r.finished, f"the study did not finish: counts {r.counts}, starts {r.starts}"
    assert r.lost == [], f"finished trials lost: {r.lost_reasons}"
    assert r.rerun == [], f"finished trials executed again: {r.rerun}"
    assert r.running_runs == [], f"runs left RUNNING: {r.running_runs}"
    assert r.orphans == [], f"trial processes left running: {r.orphans}"
    assert r.counted == r.max_trials, f"budget: {r.counted} trials counted for max_trials {r.max_trials}: {r.counts}"
    assert r.counts.get("completed") == r.max_trials, f"every trial of this study completes: {r.counts}"


@pytest.mark.timeout(900)
def test_three_driver_kills_lose_and_rerun_no_finished_trial(tmp_path: Path) -> None:
    # The first kill lands during the first start (store creation), the next two mid-study.
    r = kill_study(tmp_path, max_trials=10, workers=4, n_kills=3, seed=0, max_delay_s=6.0,
                   first_kill_in_store_creation=True)
    _assert_nothing_lost(r, 3)
    assert processes_under(tmp_path) == []


@pytest.mark.timeout(900)
def test_two_first_starts_at_once_on_one_fresh_store_both_finish(tmp_path: Path) -> None:
    (pair,) = concurrent_first_starts(tmp_path, tries=1, seed=1)
    assert pair.rcs == [0, 0], f"a driver failed: {pair.errors}"
    assert pair.usable
    assert processes_under(tmp_path) == []


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_kills_during_first_start_leave_a_usable_store(tmp_path: Path) -> None:
    _, tries = first_start_kills(tmp_path, tries=3, seed=2, max_delay_s=4.0)
    assert [t.usable for t in tries] == [True] * 3, [(t.store_at_kill, t.rc, t.error) for t in tries]


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_requeue_mode_reruns_no_finished_trial(tmp_path: Path) -> None:
    r = kill_study(tmp_path, max_trials=12, workers=4, n_kills=4, seed=3, max_delay_s=8.0, on_orphans="requeue")
    _assert_nothing_lost(r, 4)


def test_executions_log_tells_a_finished_rerun_from_a_requeued_kill(tmp_path: Path) -> None:
    log = tmp_path / "executions.log"
    lines = (
        "start 0 a 1", "end 0 a 0.5",                  # ran once
        "start 1 b 2", "end 1 b 0.1", "start 1 c 3",   # finished, then started again: a re-run
        "start 2 d 4", "start 2 e 5", "end 2 e 0.2",   # killed unfinished, re-queued: not a re-run
        "start 3 f 6",                                  # never finished
        "garbage line",
    )
    log.write_text("".join(line + "\n" for line in lines))
    executions = Executions.read(log)
    assert executions.n_executions == 6
    assert executions.finished_trials() == {0, 1, 2}
    assert executions.rerun_after_finish() == [1]
    assert executions.restarted_unfinished() == [2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_driver_kills_with_early_stopping_lose_rerun_and_redecide_nothing(tmp_path: Path) -> None:
    # ASHA stops trials at step 1 while mobster learns from their curves; two driver SIGKILLs.
    # Stopped executions log an ``end`` line, so a pruned trial started again counts as a re-run.
    from autotune.study import StudyRecord, load_study_config
    from autotune.study._stopping import TAG_PRUNED_STEP
    from autotune.trial import TrialState

    overrides = {"strategy": {"name": "mobster"},
                 "early_stopping": {"rule": "asha", "min_step": 1, "max_step": 3, "eta": 3, "grace_s": 5}}
    r = kill_study(tmp_path, max_trials=12, workers=3, n_kills=2, seed=4, max_delay_s=5.0, min_s=0.8, max_s=2.0,
                   overrides=overrides)
    # pruned trials are short: a resumed driver may finish before the second kill's moment
    assert r.kills >= 1, f"no kill landed: {r.starts}"
    assert not r.failed_starts and r.finished, (r.counts, r.starts)
    assert r.lost == [] and r.rerun == [] and r.restarted_unfinished == [], (r.lost_reasons, r.rerun)
    assert r.running_runs == [] and r.orphans == []
    assert r.counted == 12 and r.counts.get("completed", 0) + r.counts.get("pruned", 0) == 12, r.counts
    assert r.counts.get("pruned", 0) >= 1, r.counts
    record = StudyRecord(load_study_config(tmp_path / "killed" / "study.yaml"))
    pruned = [t for t in record.trials() if t.state is TrialState.PRUNED]
    assert pruned and all(int(t.tags[TAG_PRUNED_STEP]) >= 1 for t in pruned)
    assert len({t.trial_id for t in pruned}) == len(pruned)  # one decision, one run per trial
    assert processes_under(tmp_path) == []
