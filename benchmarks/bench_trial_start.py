"""Trial-start overhead: submit -> first ``report()`` and trial end -> result in the driver.

For a trial whose module imports torch (``benchmarks/trial_start/torch_trial.py``), run one at
a time so the figures are per-trial latencies:

* autotune's local executor, cold (a fresh interpreter per trial, the default) and warm
  (``warm_start=True``: forked from a process that imported torch and the trial module once);
* Optuna's in-process ``study.optimize`` (the same function called in the driver's process:
  no process start at all, and no isolation), the lower bound;
* Ray Tune's function trainable with ``reuse_actors=True``, one trial at a time (Ray's own
  start, ``ray.init``, is timed apart and left out). Tune gives no submit time to the outside,
  so every row also has the *turnaround*: from one trial's end (inside the trial) to the next
  trial's first report, the whole cost between two back-to-back trials.

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


Marks = tuple[list[float], list[float], list[float]]


def _turnaround(t_first: list[float], t_end: list[float]) -> list[float]:
    """From each trial's end to the next trial's first report."""
    return [b - a for a, b in zip(t_end, t_first[1:])]


def _local(n: int, warm: bool) -> Marks:
    from autotune.executors import LocalExecutor
    from autotune.trial import TrialSpec

    starts, ends, firsts, t_ends = [], [], [], []
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
                firsts.append(first)
                t_ends.append(result.metrics["t_end"])
        finally:
            ex.shutdown(kill=True)
    return starts, ends, _turnaround(firsts, t_ends)


def _optuna(n: int) -> Marks:
    import optuna

    sys.path.insert(0, str(REPO))
    from benchmarks.trial_start.torch_trial import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    starts, ends, firsts, t_ends = [], [], [], []
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
        firsts.append(marks["t_first_report"])
        t_ends.append(marks["t_end"])
    return starts, ends, _turnaround(firsts, t_ends)


def _ray_tune(n: int) -> Marks:
    """Ray Tune, function trainable, ``reuse_actors=True``, one trial at a time; ``ray.init`` left out."""
    import ray
    from ray import tune

    t0 = time.time()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    print(f"ray.init: {time.time() - t0:.1f} s", flush=True)

    def trainable(config: dict[str, float]) -> None:
        from benchmarks.trial_start.torch_trial import train

        out = train(config, lambda step=None, **m: tune.report({"step": step, **m}))
        tune.report({"t_end": out["t_end"], "objective": out["objective"]})

    try:
        with tempfile.TemporaryDirectory() as root:
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": 1}), param_space={"x": tune.uniform(0, 1)},
                tune_config=tune.TuneConfig(num_samples=n + 1, max_concurrent_trials=1, reuse_actors=True),
                run_config=tune.RunConfig(storage_path=root, verbose=0))
            grid = tuner.fit()
            rows = sorted((float(r.metrics_dataframe["t_first_report"].dropna().iloc[0]),
                           float(r.metrics_dataframe["t_end"].dropna().iloc[0])) for r in grid)
    finally:
        ray.shutdown()
    firsts, t_ends = [a for a, _ in rows][1:], [b for _, b in rows][1:]  # the first trial starts the actor
    return [], [], _turnaround(firsts, t_ends)


def _q(values: list[float]) -> str:
    if not values:
        return "n/a"
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
    rows = [("autotune local, cold (warm_start: false)", *_local(args.trials, warm=False)),
            ("autotune local, warm (warm_start: true, the study default)", *_local(args.trials, warm=True)),
            ("optuna in-process optimize", *_optuna(args.trials)),
            ("ray tune, reuse_actors=True", *_ray_tune(args.trials))]
    lines = [
        "# Trial-start overhead", "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/bench_trial_start.py --trials {args.trials}`; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}; `import torch` alone: {float(import_torch or 'nan'):.2f} s. "
        f"Run in {time.time() - t0:.0f} s.", "",
        "One trial at a time; the trial's module imports torch. Median [IQR] over "
        f"{args.trials} trials (the warm executor's first trial, which starts the warm process, is left out "
        "and printed by the script).", "",
        "| how trials run | submit -> first report (s) | trial end -> result in the driver (s) "
        "| turnaround: trial end -> next trial's first report (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {_q(s)} | {_q(e)} | {_q(t)} |" for name, s, e, t in rows]
    lines += ["", "Ray Tune gives no submit time to the outside (n/a): compare the turnaround column. "
              "Its `ray.init` (printed by the script) is left out, as the warm executor's first trial is."]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
