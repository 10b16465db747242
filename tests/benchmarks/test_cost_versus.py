"""``benchmarks.compare.cost_versus``: the cost goal per half from cached runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks.compare.cost_versus import OPTIMUM, compare, cost_to_reach, curve, regret_at


def _write(raw: Path, method: str, seed: int, code: str, values: list[float], cost: list[float]) -> None:
    name = f"cost__{method}__cost_hartmann6__s{seed}__e200__c150__a{code}.json"
    (raw / name).write_text(json.dumps({"values": values, "cost": cost}), encoding="utf-8")


def test_the_curve_is_the_best_so_far_against_cumulative_cost() -> None:
    pts = curve({"values": [OPTIMUM + 1.0, OPTIMUM + 10.0, OPTIMUM + 0.01], "cost": [2.0, 3.0, 5.0]})
    assert [c for c, _ in pts] == [2.0, 5.0, 10.0]
    assert [round(r, 9) for _, r in pts] == [0.0, 0.0, -2.0]
    assert regret_at(pts, 1.0) == 0.0 and regret_at(pts, 9.9) == 0.0 and round(regret_at(pts, 10.0), 9) == -2.0
    assert cost_to_reach(pts, -1.0) == 10.0 and math.isinf(cost_to_reach(pts, -3.0))


def test_the_share_of_eis_cost_and_the_runs_reaching_its_regret(tmp_path: Path) -> None:
    for seed in range(3):  # EI: spends 100 and ends at regret 0.1 (log10 -1)
        _write(tmp_path, "autotune-ei", seed, "old", [OPTIMUM + 1.0, OPTIMUM + 0.1], [50.0, 50.0])
        # old: reaches 0.1 at cost 80; new: at 20 (a cheap design), except seed 2 never does
        _write(tmp_path, "autotune-ei_per_cost", seed, "old", [OPTIMUM + 1.0, OPTIMUM + 0.1], [40.0, 40.0])
        new = [OPTIMUM + 1.0, OPTIMUM + (0.5 if seed == 2 else 0.05)]
        _write(tmp_path, "autotune-ei_per_cost", seed, "new", new, [10.0, 10.0])
    text = "\n".join(compare(tmp_path, "old", "new", initial=1))
    assert "EI's final median log10 regret -1.00 over 3 runs, median total cost 100.0" in text
    rows = [line for line in text.splitlines() if line.startswith("| dev | autotune-ei_per_cost |")]
    assert len(rows) == 2
    assert "| 80.0 (0.80) | 3/3 | 40.0 |" in rows[0]
    assert "| 20.0 (0.20) | 2/3 | 10.0 |" in rows[1]  # the median of 20, 20, inf
    assert "confirm" not in text  # no runs on the confirmation seeds: no rows
