"""The default against every peer on one half: the table and the counts issue 12's goals rest on.

Per sequential problem: whether the defaults were tuned on it (a development problem) or it is
held out, the seeds, autotune's median [IQR] log10 regret at ``--at`` evaluations and its share
of seeds within 1e-3 of the optimum, the same for Optuna GPSampler, and the medians of the
other peers (TPE, random, Ax where it ran). Then the counts: strictly better medians than each
peer, the same with a tie band, on the held-out problems apart, best or tied-best against every
peer, the problems where autotune's median is worse than GPSampler's 75th percentile, and the
stuck share. Regret as in the report (:class:`benchmarks.compare.report.Curves`).

Command line::

    python -m benchmarks.compare.peers --split confirm --code 71e764ae68
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from benchmarks.compare.report import Curves, cell_stats, load, quartiles
from benchmarks.compare.runner import RAW_DIR

TIE = 0.05
"""Medians closer than this (in log10 regret) count as tied."""

PEERS = ("optuna-gp", "optuna-tpe", "random", "ax")
"""The peers, GPSampler (the one to beat) first."""


def summarise(cv: Curves, split: str, at: int, ref: str = "autotune") -> tuple[list[str], dict[str, object]]:
    """The markdown table and the counts on the problems where ``ref`` and GPSampler both ran."""
    from benchmarks.compare.problems import PROBLEM_SPLIT

    cv = cv.subset(split)
    peers = [p for p in PEERS if any(k[1] == p for k in cv.curves)]
    head = (f"| problem | tuned on? | seeds | {ref} | within 1e-3 | Optuna GP (seeds) | within 1e-3 | "
            + " | ".join(p for p in peers[1:]) + " |")
    rows = [head, "|---|---|---:|---|---:|---|---:|" + "---:|" * len(peers[1:])]
    counts: dict[str, object] = {"problems": 0, "held_out": 0, "over_gp_q3": [], "best_or_tied": 0}
    for p in peers:
        counts[f"strict_{p}"] = counts[f"n_{p}"] = 0
        counts[f"tie_{p}"] = [0, 0, 0]  # better, worse, tied
        counts[f"held_{p}"] = [0, 0, 0]
    stuck_ref, stuck_gp = [], []
    body = []
    for prob in cv.problems("seq"):
        runs = {m: [c for c in cv.curves.get(("seq", m, prob), []) if len(c["curve"]) >= at] for m in (ref, *peers)}
        if not runs[ref] or not runs["optuna-gp"]:
            continue
        held = PROBLEM_SPLIT.get(prob, "dev") != "dev"
        counts["problems"] = int(counts["problems"]) + 1  # type: ignore[call-overload]
        counts["held_out"] = int(counts["held_out"]) + held  # type: ignore[call-overload]
        finals = {m: [float(c["curve"][at - 1]) for c in rs] for m, rs in runs.items()}
        q = {m: quartiles(v) for m, v in finals.items() if v}
        within = {m: float(np.mean([f <= -3 + 1e-12 for f in v])) for m, v in finals.items() if v}
        best_or_tied = True
        for m in peers:
            if m not in q:
                continue
            d = q[ref][0] - q[m][0]
            counts[f"n_{m}"] += 1  # type: ignore[operator]
            counts[f"strict_{m}"] += d < 0  # type: ignore[operator]
            k = 0 if d < -TIE else (1 if d > TIE else 2)
            counts[f"tie_{m}"][k] += 1  # type: ignore[index]
            if held:
                counts[f"held_{m}"][k] += 1  # type: ignore[index]
            best_or_tied &= d <= TIE
        counts["best_or_tied"] = int(counts["best_or_tied"]) + best_or_tied  # type: ignore[call-overload]
        if q[ref][0] > q["optuna-gp"][2]:
            counts["over_gp_q3"].append(f"{prob} ({q[ref][0]:.2f} > {q['optuna-gp'][2]:.2f})")  # type: ignore[union-attr]
        stuck_ref.append(cell_stats(runs[ref])["stuck"])
        stuck_gp.append(cell_stats(runs["optuna-gp"])["stuck"])

        def fmt(m: str) -> str:
            return f"{q[m][0]:.2f} [{q[m][1]:.2f}, {q[m][2]:.2f}]" if m in q else "—"

        others = " | ".join(f"{q[m][0]:.2f}" if m in q else "—" for m in peers[1:])
        body.append((held, prob, f"| {prob} | {'held out' if held else 'dev problem'} | {len(finals[ref])} | {fmt(ref)} | "
                     f"{within[ref]:.0%} | {fmt('optuna-gp')} ({len(finals['optuna-gp'])}) | "
                     f"{within['optuna-gp']:.0%} | {others} |"))
    rows += [r for _, _, r in sorted(body, key=lambda t: (not t[0], t[1]))]
    counts["stuck"] = (float(np.mean(stuck_ref)) if stuck_ref else math.nan,
                       float(np.mean(stuck_gp)) if stuck_gp else math.nan)
    counts["peers"] = peers
    return rows, counts


def reading(c: dict[str, object], split: str, at: int) -> str:
    """The counts in words."""
    n = int(c["problems"])  # type: ignore[call-overload]
    parts = [f"On the {split} half, {n} problems ({c['held_out']} held out), {at} evaluations:"]
    for m in c["peers"]:  # type: ignore[attr-defined]
        b, w, t = c[f"tie_{m}"]  # type: ignore[misc]
        hb, hw, ht = c[f"held_{m}"]  # type: ignore[misc]
        parts.append(f"against {m}: strictly better median on {c[f'strict_{m}']} of {c[f'n_{m}']}; with a tie band "
                     f"of {TIE}, better {b}, worse {w}, tied {t} (held out: better {hb}, worse {hw}, tied {ht});")
    over = c["over_gp_q3"]
    parts.append(f"best or tied-best against every peer that ran on {c['best_or_tied']} of {n} (two thirds: "
                 f"{math.ceil(2 * n / 3)});")
    parts.append(f"median worse than Optuna GP's 75th percentile on {len(over)}"  # type: ignore[arg-type]
                 + (": " + ", ".join(over) if over else "") + ";")  # type: ignore[arg-type]
    sr, sg = c["stuck"]  # type: ignore[misc]
    parts.append(f"stuck share {sr:.0%} against Optuna GP's {sg:.0%}.")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare.peers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", type=Path, default=RAW_DIR)
    ap.add_argument("--split", default="confirm", choices=("dev", "confirm"))
    ap.add_argument("--code", default="current", help="autotune's code state (as in the cache's keys; default: current)")
    ap.add_argument("--at", type=int, default=60, help="evaluations (default 60)")
    args = ap.parse_args(argv)
    records = [r for r in load(args.raw, args.code) if r["section"] == "seq"]
    cv = Curves(records)
    rows, counts = summarise(cv, args.split, args.at)
    if not counts["problems"]:
        ap.error(f"no problem with both autotune (code {args.code}) and Optuna GP runs on the {args.split} half")
    print("\n".join(rows))
    print()
    print(reading(counts, args.split, args.at))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
