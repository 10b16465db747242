"""Regret statistics, Markdown tables, PNG plots and the goals, from the cached runs alone.

Definitions (written once here):

- simple regret after ``k`` evaluations: best feasible value among the first ``k`` minus the
  optimum, floored at :data:`FLOOR` before ``log10`` (BoTorch rounds some optima, and the real
  problem's reference is the best value any run found, so a run can reach it exactly); before
  the first feasible point it is the problem's ``worst_value`` minus the optimum.
- "best or tied-best" against a peer on a problem: the reference method's median ``log10`` regret
  at the last evaluation is no worse than the peer's, or a two-sided Mann-Whitney U test does not
  tell them apart (p >= 0.05).
- development/confirmation halves (issue 12): each run's ``split`` (its (problem, seed), see
  :func:`benchmarks.compare.problems.split_of`). The sequential section is reported per half;
  the goals quote the confirmation half (the development half when no confirmation run exists
  yet, and the report says so). Defaults are chosen on ``dev``; a change is accepted only if it
  does not lose on ``confirm``.
- per cell and half: median [IQR] of the final log10 regret, the share of seeds within
  :data:`WITHIN` of the optimum (regret <= 1e-3), the share "stuck" (final regret above the
  problem's ``stuck_regret``: 0.05 on the Hartmann-6 family, whose second basin has regret 0.119;
  1e-3 on the exhaustive table, i.e. not the best cell; 0.1 elsewhere, against the best value
  seen where the optimum is unknown), the boundary share (model-based proposals with >= 2 float
  coordinates on the box boundary, pooled over seeds) and the median ``ask()`` time per call.
- rounds (batch): simulated wall-clock time in units of the mean trial duration, the same clock for
  every loop: sequential (one worker), synchronous batches (each lasts as long as its slowest
  trial) and asynchronous workers.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FLOOR = 1e-6
FLOOR_VS_BEST_SEEN = 1e-3  # below the CV error's resolution (1/569) where the optimum is the best seen
CHECKPOINTS = (10, 30, 60)
WITHIN = 1e-3


# -- regret ---------------------------------------------------------------------------------------
def best_so_far(values: Sequence[float], feasible: Sequence[bool] | None = None, worst: float = math.inf) -> np.ndarray:
    """Best feasible value among the first ``k`` values, for every ``k`` (``worst`` until one is feasible)."""
    v = np.asarray(values, dtype=float)
    ok = np.ones(len(v), bool) if feasible is None else np.asarray(feasible, bool)
    v = np.where(ok & np.isfinite(v), v, worst)
    return np.minimum.accumulate(np.minimum(v, worst)) if len(v) else v


def log_regret(values: Sequence[float], optimum: float, feasible: Sequence[bool] | None = None,
               worst: float = math.inf, floor: float = FLOOR) -> np.ndarray:
    """``log10`` simple regret after each evaluation (floored at ``floor``)."""
    regret = np.maximum(best_so_far(values, feasible, worst) - optimum, 0.0)
    return np.log10(np.maximum(regret, floor))


def feasible_mask(rec: dict[str, Any], constraint: tuple[str, float] | None) -> list[bool] | None:
    if constraint is None:
        return None
    return [c is not None and c <= constraint[1] for c in rec[constraint[0]]]


def quartiles(x: Sequence[float]) -> tuple[float, float, float]:
    a = np.asarray(x, float)
    return float(np.median(a)), float(np.percentile(a, 25)), float(np.percentile(a, 75))


def first_reach(curve: np.ndarray, clock: Sequence[float], target: float) -> float:
    """The clock value at which ``curve`` first reaches ``target`` (``inf`` if never)."""
    hit = np.nonzero(curve <= target + 1e-12)[0]
    return float(clock[hit[0]]) if len(hit) else math.inf


# -- loading ----------------------------------------------------------------------------------------
def load(raw_dir: Path, autotune_code: str = "any") -> list[dict[str, Any]]:
    """The cached records; autotune's only of one code state (``current``: this tree's; ``any``: all)."""
    recs = [json.loads(p.read_text()) for p in sorted(Path(raw_dir).glob("*.json"))]
    if autotune_code == "any":
        return recs
    if autotune_code == "current":
        from benchmarks.compare.runner import code_state

        autotune_code = code_state()
    # the key's code state (``code``) is the one the run was started for
    return [r for r in recs if not r["method"].startswith("autotune")
            or (r.get("code") or r.get("autotune_code")) == autotune_code]


def record_split(rec: dict[str, Any]) -> str | None:
    """A record's half (records made before the split existed: derived from problem and seed)."""
    if rec.get("split"):
        return rec["split"]
    from benchmarks.compare.problems import split_of

    return split_of(rec["problem"], rec["seed"])


