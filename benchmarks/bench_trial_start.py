"""Trial-start overhead: submit -> first ``report()`` and trial end -> result in the driver.

For a trial whose module imports torch (``benchmarks/trial_start/torch_trial.py``), run one at
a time so the figures are per-trial latencies:

* autotune's local executor, cold (a fresh interpreter per trial, the default) and warm
  (``warm_start=True``: forked from a process that imported torch and the trial module once);
* Optuna's in-process ``study.optimize`` (the same function called in the driver's process:
  no process start at all, and no isolation), the lower bound.

Ray Tune with ``reuse_actors=True`` is not measured here (Ray's own start takes tens of seconds
on this 2-core machine and its actors are not restarted per trial); see the report's note.

    OMP_NUM_THREADS=1 python benchmarks/bench_trial_start.py --trials 20 --out benchmarks/results/trial_start.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENTRY = "benchmarks.trial_start.torch_trial:train"


def _local(n: int, warm: bool) -> tuple[list[float], list[float]]:
    from autotune.executors import LocalExecutor
    from autotune.trial import TrialSpec

    starts, ends = [], []
    with tempfile.TemporaryDirectory() as root:
        ex = LocalExecutor(1, root_dir=root, env={"PYTHONPATH": str(REPO)}, warm_start=warm)
        try:
            for i in range(n + 1):  # trial 0 starts the warm process: reported apart
                t0 = time.time()
                job = ex.submit(TrialSpec(i, {"x": 0.0}, ENTRY))
                result = job.result(timeout_s=300)
                t_done = time.time()
                first = next(r["t_first_report"] for r in result.history if "t_first_report" in r)
                if i == 0:
                    print(f"{'warm' if warm else 'cold'} first trial: {first - t0:.2f} s to first report", flush=True)
                    continue
                starts.append(first - t0)
                ends.append(t_done - result.metrics["t_end"])
        finally:
            ex.shutdown(kill=True)
    return starts, ends


def _optuna(n: int) -> tuple[list[float], list[float]]:
    import optuna

    sys.path.insert(0, str(REPO))
    from benchmarks.trial_start.torch_trial import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    starts, ends = [], []
    marks: dict[str, float] = {}

    def objective(trial: optuna.Trial) -> float:
        out = train({"x": trial.suggest_float("x", 0, 1)}, lambda step=None, **m: marks.update(m))
        marks["t_end"] = out["t_end"]
        return out["objective"]

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(n):
        t0 = time.time()
        study.optimize(objective, n_trials=1)
        t_done = time.time()
        starts.append(marks["t_first_report"] - t0)
        ends.append(t_done - marks["t_end"])
    return starts, ends


def _q(values: list[float]) -> str:
    v = sorted(values)
    return f"{statistics.median(v):.3f} [{v[len(v) // 4]:.3f}, {v[(3 * len(v)) // 4]:.3f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "trial_start.md")
    args = ap.parse_args(argv)
    t0 = time.time()
    import_torch = os.popen(f"{sys.executable} -c 'import time; t=time.time(); import torch; "
                            "print(time.time()-t)'").read().strip()
    rows = [("autotune local, cold (default)", *_local(args.trials, warm=False)),
            ("autotune local, warm_start", *_local(args.trials, warm=True)),
            ("optuna in-process optimize", *_optuna(args.trials))]
    lines = [
        "# Trial-start overhead", "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/bench_trial_start.py --trials {args.trials}`; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}; `import torch` alone: {float(import_torch or 'nan'):.2f} s. "
        f"Run in {time.time() - t0:.0f} s.", "",
        "One trial at a time; the trial's module imports torch. Median [IQR] over "
        f"{args.trials} trials (the warm executor's first trial, which starts the warm process, is left out "
        "and printed by the script).", "",
        "| how trials run | submit -> first report (s) | trial end -> result in the driver (s) |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {_q(s)} | {_q(e)} |" for name, s, e in rows]
    lines += ["", "Ray Tune (`reuse_actors=True`) is not in this table: not run here (its cluster start "
              "dominates on this machine); its reused actors keep one process per worker, like Optuna's "
              "in-process trials, without a fresh process per trial."]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
