"""Is a change of default accepted? Two code states of autotune's default, side by side on one half.

Issue 12's rule: a default chosen on the development half is accepted only if it does not lose
on the confirmation half. This prints, per sequential problem, the median [IQR] log10 regret at
``--at`` evaluations of the default before (``--old``) and after (``--new``) the change, with
Optuna GPSampler's beside them, on the seeds both states ran, and the counts the decision rests
on. Regret as in the report (:class:`benchmarks.compare.report.Curves`: the optimum where known,
else the best value any run in the cache found).

Command line::

    python -m benchmarks.compare.versus --split confirm --old a3f624f436 --new 71e764ae68
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.compare.report import Curves, load, quartiles
from benchmarks.compare.runner import RAW_DIR

TIE = 0.05
"""Medians closer than this (in log10 regret) count as tied."""


def relabel(records: list[dict[str, Any]], old: str, new: str, method: str = "autotune") -> list[dict[str, Any]]:
    """The sequential records of the peers plus ``method``'s of the two code states, relabelled
    ``<method>@old`` and ``<method>@new``; other autotune records dropped."""
    out = []
    for r in records:
        if r["section"] != "seq":
            continue
        if r["method"].startswith("autotune"):
            state = r.get("code") or r.get("autotune_code")
            if r["method"] != method or state not in (old, new):
                continue
            r = {**r, "method": f"{method}@{'old' if state == old else 'new'}"}
        out.append(r)
    return out


def compare(cv: Curves, split: str, at: int, gp: str = "optuna-gp",
            diffs: list[float] | None = None) -> tuple[list[str], dict[str, int]]:
    """The markdown table and the counts (``new_better``, ``new_worse``, ``tied``, ``new_vs_gp_*``,
    ``old_over_gp_q3``, ``new_over_gp_q3``) on the problems where both states ran; ``diffs``, if
    given, receives the paired differences (new minus old) of every (problem, seed)."""
    cv = cv.subset(split)
    rows = ["| problem | seeds | default before | default after | Optuna GP | after vs before |",
            "|---|---:|---:|---:|---:|---|"]
    counts = dict.fromkeys(("new_better", "new_worse", "tied", "new_vs_gp_better", "new_vs_gp_worse",
                            "new_vs_gp_tied", "old_over_gp_q3", "new_over_gp_q3", "problems"), 0)
    for p in cv.problems("seq"):
        runs = {lab: {c["seed"]: c for c in cv.curves.get(("seq", lab, p), []) if len(c["curve"]) >= at}
                for lab in ("autotune@old", "autotune@new", gp)}
        seeds = sorted(set(runs["autotune@old"]) & set(runs["autotune@new"]))
        if not seeds:
            continue
        old = [float(runs["autotune@old"][s]["curve"][at - 1]) for s in seeds]
        new = [float(runs["autotune@new"][s]["curve"][at - 1]) for s in seeds]
        if diffs is not None:
            diffs.extend(b - a for a, b in zip(old, new, strict=True))
        g = [float(c["curve"][at - 1]) for c in runs[gp].values()]
        qo, qn = quartiles(old), quartiles(new)
        qg = quartiles(g) if g else None
        d = qn[0] - qo[0]  # quartiles(): (median, 25th, 75th)
        verdict = "better" if d < -TIE else ("worse" if d > TIE else "tied")
        counts["problems"] += 1
        counts[{"better": "new_better", "worse": "new_worse", "tied": "tied"}[verdict]] += 1
        if qg is not None:
            dg = qn[0] - qg[0]
            counts["new_vs_gp_better" if dg < -TIE else ("new_vs_gp_worse" if dg > TIE else "new_vs_gp_tied")] += 1
            counts["old_over_gp_q3"] += qo[0] > qg[2]
            counts["new_over_gp_q3"] += qn[0] > qg[2]

        def fmt(q: tuple[float, float, float] | None) -> str:
            return "—" if q is None else f"{q[0]:.2f} [{q[1]:.2f}, {q[2]:.2f}]"

        rows.append(f"| {p} | {len(seeds)} | {fmt(qo)} | {fmt(qn)} | {fmt(qg)} | {verdict} ({d:+.2f}) |")
    return rows, counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare.versus", description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", type=Path, default=RAW_DIR)
    ap.add_argument("--split", default="confirm", choices=("dev", "confirm"))
    ap.add_argument("--old", required=True, help="the code state before the change (as in the cache's keys)")
    ap.add_argument("--new", required=True, help="the code state after it")
    ap.add_argument("--at", type=int, default=60, help="evaluations (default 60)")
    args = ap.parse_args(argv)
    records = relabel(load(args.raw, "any"), args.old, args.new)
    if not any(r["method"] == "autotune@new" for r in records):
        ap.error(f"--new: no autotune run of code state {args.new!r} in {args.raw}")
    diffs: list[float] = []
    rows, c = compare(Curves(records), args.split, args.at, diffs=diffs)
    print("\n".join(rows))
    n = c["problems"]
    print(f"\nAfter vs before on {n} problems ({args.split} half, {args.at} evaluations): better on "
          f"{c['new_better']}, worse on {c['new_worse']}, tied (within {TIE}) on {c['tied']}. "
          f"After vs Optuna GP: better on {c['new_vs_gp_better']}, worse on {c['new_vs_gp_worse']}, tied on "
          f"{c['new_vs_gp_tied']}. Median worse than Optuna GP's 75th percentile: {c['old_over_gp_q3']} before, "
          f"{c['new_over_gp_q3']} after.")
    print(paired_summary(diffs))
    return 0


def paired_summary(diffs: list[float]) -> str:
    """Per-run evidence: the (problem, seed) pairs, how many moved each way, and the two-sided
    Wilcoxon signed-rank and sign tests of the non-zero differences (SciPy)."""
    import statistics

    from scipy import stats

    moved = [d for d in diffs if abs(d) > 1e-9]
    worse = sum(d > 0 for d in moved)
    if not moved:
        return f"Paired over {len(diffs)} runs: all identical."
    w = stats.wilcoxon(moved).pvalue if len(moved) > 1 else float("nan")
    sign = stats.binomtest(worse, len(moved)).pvalue
    return (f"Paired over {len(diffs)} (problem, seed) runs: {len(diffs) - len(moved)} identical, after worse in "
            f"{worse}, better in {len(moved) - worse}; median difference {statistics.median(diffs):+.3f}, mean "
            f"{sum(diffs) / len(diffs):+.3f} log10; Wilcoxon signed-rank p = {w:.3f}, sign test p = {sign:.3f}.")


if __name__ == "__main__":
    raise SystemExit(main())