class Curves:
    """log10 regret curves grouped by (section, label, problem)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        from benchmarks.compare.problems import make_problem

        self.records = [r for r in records if r["section"] != "asktime"]
        self.optimum: dict[str, float] = {}
        self.reference_from_runs: set[str] = set()
        pbest: dict[str, float] = defaultdict(lambda: math.inf)
        for r in self.records:
            prob = make_problem(r["problem"])
            feas = feasible_mask(r, prob.constraint) or [True] * len(r["values"])
            for v, ok in zip(r["values"], feas):
                if ok and v is not None and math.isfinite(v):
                    pbest[r["problem"]] = min(pbest[r["problem"]], v)
        self.curves: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in self.records:
            prob = make_problem(r["problem"])
            opt = prob.optimal_value
            if opt is None:
                opt = pbest[r["problem"]]
                self.reference_from_runs.add(r["problem"])
            self.optimum[r["problem"]] = opt
            floor = FLOOR if prob.optimal_value is not None else FLOOR_VS_BEST_SEEN
            curve = log_regret(r["values"], opt, feasible_mask(r, prob.constraint), prob.worst_value, floor)
            label = r["method"] if r["mode"] == "seq" else f"{r['method']} {r['mode']} q={r['q']}"
            cost = np.cumsum([c or 0.0 for c in r["cost"]]) if any(c is not None for c in r["cost"]) else None
            self.curves[(r["section"], label, r["problem"])].append(
                {"seed": r["seed"], "curve": curve, "time": r["time"], "round": r["round"], "cost": cost,
                 "ask_s": r["ask_s"], "ask_cpu_s": r.get("ask_cpu_s"), "rec": r, "split": record_split(r),
                 "stuck_regret": prob.stuck_regret,
                 "n_float": sum(q.kind == "float" for q in prob.space.parameters.values())}
            )

    def subset(self, split: str) -> Curves:
        """The same curves (same optima) restricted to one half."""
        import copy

        out = copy.copy(self)
        out.curves = defaultdict(list)
        for k, runs in self.curves.items():
            keep = [c for c in runs if c["split"] == split]
            if keep:
                out.curves[k] = keep
        return out

    def splits(self, section: str) -> list[str]:
        found = {c["split"] for k, runs in self.curves.items() if k[0] == section for c in runs}
        return [s for s in ("dev", "confirm") if s in found]

    def labels(self, section: str, problem: str | None = None) -> list[str]:
        return sorted({k[1] for k in self.curves if k[0] == section and (problem is None or k[2] == problem)},
                      key=_method_order)

    def problems(self, section: str) -> list[str]:
        from benchmarks.compare.problems import PROBLEM_NAMES

        return [p for p in PROBLEM_NAMES if any(k[0] == section and k[2] == p for k in self.curves)]

    def checkpoints(self, section: str) -> list[int]:
        """:data:`CHECKPOINTS` up to the longest run of the section (that length if it is shorter)."""
        n = max((len(c["curve"]) for k, runs in self.curves.items() if k[0] == section for c in runs), default=0)
        return [k for k in CHECKPOINTS if k <= n] or [n]

    def at(self, section: str, label: str, problem: str, k: int) -> list[float]:
        """log10 regret after ``k`` evaluations, one per seed that ran at least ``k``."""
        return [float(c["curve"][k - 1]) for c in self.curves.get((section, label, problem), []) if len(c["curve"]) >= k]


def _method_order(label: str) -> tuple[int, str]:
    order = ["random", "optuna-tpe", "optuna-gp", "ax"]
    for i, m in enumerate(order):
        if label == m:
            return i, label
    return len(order), label


def _fmt(q: tuple[float, float, float] | None) -> str:
    return "—" if q is None else f"{q[0]:.2f} [{q[1]:.2f}, {q[2]:.2f}]"


def _mwu_p(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import mannwhitneyu

    if len(a) < 2 or len(b) < 2 or (np.ptp(np.r_[a, b]) == 0):
        return 1.0
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


# -- tables -----------------------------------------------------------------------------------------
def regret_table(cv: Curves, section: str, checkpoints: Sequence[int]) -> list[str]:
    head = ("| problem | method | seeds | " + " | ".join(f"log10 regret @ {k}" for k in checkpoints)
            + " | median ask, wall (s) | median ask, CPU (s) |")
    lines = [head, "|---|---|---:|" + "---:|" * (len(checkpoints) + 2)]
    for p in cv.problems(section):
        for m in cv.labels(section, p):
            runs = cv.curves[(section, m, p)]
            cells = []
            for k in checkpoints:
                v = cv.at(section, m, p, k)
                cells.append(_fmt(quartiles(v)) if v else "—")
            ask = np.median(np.concatenate([c["ask_s"] for c in runs])) if runs else math.nan
            with_cpu = [c["ask_cpu_s"] for c in runs if c["ask_cpu_s"]]
            cpu = f"{np.median(np.concatenate(with_cpu)):.3f}" if with_cpu else "—"
            if with_cpu and len(with_cpu) < len(runs):
                cpu += f" ({len(with_cpu)} runs)"
            lines.append(f"| {p} | {m} | {len(runs)} | " + " | ".join(cells) + f" | {ask:.3f} | {cpu} |")
    return lines


def wins(cv: Curves, section: str, ref: str, k: int) -> tuple[list[str], dict[str, tuple[int, int, int]], int, int]:
    """Per problem, the reference method against every peer at ``k`` evaluations.

    Returns:
        Table lines, per-peer (problems best-or-tied, problems compared, problems with a strictly
        better median), problems where the reference is best-or-tied against every peer, problems compared.
    """
    lines = ["| problem | peer | Δ median log10 regret (ref − peer) | Mann-Whitney p | best or tied |",
             "|---|---|---:|---:|---|"]
    per_peer: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    all_ok = n_prob = 0
    for p in cv.problems(section):
        a = cv.at(section, ref, p, k)
        if not a:
            continue
        n_prob += 1
        ok_all = True
        for m in cv.labels(section, p):
            if m == ref:
                continue
            b = cv.at(section, m, p, k)
            if not b:
                continue
            d = float(np.median(a) - np.median(b))
            pv = _mwu_p(a, b)
            ok = d <= 0 or pv >= 0.05
            ok_all &= ok
            per_peer[m][0] += ok
            per_peer[m][1] += 1
            per_peer[m][2] += d < 0
            lines.append(f"| {p} | {m} (n={len(b)}) | {d:+.2f} | {pv:.3f} | {'yes' if ok else '**no**'} |")
        all_ok += ok_all
    return lines, {m: (v[0], v[1], v[2]) for m, v in per_peer.items()}, all_ok, n_prob


def cell_stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Final-regret statistics and health figures of one cell (runs of one method on one problem)."""
    final = [float(c["curve"][-1]) for c in runs]
    within = sum(f <= math.log10(WITHIN) + 1e-12 for f in final)
    stuck = sum(f > math.log10(c["stuck_regret"]) for f, c in zip(final, runs))
    n_model = n_bound = 0
    for c in runs:
        r = c["rec"]
        for b, m in zip(r.get("n_on_bound", []), r.get("model_based", [])):
            if m:
                n_model += 1
                n_bound += b >= 2
    n_float = runs[0]["n_float"] if runs else 0
    asks = np.concatenate([c["ask_s"] for c in runs]) if runs else np.array([])
    return {"n": len(runs), "final": quartiles(final) if final else None, "within": within / max(len(runs), 1),
            "stuck": stuck / max(len(runs), 1), "boundary": n_bound / n_model if n_model and n_float >= 2 else None,
            "n_model": n_model, "ask_median": float(np.median(asks)) if len(asks) else math.nan}


