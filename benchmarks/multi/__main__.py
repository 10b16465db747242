"""Multi-objective comparison: ``OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.multi --seeds 10 --evals 60``.

Problems (``botorch.test_functions.multi_objective``, with their published maximum hypervolume
and reference point): BraninCurrin (d = 2, M = 2), DTLZ2 (d = 6, M = 2), VehicleSafety
(d = 5, M = 3), ZDT1 (d = 4, M = 2); and a real trade-off, ``DigitsMLP`` (validation loss against
log10 of the weights of an MLP on scikit-learn's digits, looked up in a table of real training:
:class:`DigitsMLP`). Methods: autotune ``qlognehvi`` (default), ``qnparego``,
``mo_thompson`` and ``random``; Optuna 5 ``NSGAIISampler``, ``TPESampler``, ``GPSampler`` (all
multi-objective) and ``RandomSampler``; and Ax's ``Client`` with its default multi-objective
generation strategy (Sobol, then qLogNEHVI), each with its library defaults. autotune and Ax are
given the problem's reference point (Ax as objective thresholds); Optuna's samplers take none.

Each run minimises the problem's objectives sequentially for ``--evals`` evaluations and stores
the hypervolume after every evaluation (above the problem's reference point, in BoTorch's
maximisation convention) in ``--raw/<problem>-<method>-<seed>.json``; runs already there are
skipped, so an interrupted run resumes. The report (``--out``) gives, per problem and method,
the median and interquartile range over seeds of log10 hypervolume regret
(``log10(max_hv - hv)``) at a few evaluation counts, and the ask() time of ``qlognehvi`` at
n = 200 with two objectives (``--asktime``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RAW = REPO / "benchmarks" / "results" / "multi_raw"
PROBLEMS = ["BraninCurrin", "DTLZ2", "VehicleSafety", "ZDT1", "DigitsMLP"]
METHODS = ["qlognehvi", "qnparego", "mo_thompson", "random", "optuna_nsga2", "optuna_tpe", "optuna_gp",
           "optuna_random", "ax"]


class DigitsMLP:
    """A real trade-off: validation loss against model size of an MLP on scikit-learn's digits.

    The 648 configurations of ``benchmarks/lc_tables/build_digits_mlp.py`` (real training, 27
    epochs, mean of two seeds): minimise the final validation loss and ``log10`` of the number
    of weights. The whole space is in the table, so the maximum hypervolume is exact. Held out:
    nothing in autotune was tuned on it.
    """

    num_objectives = 2

    def __init__(self) -> None:
        import gzip

        import torch

        from autotune.objectives import hypervolume

        with gzip.open(REPO / "benchmarks" / "lc_tables" / "digits_mlp.json.gz", "rt", encoding="utf-8") as fh:
            table = json.load(fh)
        self.grid: dict[str, list[Any]] = table["grid"]
        self.values = {tuple(r["config"][k] for k in self.grid): (r["val_loss"][-1], self.log_weights(r["config"]))
                       for r in table["rows"]}
        worst_size = max(v[1] for v in self.values.values())
        self.ref_point = -torch.tensor([1.0, worst_size + 0.1], dtype=torch.float64)  # maximisation convention
        Y = -torch.tensor(list(self.values.values()), dtype=torch.float64)
        self.max_hv = hypervolume(Y, self.ref_point)

    @staticmethod
    def log_weights(config: dict[str, Any]) -> float:
        w, depth = int(config["width"]), int(config["depth"])
        return math.log10(64 * w + w + (depth - 1) * (w * w + w) + 10 * w + 10)

    def space(self) -> dict[str, Any]:
        return {"parameters": {k: {"type": "categorical", "choices": v} if isinstance(v[0], str)
                               else {"type": "ordinal", "values": v} for k, v in self.grid.items()}}

    def __call__(self, params: dict[str, Any]) -> list[float]:
        return list(self.values[tuple(params[k] for k in self.grid)])


def problem(name: str) -> Any:
    from botorch.test_functions.multi_objective import DTLZ2, ZDT1, BraninCurrin, VehicleSafety

    if name == "DigitsMLP":
        return DigitsMLP()

    return {"BraninCurrin": lambda: BraninCurrin(negate=True), "DTLZ2": lambda: DTLZ2(dim=6, num_objectives=2, negate=True),
            "VehicleSafety": lambda: VehicleSafety(negate=True),
            "ZDT1": lambda: ZDT1(dim=4, num_objectives=2, negate=True)}[name]()


def run_one(pname: str, method: str, seed: int, evals: int, q: int = 1, n_initial: int | None = None) -> dict[str, Any]:
    """One run; returns the hypervolume after each evaluation and the ask times.

    ``q = 1`` is sequential. ``q > 1`` is asynchronous: ``q`` trials are always running, the
    oldest finishes, is told, and one new trial is asked for (with the other ``q - 1`` pending).
    ``n_initial`` replaces autotune's initial-design size (``None``: the optimiser's default).
    """
    import torch

    from autotune.objectives import hypervolume

    prob = problem(pname)
    table = isinstance(prob, DigitsMLP)
    m = prob.num_objectives
    ref = prob.ref_point.to(torch.float64)
    if table:
        choices: dict[str, Any] = dict(prob.grid)
        f = prob
    else:
        lo, hi = prob.bounds[0].tolist(), prob.bounds[1].tolist()
        choices = {f"x{i}": (a, b) for i, (a, b) in enumerate(zip(lo, hi))}

        def f(params: dict[str, Any]) -> list[float]:  # the minimised objectives (BoTorch's un-negated ones)
            x = torch.tensor([[params[n] for n in choices]], dtype=torch.float64)
            return (-prob(x)[0]).tolist()

    ys: list[list[float]] = []
    ask_s: list[float] = []
    if method == "ax":
        _run_ax(choices, f, [-float(r) for r in ref.tolist()], seed, evals, q, ys, ask_s)
    elif method.startswith("optuna"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        sampler = {"optuna_nsga2": optuna.samplers.NSGAIISampler, "optuna_tpe": optuna.samplers.TPESampler,
                   "optuna_gp": optuna.samplers.GPSampler, "optuna_random": optuna.samplers.RandomSampler}[method](seed=seed)
        study = optuna.create_study(directions=["minimize"] * m, sampler=sampler)
        running: list[tuple[Any, dict[str, float]]] = []
        asked = 0
        while len(ys) < evals:
            while len(running) < q and asked < evals:
                t0 = time.perf_counter()
                trial = study.ask()
                params = {n: trial.suggest_float(n, *c) if isinstance(c, tuple) else trial.suggest_categorical(n, c)
                          for n, c in choices.items()}
                ask_s.append(time.perf_counter() - t0)
                running.append((trial, params))
                asked += 1
            trial, params = running.pop(0)
            y = f(params)
            study.tell(trial, y)
            ys.append(y)
    else:
        from autotune import Float, Optimizer, SearchSpace
        from autotune.objectives import Objective

        space = (SearchSpace.from_dict(prob.space()) if table
                 else SearchSpace([Float(n, a, b) for n, (a, b) in choices.items()]))
        objs = [Objective(f"f{j}", "minimize") for j in range(m)]
        opt = Optimizer(space, method, objectives=objs, seed=seed, n_initial=n_initial,
                        reference_point={f"f{j}": -float(r) for j, r in enumerate(ref.tolist())})
        pending: list[Any] = []
        while len(ys) < evals:
            k = min(q - len(pending), evals - len(ys) - len(pending))
            if k > 0:
                t0 = time.perf_counter()
                pending += opt.ask(k)
                ask_s.append(time.perf_counter() - t0)
            s = pending.pop(0)
            y = f(s.params)
            opt.tell(s, {f"f{j}": v for j, v in enumerate(y)})
            ys.append(y)
    Y = -torch.tensor(ys, dtype=torch.float64)  # maximisation, as the reference point and max_hv
    hv = [hypervolume(Y[: i + 1], ref) for i in range(len(Y))]
    return {"problem": pname, "method": method, "seed": seed, "evals": evals, "q": q, "n_initial": n_initial, "hv": hv,
            "max_hv": float(prob.max_hv), "ask_s": ask_s}


def _run_ax(choices: dict[str, Any], f: Any, thresholds: list[float], seed: int, evals: int, q: int,
            ys: list[list[float]], ask_s: list[float]) -> None:
    """Ax's ``Client`` (default generation strategy), minimising ``f`` with objective thresholds."""
    import logging

    from ax.api import Client
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

    for name in list(logging.root.manager.loggerDict):  # Ax sets a level on each of its loggers
        if name.split(".")[0] in ("ax", "pyro"):
            logging.getLogger(name).setLevel(logging.WARNING)
    params: list[Any] = []
    for n, c in choices.items():
        if isinstance(c, tuple):
            params.append(RangeParameterConfig(name=n, bounds=c, parameter_type="float"))
        elif isinstance(c[0], str):
            params.append(ChoiceParameterConfig(name=n, values=list(c), parameter_type="str", is_ordered=False))
        else:
            kind = "int" if all(isinstance(v, int) for v in c) else "float"
            params.append(ChoiceParameterConfig(name=n, values=list(c), parameter_type=kind, is_ordered=True))
    client = Client(random_seed=seed)
    client.configure_experiment(parameters=params, name=f"multi-{seed}")
    names = [f"f{j}" for j in range(len(thresholds))]
    client.configure_optimization(objective=", ".join(f"-{n}" for n in names),
                                  outcome_constraints=[f"{n} <= {t!r}" for n, t in zip(names, thresholds)])
    running: list[tuple[int, dict[str, Any]]] = []
    asked = 0
    while len(ys) < evals:
        k = min(q - len(running), evals - asked)
        if k > 0:
            t0 = time.perf_counter()
            got = client.get_next_trials(max_trials=k)
            ask_s.append(time.perf_counter() - t0)
            running += [(i, dict(p)) for i, p in got.items()]
            asked += len(got)
        idx, p = running.pop(0)
        y = f(p)
        client.complete_trial(idx, raw_data={n: float(v) for n, v in zip(names, y)})
        ys.append(y)


