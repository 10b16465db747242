"""Driver decision time per report of the early-stopping rules, with many trials running at once.

The driver hands every report it reads to :class:`autotune.study.EarlyStopper` (``feed``), which
asks the rule whether the trial stops and, if so, writes the trial's stop file. This times that
call alone, per report, for ``--workers`` trials running at once (issue 15's goal: under 10 ms
per report at 64 workers)::

    python benchmarks/bench_stopping_latency.py --workers 64 --trials 2000

A stream of synthetic learning curves (each trial's loss ``final + scale / step`` plus noise,
``max_step`` steps) is interleaved at random across the running trials; a stopped or finished
trial is replaced by a new one until ``--trials`` have started. Not timed here: how soon the
driver reads a report after it is written (the study loop looks every ``POLL_S`` = 0.5 s, or
at once when a trial ends).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace


def run(rule: str, workers: int, trials: int, max_step: int, seed: int) -> dict[str, float]:
    """Seconds per ``feed`` call over one stream; returns summary figures."""
    from autotune.study import StudyConfig
    from autotune.study._stopping import EarlyStopper

    es = {"rule": rule, "max_step": max_step, "min_step": 1, "eta": 3}
    if rule == "median":
        es = {"rule": rule, "metric": "loss", "min_trials": 5}
    cfg = StudyConfig.from_dict({"name": "latency", "space": {"parameters": {"x": {"type": "float", "low": 0, "high": 1}}},
                                 "objective": {"metric": "loss", "direction": "minimize"},
                                 "trial": {"entry_point": "m:f"}, "budget": {"max_trials": trials},
                                 "early_stopping": es})
    stopper = EarlyStopper(cfg)
    rng = random.Random(seed)
    times: list[float] = []
    stopped = 0
    with tempfile.TemporaryDirectory() as root:
        def new(tid: int) -> dict[str, object]:
            job = SimpleNamespace(trial_id=tid, spec=SimpleNamespace(workdir=str(Path(root) / str(tid))),
                                  cancel_is_graceful=False)
            return {"job": job, "step": 0, "final": rng.random(), "scale": rng.uniform(0.5, 2.0)}

        started = 0
        running: list[dict[str, object]] = []
        while started < min(workers, trials):
            running.append(new(started))
            started += 1
        while running:
            i = rng.randrange(len(running))
            t = running[i]
            t["step"] = step = int(t["step"]) + 1  # type: ignore[call-overload]
            loss = float(t["final"]) + float(t["scale"]) / step + rng.gauss(0, 0.02)  # type: ignore[arg-type]
            t0 = time.perf_counter()
            decision = stopper.feed(t["job"], [{"step": step, "loss": loss}])  # type: ignore[arg-type]
            times.append(time.perf_counter() - t0)
            if decision is not None or step >= max_step:
                stopped += decision is not None
                if decision is None:
                    stopper.rule.completed(t["job"].trial_id)  # type: ignore[attr-defined]
                stopper.stops.pop(t["job"].trial_id, None)  # type: ignore[attr-defined]
                running.pop(i)
                if started < trials:
                    running.append(new(started))
                    started += 1
    ms = sorted(1000 * x for x in times)
    return {"reports": len(ms), "stopped": stopped, "median_ms": statistics.median(ms),
            "p99_ms": ms[int(0.99 * (len(ms) - 1))], "max_ms": ms[-1]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[8, 64, 256])
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--max-step", type=int, default=27)
    ap.add_argument("--rules", nargs="+", default=["median", "asha", "hyperband"])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    lines = ["| rule | workers | trials | reports | stopped | median ms / report | p99 ms | max ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for rule in args.rules:
        for w in args.workers:
            r = run(rule, w, args.trials, args.max_step, seed=0)
            lines.append(f"| {rule} | {w} | {args.trials} | {r['reports']:.0f} | {r['stopped']:.0f} | "
                         f"{r['median_ms']:.3f} | {r['p99_ms']:.3f} | {r['max_ms']:.2f} |")
            print(lines[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