def health_table(cv: Curves, section: str) -> list[str]:
    """Per problem and method: median [IQR] final log10 regret, within 1e-3, stuck, boundary share, ask time."""
    lines = [("| problem | method | seeds | final log10 regret: median [IQR] | within 1e-3 | stuck | "
              "boundary share (model proposals, >= 2 coords on the box edge) | median ask (s) |"),
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for p in cv.problems(section):
        for m in cv.labels(section, p):
            st = cell_stats(cv.curves[(section, m, p)])
            b = "—" if st["boundary"] is None else f"{st['boundary']:.2f} (of {st['n_model']})"
            lines.append(f"| {p} | {m} | {st['n']} | {_fmt(st['final'])} | {st['within']:.0%} | {st['stuck']:.0%} | "
                         f"{b} | {st['ask_median']:.3f} |")
    return lines


def guard_goals(cv: Curves, section: str, ref: str, gp: str = "optuna-gp") -> list[str]:
    """Issue 12's goals against Optuna GPSampler on one half: the 75th-percentile and stuck-share rules."""
    worse, stuck_ref, stuck_gp, n = [], [], [], 0
    for p in cv.problems(section):
        a, b = cv.curves.get((section, ref, p)), cv.curves.get((section, gp, p))
        if not a or not b:
            continue
        n += 1
        sa, sb = cell_stats(a), cell_stats(b)
        if sa["final"][0] > sb["final"][2]:
            worse.append(f"{p} ({sa['final'][0]:.2f} > {sb['final'][2]:.2f})")
        stuck_ref.append(sa["stuck"])
        stuck_gp.append(sb["stuck"])
    if not n:
        return []
    mr, mg = float(np.mean(stuck_ref)), float(np.mean(stuck_gp))
    worse_s = "; worse on " + ", ".join(worse) if worse else ""
    return [(f"On no problem is `{ref}`'s median final regret worse than `{gp}`'s 75th percentile: "
             f"**{'met' if not worse else 'not met'}** ({n} problems{worse_s})."),
            (f"Share of runs stuck at a non-global basin no higher than `{gp}`'s: **{'met' if mr <= mg else 'not met'}** "
             f"(mean over {n} problems: {mr:.0%} against {mg:.0%}).")]


def batch_summary(cv: Curves, problem: str, ref: str, max_rounds: int) -> tuple[list[str], float | None, dict[str, float]]:
    """Rounds each batch method needs to reach sequential ``ref``'s median regret at its last evaluation."""
    seq = cv.curves.get(("seq", ref, problem), [])
    if not seq:
        return ["(no sequential runs of the reference method on this problem: no target)"], None, {}
    n = min(len(c["curve"]) for c in seq)
    target = float(np.median([c["curve"][n - 1] for c in seq]))
    marks = sorted(r for r in {5, 10, max_rounds} if r <= max_rounds)
    lines = [(f"Target: the median log10 regret of sequential `{ref}` after {n} evaluations on {problem}: "
             f"**{target:.2f}** ({len(seq)} seeds)."), "",
             "| method | seeds | rounds to target: median [IQR] | seeds reaching it within "
             f"{max_rounds} rounds | " + " | ".join(f"log10 regret @ round {r}" for r in marks) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(marks)]
    medians: dict[str, float] = {}
    labels = [(f"{ref} (sequential)", seq, "seq")] + [(lab, cv.curves[("batch", lab, problem)], "batch")
                                                     for lab in cv.labels("batch", problem)]
    for lab, runs, _kind in labels:
        reach: list[float] = []
        at: dict[int, list[float]] = {r: [] for r in sorted({5, 10, max_rounds}) if r <= max_rounds}
        for c in runs:
            clock = np.asarray(c["time"], float)
            reach.append(first_reach(c["curve"], clock, target))
            for r, vals in at.items():
                idx = np.nonzero(clock <= r)[0]
                vals.append(float(c["curve"][idx[-1]]) if len(idx) else math.nan)
        med = float(np.median(reach))
        medians[lab] = med
        finite = [x for x in reach if math.isfinite(x)]
        q = quartiles(reach) if len(finite) == len(reach) else None
        within = sum(x <= max_rounds for x in reach)
        cells = [_fmt(quartiles([v for v in at[r] if math.isfinite(v)])) if any(math.isfinite(v) for v in at[r]) else "—"
                 for r in at]
        rt = _fmt(q) if q else (f"{med:.1f} (some seeds never reached it)" if math.isfinite(med) else "median not reached")
        lines.append(f"| {lab} | {len(runs)} | {rt} | {within}/{len(runs)} | " + " | ".join(cells) + " |")
    return lines, target, medians


def cost_summary(cv: Curves, problem: str, base: str) -> tuple[list[str], float | None, dict[str, float]]:
    """Cumulative cost each method needs to reach ``base``'s median regret at the end of its runs.

    With a cost budget (every run stops once it has spent it) the target is ``base``'s regret
    at the budget; without one, after its evaluations.
    """
    runs0 = cv.curves.get(("cost", base, problem), [])
    if not runs0:
        return [f"(no `{base}` runs on {problem}: no target)"], None, {}
    target = float(np.median([c["curve"][-1] for c in runs0]))
    half = 0.5 * float(np.median([c["cost"][-1] for c in runs0]))
    budget = runs0[0]["rec"].get("cost_budget")
    n_evals = [len(c["curve"]) for c in runs0]
    end = (f"when its cost budget of {budget:g} is spent (after {int(np.median(n_evals))} evaluations, median)"
           if budget is not None else f"after {min(n_evals)} evaluations")
    lines = [f"Target: the median log10 regret of `{base}` {end}: **{target:.2f}** ({len(runs0)} seeds).", "",
             ("| method | seeds | cost to reach target: median [IQR] | seeds reaching it | total cost of the run (median) |"
              f" log10 regret at the end | log10 regret at cost {half:.1f} (half of {base}'s median total) |"),
             "|---|---:|---:|---:|---:|---:|---:|"]
    medians: dict[str, float] = {}
    for lab in cv.labels("cost", problem):
        runs = cv.curves[("cost", lab, problem)]
        reach = [first_reach(c["curve"], c["cost"], target) for c in runs]
        medians[lab] = float(np.median(reach))
        ok = [x for x in reach if math.isfinite(x)]
        rt = _fmt(quartiles(reach)) if len(ok) == len(reach) else (
            f"{medians[lab]:.1f} (some seeds never)" if math.isfinite(medians[lab]) else "median not reached")
        total = float(np.median([c["cost"][-1] for c in runs]))
        end = _fmt(quartiles([c["curve"][-1] for c in runs]))
        at_half = [float(c["curve"][max(int(np.searchsorted(c["cost"], half, side="right")) - 1, 0)]) for c in runs]
        medians[f"{lab}@half"] = float(np.median(at_half))
        lines.append(f"| {lab} | {len(runs)} | {rt} | {len(ok)}/{len(runs)} | {total:.1f} | {end} | "
                     f"{_fmt(quartiles(at_half))} |")
    return lines, target, medians


def asktime_table(records: list[dict[str, Any]]) -> tuple[list[str], dict[tuple[str, int], tuple[float, float]]]:
    rows = sorted((r for r in records if r["section"] == "asktime"), key=lambda r: (r["method"], r["n"]))
    lines = [("| method | n observations | median ask, wall (s) | median ask, CPU (s) | asks timed | load (1 min) | "
             "peak RSS (MB) | RSS added by the asks (MB) | autotune code |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    med = {}
    for r in rows:
        cpu = r.get("median_ask_cpu_s")
        med[(r["method"], r["n"])] = (r["median_ask_s"], cpu if cpu is not None else math.nan)
        load = "/".join(f"{x:.1f}" for x in r.get("load", [])) or "—"
        code = r.get("autotune_commit", "") + (f"+{r['autotune_diff_sha1']}" if r.get("autotune_diff_sha1") else "")
        code = code if r["method"].startswith("autotune") else ""
        lines.append(f"| {r['method']} | {r['n']} | {r['median_ask_s']:.3f} | "
                     f"{'—' if cpu is None else f'{cpu:.3f}'} | {len(r['ask_s'])} | {load} | "
                     f"{r['rss_peak_mb']:.0f} | {r['ask_peak_extra_mb']:.0f} | {code} |")
    return lines, med


# -- plots ------------------------------------------------------------------------------------------
def _band(ax: Any, x: np.ndarray, curves: list[np.ndarray], label: str) -> None:
    n = min(len(c) for c in curves)
    a = np.stack([c[:n] for c in curves])
    import warnings

    with warnings.catch_warnings():  # all-NaN columns past the end of every run
        warnings.simplefilter("ignore", RuntimeWarning)
        ax.plot(x[:n], np.nanmedian(a, 0), label=f"{label} ({len(curves)})")
        ax.fill_between(x[:n], np.nanpercentile(a, 25, 0), np.nanpercentile(a, 75, 0), alpha=0.2)


def plot_regret(cv: Curves, section: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = cv.problems(section)
    cols = min(3, len(probs))
    rows = math.ceil(len(probs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, p in zip(axes.flat, probs):
        for m in cv.labels(section, p):
            curves = [c["curve"] for c in cv.curves[(section, m, p)]]
            _band(ax, np.arange(1, max(len(c) for c in curves) + 1), curves, m)
        ax.set_title(p + (" (vs best seen)" if p in cv.reference_from_runs else ""), fontsize=9)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("log10 regret")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(probs):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _step(clock: np.ndarray, curve: np.ndarray, grid: np.ndarray, start: float) -> np.ndarray:
    """The step curve on ``grid``; NaN past the run's last clock value (the run did not go there)."""
    idx = np.searchsorted(clock, grid, side="right") - 1
    out = np.where(idx >= 0, curve[np.clip(idx, 0, None)], start)
    return np.where(grid > clock[-1], np.nan, out) if len(clock) else out


def plot_clock(cv: Curves, groups: list[tuple[str, list[dict[str, Any]], str]], grid: np.ndarray, xlabel: str,
               title: str, path: Path, start: float, target: float | None) -> None:
    """Median and IQR of regret on a common clock (rounds, or cumulative cost)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, runs, key in groups:
        curves = [_step(np.asarray(c[key], float), c["curve"], grid, start) for c in runs]
        _band(ax, grid, curves, label)
    if target is not None:
        ax.axhline(target, color="k", ls=":", lw=1, label="target")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("log10 regret")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_asktime(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["section"] == "asktime":
            by[r["method"]].append(r)
    for m, rs in sorted(by.items()):
        rs.sort(key=lambda r: r["n"])
        a1.loglog([r["n"] for r in rs], [r["median_ask_s"] for r in rs], "o-", label=m)
        a2.semilogx([r["n"] for r in rs], [r["rss_peak_mb"] for r in rs], "o-", label=m)
    a1.set_xlabel("observations")
    a1.set_ylabel("median ask (s)")
    a2.set_xlabel("observations")
    a2.set_ylabel("peak RSS (MB)")
    a1.legend(fontsize=7)
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -- the report -------------------------------------------------------------------------------------
def _versions() -> str:
    import importlib.metadata as md

    out = []
    for pkg in ("autotune", "torch", "botorch", "gpytorch", "optuna", "ax-platform", "scikit-learn", "numpy", "scipy"):
        try:
            out.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            out.append(f"{pkg} (not installed)")
    return ", ".join(out)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def write_report(raw_dir: Path, out_md: Path, command: str, ref: str = "autotune", status: dict[str, str] | None = None,
                 notes: Sequence[str] = (), autotune_code: str = "current") -> Path:
    """Write the Markdown report and its PNGs (next to it, prefixed by its stem) from the cache.

    ``autotune_code``: report autotune's runs of this code state only (``current``: the working
    tree's, see :func:`benchmarks.compare.runner.code_state`; ``any``: every cached run).
    """
    from benchmarks.compare.problems import make_problem

    records = load(raw_dir, autotune_code)
    cv = Curves(records)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    stem = out_md.stem

    def png(name: str) -> Path:
        return out_md.parent / f"{stem}_{name}.png"

    commits = sorted({f"{r.get('autotune_commit')}" + (f" + uncommitted autotune/ diff {r['autotune_diff_sha1']}"
                                                        if r.get("autotune_diff_sha1") else "")
                      for r in records if r["method"].startswith("autotune")})
    seeds = sorted({r["seed"] for r in records if r["section"] != "asktime"})
    L: list[str] = [
        "# autotune against random search, Optuna and Ax", "",
        f"Command: `{command}`", "",
        f"Machine: {_machine()}. Every optimiser on one CPU thread (`OMP_NUM_THREADS=1`).", "",
        f"Versions: {_versions()}.", "",
        (f"autotune code: commit(s) {', '.join(commits) or '—'} (`git -C <repo> log -1 --format=%h` when each "
        "run started; a diff hash means the working tree's `autotune/` differed from that commit)."), "",
        (f"Seeds: {', '.join(map(str, seeds)) or '—'} (per cell, the `seeds` column says how many finished). "
        f"Reference method for the goals: `{ref}` (the `Optimizer` default strategy)."), "",
        (f"Regret is the best feasible value so far minus the optimum, floored at {FLOOR:g} before log10; "
        "medians with [25th, 75th percentile] across seeds."), "",
    ]
    loads = [x for r in records for x in (r.get("load_start"), r.get("load_end"), *r.get("load", [])) if x is not None]
    if loads:
        L += [(f"Machine load (1-minute load average on {os.cpu_count()} CPUs) seen by the runs: median "
              f"{np.median(loads):.1f}, range {min(loads):.1f} to {max(loads):.1f}. Wall-clock ask times are "
              "inflated by that load; the CPU-time columns are not (each optimiser runs on one thread)."), ""]
    by_code: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in records:
        if r["method"].startswith("autotune"):
            code = r.get("autotune_commit", "?") + (f" + diff {r['autotune_diff_sha1']}" if r.get("autotune_diff_sha1") else "")
            by_code[code][r["section"]] += 1
    if by_code:
        L += ["| autotune code (commit + hash of the uncommitted `autotune/` diff) | autotune runs per section |",
              "|---|---|"]
        L += [f"| {code} | {', '.join(f'{k}: {v}' for k, v in sorted(secs.items()))} |" for code, secs in by_code.items()]
        L.append("")
    L += [f"- {n}" for n in notes]
    if notes:
        L.append("")
    if cv.reference_from_runs:
        L += [(f"Optimum unknown for {', '.join(sorted(cv.reference_from_runs))}: regret is measured against the best "
              "value found by any method in this run."), ""]
    L += ["Problems:", ""] + [f"- `{p}`: {make_problem(p).description}" for p in
                              dict.fromkeys(r["problem"] for r in records)] + [""]

    goals: list[str] = []
    # 1. sample efficiency, per half; the goals quote the confirmation half
    halves = cv.splits("seq")
    goal_half = "confirm" if "confirm" in halves else (halves[0] if halves else None)
    names = {"dev": "development half", "confirm": "confirmation half"}
    if halves:
        L += ["## Sample efficiency (sequential, log10 simple regret against evaluations)", "",
              ("Each half separately: the development half (development problems x development seeds) is where "
               "defaults are chosen; the confirmation half (confirmation seeds on every problem, including the "
               "held-out problems) is where they are checked. Headline figures quote the confirmation half."
               + ("" if goal_half == "confirm" else " **No confirmation run exists yet: the goals below quote "
                  "the development half and are not a confirmation.**")), ""]
    for half in halves:
        sub = cv.subset(half)
        ks = sub.checkpoints("seq")
        k = ks[-1]
        L += [f"### {names[half].capitalize()} (`{half}`)", ""]
        L += regret_table(sub, "seq", ks) + [""]
        L += [f"Final regret and health figures ({names[half]}):", ""] + health_table(sub, "seq") + [""]
        plot_regret(sub, "seq", png(f"regret_{half}"))
        L += [f"![regret {half}]({png(f'regret_{half}').name})", "",
              f"#### `{ref}` against each peer at {k} evaluations ({half})", ""]
        wl, per_peer, all_ok, n_prob = wins(sub, "seq", ref, k)
        L += wl + [""]
        if n_prob:
            need = math.ceil(2 * n_prob / 3)
            summary = ", ".join(f"{m}: {a}/{b}" for m, (a, b, _) in per_peer.items())
            strict = ", ".join(f"{m}: {c}/{b}" for m, (_, b, c) in per_peer.items())
            met = all(a >= math.ceil(2 * b / 3) for a, b, _ in per_peer.values())
            n_seeds = min(len(sub.at("seq", ref, p, k)) for p in sub.problems("seq") if sub.at("seq", ref, p, k))
            weak = (f" With {n_seeds} seed(s) per cell a Mann-Whitney test at 0.05 cannot separate two methods "
                    "(3 against 3 gives p >= 0.1), so 'tied' is weak evidence here; the strictly-better-median counts "
                    "are the sharper figure." if n_seeds <= 3 else "")
            L += [(f"Best or tied-best against each peer (problems): {summary}. Against every peer at once: "
                  f"{all_ok}/{n_prob} (two thirds = {need}). Strictly better median: {strict}.{weak}"), ""]
            if half == goal_half:
                goals.append(f"[{half}] Default strategy best or tied-best at {k} evaluations on ≥ 2/3 of the problems "
                             f"against every peer: **{'met' if met else 'not met'}** (best or tied: {summary}; "
                             f"strictly better median: {strict}).{weak}")
        if half == goal_half:
            goals += [f"[{half}] {g}" for g in guard_goals(sub, "seq", ref)]
    # 2. batch
    batch_probs = cv.problems("batch")
    for p in batch_probs:
        q_batch = max(r["q"] for r in records if r["section"] == "batch")
        L += [f"## Batch q = {q_batch} on {p}: regret against rounds", ""]
        rounds = max(r["rounds"] for r in records if r["section"] == "batch")
        bl, target, med = batch_summary(cv, p, ref, rounds)
        L += bl + [""]
        groups = [(f"{ref} sequential", cv.curves.get(("seq", ref, p), []), "time")]
        groups += [(lab, cv.curves[("batch", lab, p)], "time") for lab in cv.labels("batch", p)]
        groups = [g for g in groups if g[1]]
        start = math.log10(max(make_problem(p).worst_value - cv.optimum[p], FLOOR))
        q = max(r["q"] for r in records if r["section"] == "batch")
        plot_clock(cv, groups, np.linspace(0, rounds, 200), "rounds (mean trial duration = 1)", f"{p}, q = {q}",
                   png("batch"), start, target)
        L += [f"![batch]({png('batch').name})", ""]
        n_seq = min((len(c["curve"]) for c in cv.curves.get(("seq", ref, p), [])), default=0)
        for lab, m in med.items():
            if "async" in lab and lab.startswith(ref):
                runs = cv.curves[("batch", lab, p)]
                hit = sum(first_reach(c["curve"], c["time"], target) <= rounds for c in runs) if target is not None else 0
                goals.append(f"q = {q_batch} asynchronous `{lab}` reaches sequential {ref}'s median regret at {n_seq} "
                             f"evaluations in ≤ {rounds} rounds: **{'met' if m <= rounds else 'not met'}** "
                             f"(median {m:.1f} rounds; {hit}/{len(runs)} seeds within {rounds}).")
    # 3. cost
    for p in cv.problems("cost"):
        L += [f"## Cost-varying problem {p}: regret against cumulative cost", ""]
        cl, target, med = cost_summary(cv, p, "autotune-ei")
        L += cl + [""]
        runs = {lab: cv.curves[("cost", lab, p)] for lab in cv.labels("cost", p)}
        top = max(float(np.median([c["cost"][-1] for c in rs])) for rs in runs.values())
        start = math.log10(max(make_problem(p).worst_value - cv.optimum[p], FLOOR))
        plot_clock(cv, [(lab, rs, "cost") for lab, rs in runs.items()], np.linspace(0, top, 300), "cumulative cost",
                   p, png("cost"), start, target)
        L += [f"![cost]({png('cost').name})", ""]
        if "autotune-ei" in med and target is not None:
            for lab in [lab for lab in med if lab.startswith("autotune-ei_per_cost") and not lab.endswith("@half")]:
                at_half = med[f"{lab}@half"]
                goals.append(f"`{lab}` reaches EI's regret at ≤ half EI's cost: **"
                             f"{'met' if at_half <= target else 'not met'}** (median log10 regret of `{lab}` at half "
                             f"EI's median total cost: {at_half:.2f}; EI's at its end: {target:.2f}; median cost to reach "
                             f"EI's: {med[lab]:.1f}).")
    # 4. constrained
    if cv.problems("constrained"):
        L += ["## Outcome constraint: feasible regret against evaluations", ""]
        L += regret_table(cv, "constrained", cv.checkpoints("constrained")) + [""]
        plot_regret(cv, "constrained", png("constrained"))
        L += [f"![constrained]({png('constrained').name})", ""]
        wl, per_peer, _, _ = wins(cv, "constrained", ref, cv.checkpoints("constrained")[-1])
        L += wl + [""]
    # 5. ask time
    at_lines, med = asktime_table(records)
    if med:
        L += ["## `ask()` time and memory against the number of observations (Hartmann-6)", "",
              ("Each (method, n) runs in a fresh interpreter: n random observations, one warm-up ask, then the timed "
              "asks (each followed by its tell). Peak RSS is the process's `ru_maxrss` (imports included); 'added by "
              "the asks' is the rise of that peak over its value before the first ask."), ""]
        L += at_lines + [""]
        plot_asktime(records, png("asktime"))
        L += [f"![asktime]({png('asktime').name})", ""]
        small = [(n, v) for (m, n), v in med.items() if m == ref and n <= 200]
        if small:
            wall = max(v[0] for _, v in small)
            cpu = max(v[1] for _, v in small)
            goals.append(f"`ask()` median under 1 s at n ≤ 200: wall clock **{'met' if wall < 1 else 'not met'}** "
                         f"(worst {wall:.2f} s), CPU time **{'met' if cpu < 1 else 'not met'}** (worst {cpu:.2f} s), "
                         f"n = {', '.join(str(n) for n, _ in sorted(small))}. On a loaded machine the CPU time is the "
                         "closer estimate of an idle machine's wall clock (one thread).")
    if status:
        bad = {k: s for k, s in status.items() if not s.startswith(("done", "cached"))}
        if bad:
            L += ["## Runs that did not finish", ""] + [f"- `{k}`: {s.splitlines()[0]}" for k, s in sorted(bad.items())] + [""]
    L[L.index("Problems:"):L.index("Problems:")] = ["## Goals (reported, not asserted)", ""] + (
        [f"- {g}" for g in goals] or ["- (no goal measured in this run)"]) + [""]
    out_md.write_text("\n".join(L) + "\n")
    return out_md
