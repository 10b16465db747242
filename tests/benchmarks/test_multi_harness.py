"""The multi-objective benchmark harness at a tiny size (the figures come from ``python -m benchmarks.multi``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.multi.__main__ import read_runs, report, run_one


@pytest.mark.parametrize("method", ["random", "optuna_random"])
def test_asynchronous_runs_keep_q_trials_pending_and_record_every_evaluation(method: str) -> None:
    seq = run_one("BraninCurrin", method, 0, 6)
    par = run_one("BraninCurrin", method, 0, 6, q=3)
    for r in (seq, par):
        assert len(r["hv"]) == 6 and all(b >= a for a, b in zip(r["hv"], r["hv"][1:]))  # hypervolume never falls
        assert 0.0 <= r["hv"][-1] <= r["max_hv"]
    assert par["q"] == 3 and seq["q"] == 1
    if method == "random":
        assert len(par["ask_s"]) < len(seq["ask_s"])  # the first ask takes all three at once


def test_report_skips_files_that_are_not_runs(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "asktime.json").write_text(json.dumps([1.5, 1.7]))
    (raw / "BraninCurrin-random-0.json").write_text(json.dumps(run_one("BraninCurrin", "random", 0, 3)))
    (raw / "BraninCurrin-random-q4-0.json").write_text(json.dumps(run_one("BraninCurrin", "random", 0, 3, q=4)))
    assert [r["q"] for r in read_runs(raw)] == [1, 4]
    text = report(raw, tmp_path / "multi.md", "cmd", [], [1.5, 1.7])
    assert "## BraninCurrin" in text and "Asynchronous, q = 4" in text and "median 1.60 s" in text


@pytest.mark.parametrize("problem", ["BraninCurrin", "DigitsMLP"])
def test_ax_peer_runs_its_sobol_steps_with_thresholds_and_records_every_evaluation(problem: str) -> None:
    pytest.importorskip("ax")
    r = run_one(problem, "ax", 0, 4, q=2)  # Ax's first steps are Sobol: quick, no model fitted
    assert r["method"] == "ax" and len(r["hv"]) == 4
    assert all(b >= a for a, b in zip(r["hv"], r["hv"][1:])) and 0.0 <= r["hv"][-1] <= r["max_hv"]
    assert len(r["ask_s"]) == 3  # two at once, then one per finished trial

