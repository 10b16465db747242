"""The early-stopping latency benchmark at a tiny size (the figures come from the script)."""

from __future__ import annotations

import pytest

from benchmarks.bench_stopping_latency import run


@pytest.mark.parametrize("rule", ["median", "asha", "hyperband"])
def test_every_report_is_timed_and_the_rule_stops_some_trials(rule: str) -> None:
    r = run(rule, workers=4, trials=30, max_step=9, seed=0)
    assert r["reports"] >= 30  # every trial reports at least once
    assert r["reports"] <= 30 * 9
    assert 0 < r["stopped"] < 30  # a rule that stops some, not all
    assert 0 < r["median_ms"] <= r["p99_ms"] <= r["max_ms"]
