"""Median ``ask()`` time per strategy at small dimension (d <= 3) and n <= 200 observations, q = 1.

The steering case of issue 18 (a 2-D map, < 100 points, one point per ask): measured, not
optimised. Run on one CPU thread::

    OMP_NUM_THREADS=1 python benchmarks/bench_ask_small.py --n 20 50 100 200

Problems: Branin (d = 2) and Hartmann-3 (d = 3) on the unit box. For each (problem, n,
strategy): n random observations are added, one warm-up ask and tell is made (a running study
has warm-started hyperparameters), then ``--repeats`` timed asks, each followed by its tell.
Besides the plain strategies: ``max_variance`` with ``cost: known`` (a motor-distance cost),
``ei``/``max_variance`` over a candidate set of 400 points (``ask(candidates=...)``), ``+cold``:
a fresh optimiser taught the same data for each ask (no warm-started hyperparameters, as
``RemoteStudy`` rebuilds its optimiser from the record at every call), and
``max_variance+remote``: ``RemoteStudy.ask`` itself on a SQLite MLflow store (the record read,
the optimiser rebuilt and the trial run opened; ``tell`` not timed).
Wall and CPU (``time.process_time``) seconds; results as Markdown in
``benchmarks/results/ask_speed_small.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

VARIANTS = ["ei", "ucb", "max_variance", "max_variance+cost", "thompson", "qei", "kmeans", "local_penalization",
            "ei+candidates", "max_variance+candidates", "ei+cold", "max_variance+cold", "max_variance+remote"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[20, 50, 100, 200])
    ap.add_argument("--problems", nargs="+", default=["branin2", "hartmann3"], choices=["branin2", "hartmann3"])
    ap.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    ap.add_argument("--repeats", type=int, default=5, help="timed asks per row")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ask_speed_small.md"))
    args = ap.parse_args(argv)

    import torch
    from botorch.test_functions import Branin, Hartmann

    import autotune
    from autotune import Float, Optimizer, SearchSpace
    from autotune.strategies import CostState, KnownCost

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    problems: dict[str, tuple[int, Any]] = {"branin2": (2, Branin(negate=False)), "hartmann3": (3, Hartmann(dim=3))}

    def motor_s(p: dict[str, torch.Tensor], state: CostState) -> torch.Tensor:
        here = state.last or {name: 0.0 for name in p}
        return 1.0 + sum((p[k] - here[k]) ** 2 for k in p).clamp_min(1e-12).sqrt() / 0.05  # type: ignore[union-attr]

    rows = []
    for pname in args.problems:
        d, fn = problems[pname]
        space = SearchSpace([Float(f"x{i}", low=0.0, high=1.0) for i in range(d)])
        lo, hi = fn.bounds[0], fn.bounds[1]

        def f(p: dict[str, Any], fn: Any = fn, lo: Any = lo, hi: Any = hi, d: int = d) -> float:
            u = torch.tensor([[p[f"x{i}"] for i in range(d)]], dtype=torch.float64)
            return float(fn(lo + u * (hi - lo)))

        candidates = space.sample(400, "random", seed=99)
        for n in args.n:
            data = space.sample(n, "random", seed=n)
            for variant in args.variants:
                name, _, extra = variant.partition("+")
                options = {"cost": "known"} if extra == "cost" else {}

                def fresh(name: str = name, options: dict[str, Any] = options, extra: str = extra) -> Any:
                    return Optimizer(space, name, seed=0, n_initial=0, strategy_options=options,
                                     known_cost=KnownCost(motor_s, space) if extra == "cost" else None)

                if extra == "remote":
                    remote = _remote_study(space, name, data, f)
                opt = fresh()
                for p in data:
                    opt.add(p, f(p))
                kw = {"candidates": candidates} if extra == "candidates" else {}
                walls, cpus = [], []
                for k in range(args.repeats + 1):
                    if extra == "cold":  # as RemoteStudy: a new optimiser taught the record at each call
                        told = opt.observations
                        opt = fresh()
                        for o in told:
                            opt.add(o.params, o.value)
                    w0, c0 = time.perf_counter(), time.process_time()
                    if extra == "remote":
                        tid, params = remote.ask()
                    else:
                        (s,) = opt.ask(1, **kw)
                    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                    if extra == "remote":
                        remote.tell(tid, f(params))
                    else:
                        opt.tell(s, f(s.params))
                    if k:  # the first is the warm-up
                        walls.append(wall)
                        cpus.append(cpu)
                rows.append((pname, d, n, variant, statistics.median(walls), statistics.mean(walls),
                             statistics.median(cpus), max(walls)))
                print(f"{pname} n={n:4d} {variant:26s} median {rows[-1][4]:.3f} s  mean {rows[-1][5]:.3f} s  "
                      f"CPU {rows[-1][6]:.3f} s  max {rows[-1][7]:.3f} s", flush=True)

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = "?"
    lines = [
        "# `ask()` time at small dimension (d <= 3), one CPU thread, q = 1",
        "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/bench_ask_small.py --n {' '.join(map(str, args.n))} "
        f"--repeats {args.repeats}`",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"autotune {autotune.__version__}, git {commit}. Each row: {args.repeats} timed asks after one warm-up ask, "
        "each followed by its tell (hyperparameters warm-started, re-fitted on the GP's refit schedule). "
        "`+cost`: `cost: known` with a motor-distance cost from the last asked point; `+candidates`: "
        "`ask(candidates=...)` over 400 random points. Wall seconds depend on the machine's load.",
        "",
        "| problem | d | n | strategy | median ask (s) | mean ask (s) | median CPU (s) | max (s) |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
        *(f"| {p} | {d} | {n} | {v} | {m:.3f} | {mean:.3f} | {c:.3f} | {mx:.3f} |"
          for p, d, n, v, m, mean, c, mx in rows),
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")
    print(out)
    return 0


def _remote_study(space: Any, strategy: str, data: list[dict[str, Any]], f: Any) -> Any:
    """A :class:`~autotune.study.RemoteStudy` on a fresh SQLite store in a temporary folder, taught ``data``."""
    import tempfile

    from autotune.study import RemoteStudy, StudyConfig

    folder = Path(tempfile.mkdtemp(prefix="bench_ask_small_"))
    config = StudyConfig.from_dict({
        "name": "bench", "space": space.to_dict(), "objective": {"metric": "y", "direction": "minimize"},
        "strategy": strategy, "n_initial": 0, "budget": {"max_trials": 100_000},
        "trial": {"entry_point": "instrument:measure_trial"}, "output_dir": str(folder),
    })
    study = RemoteStudy(config, plots_every=0)
    for p in data:  # through the record, as an instrument would have told them
        tid, _ = study.ask(candidates=[p])
        study.tell(tid, f(p))
    return study


if __name__ == "__main__":
    raise SystemExit(main())
