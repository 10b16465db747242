"""Median ``ask()`` time per strategy on Hartmann-6 at n observations, q = 1 and q = 4.

Run on one CPU thread, as the issue asks::

    OMP_NUM_THREADS=1 python benchmarks/bench_ask.py --n 50 200 1000 --q 1 4

For each (strategy, n, q): n random observations of Hartmann-6 are added, one warm-up ask
and tell is made (a running study always has warm-started hyperparameters), then timed
asks, each followed by telling its points, over one refit period of the GP (so the mean
includes the asks that re-optimise the hyperparameters). Median and mean, wall and CPU
seconds are reported, and written as Markdown to ``benchmarks/results/ask_speed.md``.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[50, 200, 1000])
    ap.add_argument("--q", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--strategies", nargs="+", default=None)
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed asks per row (default: one refit period, 3 to 21)")
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
                repeats = args.repeats or min(max(3, math.ceil(opt.fitter.refit_fraction * n / q) + 1), 21)
                times, cpu, refits = [], [], 0
                for r in range(repeats + 1):
                    t0, c0 = time.perf_counter(), time.process_time()
                    batch = opt.ask(q)
                    dt, dc = time.perf_counter() - t0, time.process_time() - c0
                    for s in batch:
                        opt.tell(s, f(s.params))
                    if r:  # the first ask is the warm-up
                        times.append(dt)
                        cpu.append(dc)
                        refits += opt.fitter.last_outcome.get("objective") == "fit"
                row = (name, n, q, statistics.median(times), statistics.mean(times), statistics.median(cpu),
                       statistics.mean(cpu), refits, repeats)
                rows.append(row)
                print(f"{name:20s} n={n:5d} q={q} median ask {row[3]:7.3f} s, mean {row[4]:7.3f} s, "
                      f"CPU median {row[5]:7.3f} s, mean {row[6]:7.3f} s ({refits}/{repeats} refits)", flush=True)

    lines = [
        "# `ask()` time on Hartmann-6 (d = 6), one CPU thread",
        "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/bench_ask.py {' '.join(sys.argv[1:])}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, autotune {autotune.__version__}, git {_git_commit()}. Each row: one "
        "warm-up ask, then enough timed asks (each followed by its tell) to span one refit period of "
        "the GP's hyperparameters (`GPFitter.refit_fraction`: re-optimised once the data grow by 2 %, "
        "conditioned on the new points in between), so the mean includes the refits. Wall seconds "
        "depend on the machine's load; CPU seconds (`time.process_time`) much less.",
        "",
        "| strategy | n | q | median ask (s) | mean ask (s) | median CPU (s) | mean CPU (s) | refits / asks |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {s} | {n} | {q} | {t:.3f} | {m:.3f} | {c:.3f} | {cm:.3f} | {k}/{r} |"
              for s, n, q, t, m, c, cm, k, r in rows]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "log", "-1", "--format=%h"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
