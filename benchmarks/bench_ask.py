"""Median ``ask()`` time per strategy on Hartmann-6 at n observations, q = 1 and q = 4.

Run on one CPU thread, as the issue asks::

    OMP_NUM_THREADS=1 python benchmarks/bench_ask.py --n 50 200 1000 --q 1 4

For each (strategy, n, q): n Sobol observations of Hartmann-6 are added, one warm-up ask
and tell is made (a running study always has warm-started hyperparameters), then
``--repeats`` timed asks, each followed by telling its points. The median is reported, and
the figures are written as Markdown to ``benchmarks/results/ask_speed.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[50, 200, 1000])
    ap.add_argument("--q", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--strategies", nargs="+", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ask_speed.md"))
    args = ap.parse_args(argv)

    import torch
    from botorch.test_functions import Hartmann

    import autotune
    from autotune import Float, Optimizer, SearchSpace, strategy_names

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    h = Hartmann(dim=6)
    space = SearchSpace([Float(f"x{i}", low=0.0, high=1.0) for i in range(6)])
    names = args.strategies or strategy_names()

    def f(p: dict) -> float:
        return float(h(torch.tensor([[p[f"x{i}"] for i in range(6)]], dtype=torch.float64)))

    rows = []
    for n in args.n:
        data = space.sample(n, "random", seed=n)
        for q in args.q:
            for name in names:
                opt = Optimizer(space, name, seed=0, n_initial=0)
                for p in data:
                    opt.add(p, f(p))
                times = []
                for r in range(args.repeats + 1):
                    t0 = time.perf_counter()
                    batch = opt.ask(q)
                    dt = time.perf_counter() - t0
                    for s in batch:
                        opt.tell(s, f(s.params))
                    if r:  # the first ask is the warm-up
                        times.append(dt)
                med = statistics.median(times)
                rows.append((name, n, q, med))
                print(f"{name:20s} n={n:5d} q={q} median ask {med:7.3f} s", flush=True)

    lines = [
        "# `ask()` time on Hartmann-6 (d = 6), one CPU thread",
        "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/bench_ask.py {' '.join(sys.argv[1:])}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, autotune {autotune.__version__}. Median of {args.repeats} warm asks "
        "(each after one warm-up ask; each ask refits the GP from the previous hyperparameters).",
        "",
        "| strategy | n | q | median ask (s) |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {s} | {n} | {q} | {t:.3f} |" for s, n, q, t in rows]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
