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


def test_versus_pairs_runs_by_seed_and_counts_moves_each_way(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    for seed in range(3):
        for q in (1, 4):
            r = run_one("BraninCurrin", "random", seed, 4, q=q)
            name = f"BraninCurrin-random-{seed}.json" if q == 1 else f"BraninCurrin-random-q4-{seed}.json"
            (old / name).write_text(json.dumps(r))
            gap = [r["max_hv"] - h for h in r["hv"]]
            # the new runs close 90 % of the gap in seeds 0 and 1, and leave seed 2 as it was
            better = {**r, "hv": [r["max_hv"] - g * (0.1 if seed < 2 else 1.0) for g in gap]}
            (new / name).write_text(json.dumps(better))
    (new / "BraninCurrin-random-9.json").write_text(json.dumps(run_one("BraninCurrin", "random", 9, 4)))  # unpaired
    text = report(new, tmp_path / "multi.md", "cmd", [], None, old_raw=old)
    rows = [line for line in text.splitlines() if line.startswith("| BraninCurrin | random | ")]
    paired = [row for row in rows if row.count("|") == 10]
    assert len(paired) == 2  # q = 1 and q = 4, three paired seeds each; seed 9 has no partner
    for row in paired:
        cells = [c.strip() for c in row.split("|")]
        assert cells[4] == "3" and cells[8] == "2 / 0 / 1"  # one log10 unit better in two seeds
    ratio = [row for row in rows if row.count("|") == 5]
    assert len(ratio) == 1 and "(4 / 3)" in ratio[0]  # four sequential runs and three at q = 4 in new
    old_seq = sorted(json.loads(p.read_text())["hv"][-1] for p in old.glob("BraninCurrin-random-[0-9].json"))
    assert ("(3 / 3)" in ratio[0]) == (old_seq[1] > 0)  # a ratio to a zero hypervolume is "-"
