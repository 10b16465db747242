"""The cost goal of issue 12 per half, for two code states of the cost-aware strategies.

Goal: a cost-aware strategy reaches EI's final regret on ``cost_hartmann6`` for at most half of
EI's cost. The report (:mod:`benchmarks.compare.report`) pools every cached seed of the cost
section; this prints, for the development and the confirmation seeds separately, EI's final
median log10 regret (the target) and, per strategy and code state, the median [IQR] log10
regret at half of EI's median total cost, the median final regret, the median cost at which a
run first reaches the target (as a share of EI's; a run that never does counts as infinite), how
many runs reach it, and the cost of the first ``--initial`` evaluations (the initial design).

Command line::

    python -m benchmarks.compare.cost_versus --old a7308ce78a --new ac30f0b789
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.compare.runner import RAW_DIR

OPTIMUM = -3.32237
"""Hartmann-6's minimum (BoTorch's ``Hartmann(dim=6).optimal_value``)."""

FLOOR = 1e-6
"""Regret floor before log10, as in the report."""

SPLIT_SEEDS = {"dev": range(0, 20), "confirm": range(1000, 1020)}
METHODS = ("autotune-ei_per_cost", "autotune-ei_per_cost_cool")


def load_runs(raw: Path, method: str, code: str | None, seeds: range) -> dict[int, dict[str, Any]]:
    """The cached cost-section runs of ``method`` at ``code`` (``None``: runs without a code key)."""
    out = {}
    for s in seeds:
        suffix = f"__a{code}" if code else ""
        path = raw / f"cost__{method}__cost_hartmann6__s{s}__e200__c150{suffix}.json"
        if path.exists():
            out[s] = json.loads(path.read_text(encoding="utf-8"))
    return out


def curve(run: dict[str, Any]) -> list[tuple[float, float]]:
    """``(cumulative cost, log10 regret of the best value so far)`` after each evaluation."""
    spent, best, points = 0.0, math.inf, []
    for value, cost in zip(run["values"], run["cost"]):
        spent += cost
        best = min(best, value)
        points.append((spent, math.log10(max(best - OPTIMUM, FLOOR))))
    return points


def regret_at(points: list[tuple[float, float]], cost: float) -> float:
    """The log10 regret once ``cost`` is spent (before the first evaluation: that of the first)."""
    seen = [r for c, r in points if c <= cost]
    return seen[-1] if seen else points[0][1]


def cost_to_reach(points: list[tuple[float, float]], target: float) -> float:
    """The cumulative cost at which the log10 regret first is at most ``target`` (``inf``: never)."""
    return next((c for c, r in points if r <= target), math.inf)


def compare(raw: Path, old: str, new: str, initial: int = 7) -> list[str]:
    """Markdown lines: per half, EI's target and each strategy at both code states."""
    lines = ["| half | strategy | code | runs | log10 regret at half EI's cost | final | cost to EI's final "
             "(share of EI's) | runs reaching it | cost of the first evaluations |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for half, seeds in SPLIT_SEEDS.items():
        ei = load_runs(raw, "autotune-ei", old, seeds)
        if not ei:
            continue
        total = statistics.median(sum(r["cost"]) for r in ei.values())
        target = statistics.median(curve(r)[-1][1] for r in ei.values())
        notes.append(f"- {half} (seeds {seeds.start}-{seeds.stop - 1}): EI's final median log10 regret "
                     f"{target:.2f} over {len(ei)} runs, median total cost {total:.1f}.")
        for method in METHODS:
            for code in (old, new):
                runs = load_runs(raw, method, code, seeds)
                if not runs:
                    continue
                curves = [curve(r) for r in runs.values()]
                at_half = [regret_at(p, total / 2) for p in curves]
                q = statistics.quantiles(at_half, n=4, method="inclusive") if len(at_half) > 1 else [at_half[0]] * 3
                reach = [cost_to_reach(p, target) for p in curves]
                med = statistics.median(reach)
                first = statistics.median(sum(r["cost"][:initial]) for r in runs.values())
                lines.append(
                    f"| {half} | {method} | {code} | {len(runs)} | {statistics.median(at_half):.2f} "
                    f"[{q[0]:.2f}, {q[2]:.2f}] | {statistics.median(p[-1][1] for p in curves):.2f} | "
                    f"{med:.1f} ({med / total:.2f}) | {sum(math.isfinite(c) for c in reach)}/{len(reach)} | {first:.1f} |")
    return [*notes, "", *lines]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare.cost_versus", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="code state before (its EI runs give the target)")
    ap.add_argument("--new", required=True, help="code state after")
    ap.add_argument("--raw", type=Path, default=RAW_DIR)
    ap.add_argument("--initial", type=int, default=7, help="evaluations counted as the initial design")
    args = ap.parse_args(argv)
    print("\n".join(compare(args.raw, args.old, args.new, args.initial)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
