"""``ask()`` time against the number of observations n, split into GP fit and acquisition.

Hartmann-6 (d = 6), the default single-objective strategy (``ei``), float64, on the CPU::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_ask_scaling.py --n 1000 2000 5000 10000 --repeats 3

For each n: a fresh ``Optimizer`` is told n random points, then asked for one point: a *cold*
ask (the GP's hyperparameters fitted from scratch, the worst case: a study resumed, or the
first ask at that size); then that point is told and a *warm* ask follows (a running study
between two refits: the GP conditioned on the new point with the last hyperparameters).
``fit`` is the time spent in ``GPFitter.fit``, ``acq`` the rest of the ask (building the data,
the acquisition optimisation, the annotation). Each repeat runs in a fresh process with a
wall-clock cap (``--max-s``); a run over it is reported as ``> cap``. Median of ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(n: int, seed: int) -> dict[str, float]:
    """One cold and one warm ask at n observations; seconds by part."""
    import warnings

    import torch
    from botorch.test_functions import Hartmann

    from autotune import Float, Optimizer, SearchSpace

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    warnings.simplefilter("ignore")
    h = Hartmann(dim=6)
    space = SearchSpace([Float(f"x{i}", low=0.0, high=1.0) for i in range(6)])
    data = space.sample(n, "random", seed=seed)
    X = torch.tensor([space.encode(p) for p in data], dtype=torch.float64)
    values = h(X).tolist()
    opt = Optimizer(space, seed=seed, n_initial=0)
    for p, v in zip(data, values):
        opt.add(p, v)
    fit_s = [0.0]
    real_fit = opt.fitter.fit

    def timed_fit(*args, **kwargs):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return real_fit(*args, **kwargs)
        finally:
            fit_s[0] += time.perf_counter() - t0

    opt.fitter.fit = timed_fit  # type: ignore[method-assign]
    out: dict[str, float] = {}
    for kind in ("cold", "warm"):
        fit_s[0] = 0.0
        t0 = time.perf_counter()
        (s,) = opt.ask(1)
        total = time.perf_counter() - t0
        out[f"{kind}_total"], out[f"{kind}_fit"], out[f"{kind}_acq"] = total, fit_s[0], total - fit_s[0]
        out[f"{kind}_outcome"] = opt.fitter.last_outcome.get("objective", "")  # type: ignore[assignment]
        x = torch.tensor([space.encode(s.params)], dtype=torch.float64)
        opt.tell(s, float(h(x)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-s", type=float, default=900.0, help="wall-clock cap of one run (cold + warm ask)")
    ap.add_argument("--label", default="", help="a name for this code version in the output")
    ap.add_argument("--child", type=int, nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help="append the Markdown table to this file")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(one_run(*args.child)))
        return 0

    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    rows = []
    for n in args.n:
        runs: list[dict[str, float] | None] = []
        for r in range(args.repeats):
            cmd = [sys.executable, __file__, "--child", str(n), str(r)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.max_s, env=env, check=True)
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            except subprocess.TimeoutExpired:
                runs.append(None)
            res = runs[-1]
            shown = "over the cap" if res is None else " ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in res.items())
            print(f"n={n} run {r}: {shown}", flush=True)
            if res is None:
                break  # the other repeats would be over the cap too
        done = [x for x in runs if x is not None]

        def med(key: str, done: list[dict[str, float]] = done, n_runs: int = len(runs)) -> str:
            if len(done) < n_runs or not done:  # a run hit the cap: only the whole is bounded
                return f"> {args.max_s:.0f} (cold + warm)" if key == "cold_total" else "n/a"
            return f"{statistics.median(float(x[key]) for x in done):.2f}"

        outcome = done[0]["warm_outcome"] if done else ""
        rows.append(f"| {args.label} | {n} | {len(runs)} | {med('cold_total')} | {med('cold_fit')} | {med('cold_acq')} "
                    f"| {med('warm_total')} | {med('warm_fit')} | {med('warm_acq')} | {outcome} |")
    load = os.getloadavg()
    lines = [
        f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} nice -n 10 python "
        f"benchmarks/bench_ask_scaling.py {' '.join(sys.argv[1:])}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other work (load average after: "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}), Python {platform.python_version()}.",
        "",
        "| code | n | runs | cold ask (s) | cold fit (s) | cold acq (s) | warm ask (s) | warm fit (s) | warm acq (s) "
        "| warm GP |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