def asktime(n: int = 200, repeats: int = 3) -> list[float]:
    """Seconds of one ``qlognehvi`` ask with ``n`` observations of BraninCurrin (random points)."""
    import torch

    from autotune import Float, Optimizer, SearchSpace
    from autotune.objectives import Objective

    prob = problem("BraninCurrin")
    out = []
    for rep in range(repeats):
        space = SearchSpace([Float("x0", 0, 1), Float("x1", 0, 1)])
        opt = Optimizer(space, "qlognehvi", objectives=[Objective("a"), Objective("b")], seed=rep)
        g = torch.Generator().manual_seed(rep)
        X = torch.rand(n, 2, generator=g, dtype=torch.float64)
        Y = -prob(X)
        for x, y in zip(X.tolist(), Y.tolist()):
            opt.add({"x0": x[0], "x1": x[1]}, {"a": y[0], "b": y[1]})
        t0 = time.perf_counter()
        opt.ask()
        out.append(time.perf_counter() - t0)
    return out


def _q(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def read_runs(raw: Path) -> list[dict[str, Any]]:
    """The stored runs (other files in ``raw``, such as ``asktime.json``, are not runs)."""
    runs = []
    for p in sorted(raw.glob("*.json")):
        r = json.loads(p.read_text())
        if isinstance(r, dict) and "problem" in r and "hv" in r:
            runs.append({"q": 1, **r})
    return runs


def report(raw: Path, out: Path, cmd: str, notes: list[str], ask: list[float] | None,
           old_raw: Path | None = None) -> str:
    """The Markdown report of the runs in ``raw`` (written to ``out``), with the paired
    comparison against ``old_raw`` (:func:`versus`) when given."""
    runs = read_runs(raw)
    lines = ["# Multi-objective comparison", "", f"Command: `{cmd}`", ""] + [f"- {n}" for n in notes]
    lines += ["", "log10 hypervolume regret (`log10(max_hv - hv)`, lower is better): median [IQR] over seeds, "
              "each library's defaults; autotune gets the problem's reference point. `q=4`: asynchronous, "
              "four trials always running (the oldest finishes, one new is asked with three pending).", ""]
    lines += _table(runs, 1)
    if any(r["q"] > 1 for r in runs):
        lines += ["# Asynchronous, q = 4", ""] + _table(runs, 4)
        lines += _async_vs_sequential(runs)
    if ask:
        lines += ["## ask() time at n = 200, two objectives", "",
                  f"`qlognehvi`, BraninCurrin, 200 random observations, one ask, {len(ask)} repeats: "
                  f"median {statistics.median(ask):.2f} s (all: {', '.join(f'{a:.2f}' for a in ask)}).", ""]
    if old_raw is not None:
        lines += versus(raw, old_raw, old_raw.name, raw.name)
    text = "\n".join(lines)
    out.write_text(text + "\n", encoding="utf-8")
    return text


def _async_vs_sequential(runs: list[dict[str, Any]]) -> list[str]:
    """Median hypervolume at the last evaluation, q = 4 over sequential, per problem and method."""
    lines = ["## q = 4 against sequential (median hypervolume at the last evaluation, ratio)", "",
             "| problem | method | sequential | q = 4 | ratio |", "|---|---|---|---|---|"]
    for pname in PROBLEMS:
        for method in METHODS:
            seq, par = _final_hv(runs, pname, method, 1), _final_hv(runs, pname, method, 4)
            if seq and par:
                a, b = statistics.median(seq), statistics.median(par)
                ratio = f"{b / a:.3f}" if a > 0 else "-"
                lines.append(f"| {pname} | {method} | {a:.4g} ({len(seq)}) | {b:.4g} ({len(par)}) | {ratio} |")
    return [*lines, ""]


def _final_hv(runs: list[dict[str, Any]], pname: str, method: str, q: int) -> list[float]:
    """The last hypervolume of each run of ``method`` on ``pname`` with ``q`` trials running."""
    return [r["hv"][-1] for r in runs if (r["problem"], r["method"], r["q"]) == (pname, method, q)]


def _regret(r: dict[str, Any], c: int) -> float:
    """log10 hypervolume regret of run ``r`` after ``c`` evaluations (floored at 1e-12)."""
    return math.log10(max(r["max_hv"] - r["hv"][c - 1], 1e-12))


def _run_key(r: dict[str, Any]) -> tuple[str, str, int, int]:
    return r["problem"], r["method"], r["q"], r["seed"]


def versus(raw: Path, old_raw: Path, old_name: str = "before", new_name: str = "after") -> list[str]:
    """Paired comparison of two raw directories (the same problems, methods, q and seeds).

    Per problem, method and q: the seeds both hold, median log10 hypervolume regret at 20, 40
    and the last evaluation in each, the runs better / worse / tied (0.01 band) at the last,
    and the Wilcoxon signed-rank p-value of the paired final regrets; then the ratio of the
    median final hypervolume at q = 4 to the sequential one, for each directory.
    """
    from scipy.stats import wilcoxon

    new, old = read_runs(raw), read_runs(old_raw)
    olds = {_run_key(r): r for r in old}
    pairs = [(olds[_run_key(r)], r) for r in new if _run_key(r) in olds]
    lines = [f"## {new_name} against {old_name} (paired by seed)", "",
             f"log10 hypervolume regret, median over the seeds both hold ({old_name} / {new_name}); "
             "better / worse / tied: the runs whose final regret moved by more than 0.01 each way.", "",
             "| problem | method | q | seeds | @20 | @40 | @last | better / worse / tied | Wilcoxon p |",
             "|---|---|---:|---:|---|---|---|---|---:|"]
    groups = sorted({_run_key(n)[:3] for _, n in pairs}, key=lambda g: (PROBLEMS.index(g[0]), g[1], g[2]))
    for g in groups:
        ps = [(o, n) for o, n in pairs if _run_key(n)[:3] == g]
        last = min(min(len(o["hv"]), len(n["hv"])) for o, n in ps)
        cells = []
        for c in (min(20, last), min(40, last), last):
            a = statistics.median(_regret(o, c) for o, _ in ps)
            b = statistics.median(_regret(n, c) for _, n in ps)
            cells.append(f"{a:.3f} / {b:.3f}")
        d = [_regret(n, last) - _regret(o, last) for o, n in ps]
        better, worse = sum(x < -0.01 for x in d), sum(x > 0.01 for x in d)
        p = float(wilcoxon(d).pvalue) if any(abs(x) > 0 for x in d) else 1.0
        lines.append(f"| {g[0]} | {g[1]} | {g[2]} | {len(ps)} | " + " | ".join(cells)
                     + f" | {better} / {worse} / {len(ps) - better - worse} | {p:.3f} |")
    lines += ["", f"q = 4 against sequential, median final hypervolume (ratio), {old_name} and {new_name}:", "",
              "| problem | method | " + f"{old_name} | {new_name} |", "|---|---|---|---|"]
    for pname in PROBLEMS:
        for method in METHODS:
            cells = []
            for runs in (old, new):
                seq, par = _final_hv(runs, pname, method, 1), _final_hv(runs, pname, method, 4)
                a, b = (statistics.median(seq), statistics.median(par)) if seq and par else (0.0, 0.0)
                cells.append(f"{b / a:.3f} ({len(seq)} / {len(par)})" if a > 0 else "-")
            if any(c != "-" for c in cells):
                lines.append(f"| {pname} | {method} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _table(runs: list[dict[str, Any]], q: int) -> list[str]:
    lines: list[str] = []
    runs = [r for r in runs if r["q"] == q]
    for pname in PROBLEMS:
        pr = [r for r in runs if r["problem"] == pname]
        if not pr:
            continue
        evals = max(r["evals"] for r in pr)
        checkpoints = sorted({min(e, evals) for e in (10, 20, 40, 60, evals)})
        lines += [f"## {pname}", "", "| method | seeds | " + " | ".join(f"@{c}" for c in checkpoints)
                  + " | median ask (s) |", "|---|---|" + "---|" * len(checkpoints) + "---|"]
        for method in METHODS:
            mr = [r for r in pr if r["method"] == method]
            if not mr:
                continue
            cells = []
            for c in checkpoints:
                vals = [_regret(r, c) for r in mr if len(r["hv"]) >= c]
                cells.append(f"{statistics.median(vals):.3f} [{_q(vals, .25):.2f}, {_q(vals, .75):.2f}]" if vals else "-")
            ask_med = statistics.median([a for r in mr for a in r["ask_s"]])
            lines.append(f"| {method} | {len(mr)} | " + " | ".join(cells) + f" | {ask_med:.3f} |")
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.multi", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--evals", type=int, default=60)
    ap.add_argument("--problems", nargs="+", default=PROBLEMS, choices=PROBLEMS)
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--raw", type=Path, default=RAW)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "multi.md")
    ap.add_argument("--asktime", action="store_true", help="also time one qlognehvi ask at n = 200")
    ap.add_argument("--stop-at", default=None, help="HH:MM (UTC) after which no new run starts")
    ap.add_argument("--note", action="append", default=[])
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--q", type=int, default=1, help="trials running at once (1: sequential; 4: asynchronous)")
    ap.add_argument("--n-initial", type=int, default=None,
                    help="autotune's initial-design size (default: the optimiser's); use its own --raw directory")
    ap.add_argument("--versus", type=Path, default=None,
                    help="another raw directory (e.g. the runs before a change): a paired comparison by seed")
    args = ap.parse_args(argv)
    args.raw.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for seed in range(args.seeds):
            for pname in args.problems:
                for method in args.methods:
                    path = args.raw / (f"{pname}-{method}-{seed}.json" if args.q == 1
                                       else f"{pname}-{method}-q{args.q}-{seed}.json")
                    if path.exists():
                        continue
                    if args.stop_at and time.strftime("%H:%M", time.gmtime()) >= args.stop_at:
                        print("stop-at reached", flush=True)
                        break
                    t0 = time.time()
                    r = run_one(pname, method, seed, args.evals, args.q, args.n_initial)
                    r["wall_s"] = time.time() - t0
                    path.write_text(json.dumps(r), encoding="utf-8")
                    print(f"{pname} {method} seed {seed}: hv {r['hv'][-1]:.4g} / {r['max_hv']:.4g} "
                          f"({r['wall_s']:.0f} s)", flush=True)
    ask = None
    ask_file = args.raw / "asktime.json"
    if args.asktime and not args.report_only:
        ask = asktime()
        ask_file.write_text(json.dumps(ask), encoding="utf-8")
    elif ask_file.exists():
        ask = json.loads(ask_file.read_text())
    cmd = "OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.multi " + " ".join(sys.argv[1:] if argv is None else argv)
    print(report(args.raw, args.out, cmd, args.note, ask, args.versus))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
