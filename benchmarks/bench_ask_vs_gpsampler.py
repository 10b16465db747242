"""``ask()`` time at small n, autotune's default against Optuna's ``GPSampler``, side by side.

Issue 19's check: at the end of a 60-evaluation run, is autotune's ask slower than Optuna's
GPSampler? Both optimisers run the same problems one after the other in one process (the
same machine load), sequentially, 60 evaluations each; the figure is the CPU time
(``time.process_time``) and wall time of each of the last ``--last`` asks (n = 60 - last to
59 observations), pooled over ``--seeds`` runs, median and interquartile range per problem::

    OMP_NUM_THREADS=1 python benchmarks/bench_ask_vs_gpsampler.py --seeds 0 1 2 --out benchmarks/results/ask_vs_gpsampler.md

Problems: Branin, Hartmann-3, Rosenbrock-4, Hartmann-6, Ackley-10, Levy-6 and
Styblinski-Tang-8 on BoTorch's boxes, and a mixed space (Hartmann-6 with one integer and one
categorical input).
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

PROBLEMS = ["branin2", "hartmann3", "rosenbrock4", "hartmann6", "ackley10", "levy6", "styblinski_tang8",
            "hartmann6_mixed"]
CAT = {"a": 0.1, "b": 0.5, "c": 0.9}


def _problem(name: str) -> tuple[dict[str, Any], Any]:
    """``({parameter: (low, high) | list of choices | ("int", low, high)}, f(params) -> float)``."""
    import torch
    from botorch.test_functions import Ackley, Branin, Hartmann, Levy, Rosenbrock, StyblinskiTang

    if name == "hartmann6_mixed":
        h = Hartmann(dim=6)
        spec: dict[str, Any] = {f"x{i}": (0.0, 1.0) for i in range(4)}
        spec["n"] = ("int", 0, 10)
        spec["c"] = list(CAT)

        def mixed(p: dict[str, Any]) -> float:
            x = [p[f"x{i}"] for i in range(4)] + [p["n"] / 10, CAT[p["c"]]]
            return float(h(torch.tensor([x], dtype=torch.float64)))

        return spec, mixed
    fn = {"hartmann6": lambda: Hartmann(dim=6), "ackley10": lambda: Ackley(dim=10), "levy6": lambda: Levy(dim=6),
          "styblinski_tang8": lambda: StyblinskiTang(dim=8), "branin2": Branin, "hartmann3": lambda: Hartmann(dim=3),
          "rosenbrock4": lambda: Rosenbrock(dim=4)}[name]()
    lo, hi = fn.bounds[0].tolist(), fn.bounds[1].tolist()
    spec = {f"x{i}": (a, b) for i, (a, b) in enumerate(zip(lo, hi))}

    def plain(p: dict[str, Any]) -> float:
        return float(fn(torch.tensor([[p[k] for k in spec]], dtype=torch.float64)))

    return spec, plain


def _autotune(spec: dict[str, Any], f: Any, evals: int, seed: int) -> list[tuple[float, float]]:
    from autotune import Categorical, Float, Int, Optimizer, SearchSpace

    params = [Categorical(k, tuple(v)) if isinstance(v, list) else Int(k, v[1], v[2]) if v[0] == "int"
              else Float(k, v[0], v[1]) for k, v in spec.items()]
    opt = Optimizer(SearchSpace(params), seed=seed)
    out = []
    for _ in range(evals):
        c, t = time.process_time(), time.perf_counter()
        (s,) = opt.ask(1)
        out.append((time.process_time() - c, time.perf_counter() - t))
        opt.tell(s, f(s.params))
    return out


def _gpsampler(spec: dict[str, Any], f: Any, evals: int, seed: int) -> list[tuple[float, float]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=seed))
    out = []
    for _ in range(evals):
        c, t = time.process_time(), time.perf_counter()
        trial = study.ask()
        p = {k: trial.suggest_categorical(k, v) if isinstance(v, list) else trial.suggest_int(k, v[1], v[2])
             if v[0] == "int" else trial.suggest_float(k, v[0], v[1]) for k, v in spec.items()}
        out.append((time.process_time() - c, time.perf_counter() - t))
        study.tell(trial, f(p))
    return out


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", nargs="+", default=PROBLEMS, choices=PROBLEMS)
    ap.add_argument("--evals", type=int, default=60)
    ap.add_argument("--last", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    lines = ["| problem | d | autotune CPU s [IQR] | GPSampler CPU s [IQR] | ratio of medians | autotune wall s "
             "| GPSampler wall s |", "|---|---:|---:|---:|---:|---:|---:|"]
    ratios = []
    for name in args.problems:
        spec, f = _problem(name)
        a: list[tuple[float, float]] = []
        g: list[tuple[float, float]] = []
        for seed in args.seeds:  # the two optimisers alternate, so both see the same machine load
            a += _autotune(spec, f, args.evals, seed)[-args.last:]
            g += _gpsampler(spec, f, args.evals, seed)[-args.last:]
        (a1, ac, a3), (g1, gc, g3) = _quartiles([x for x, _ in a]), _quartiles([x for x, _ in g])
        aw, gw = statistics.median(y for _, y in a), statistics.median(y for _, y in g)
        ratios.append(ac / gc if gc else math.nan)
        lines.append(f"| {name} | {len(spec)} | {ac:.3f} [{a1:.3f}, {a3:.3f}] | {gc:.3f} [{g1:.3f}, {g3:.3f}] "
                     f"| {ratios[-1]:.2f} | {aw:.3f} | {gw:.3f} |")
        print(lines[-1], flush=True)
    seeds = " ".join(str(s) for s in args.seeds)
    head = [f"Command: `OMP_NUM_THREADS=1 python benchmarks/bench_ask_vs_gpsampler.py --evals {args.evals} "
            f"--last {args.last} --seeds {seeds}`; {platform.machine()}, Python {platform.python_version()}. "
            f"Each row: the last {args.last} asks of a {args.evals}-evaluation run per seed ({len(args.seeds)} "
            f"seeds, {len(args.seeds) * args.last} asks), median and interquartile range of CPU seconds; ratio: "
            f"autotune's median over GPSampler's (median ratio over problems {statistics.median(ratios):.2f}, "
            f"range {min(ratios):.2f}-{max(ratios):.2f}).", ""]
    if args.out:
        args.out.write_text("\n".join(head + lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
