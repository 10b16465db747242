"""A real study against its ``early_stopping.yaml`` variant: training time saved, at what quality.

Runs ``studies/<study>/study.yaml`` and ``studies/<study>/early_stopping.yaml`` (the same search,
budget and seed; only ASHA differs) one after the other on this machine, each into a fresh
output folder, with real training on the local executor, and reads both records back from
MLflow: trials completed and pruned, the worker time the trials took (the sum of their runs'
durations, what a GPU-hour bill counts), the study's wall time, and the best trial's objective
and held-out test figure. One seed per variant: a measurement of this study, not a benchmark
claim (the table replays in ``bench_early_stopping.py`` give medians over seeds).

    OMP_NUM_THREADS=1 python benchmarks/bench_study_early_stopping.py --study solubility
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

STUDIES = Path(__file__).resolve().parents[1] / "studies"
TEST_METRIC: dict[str, str | None] = {"solubility": "test_rmse", "forecast": "test_mae", "saxs": None}
"""The held-out figure each study reports (the SAXS study has no test split)."""


def run(path: Path, output_dir: Path, max_trials: int | None) -> dict[str, Any]:
    """Run one study file to its budget and summarise its record."""
    from autotune.study import Study
    from autotune.tracking import MlflowTracker
    from autotune.trial import TrialState

    overrides: dict[str, Any] = {"output_dir": str(output_dir)}
    if max_trials is not None:
        overrides["budget"] = {"max_trials": max_trials}
    study = Study.from_file(path, overrides=overrides)
    started = time.perf_counter()
    summary = study.optimize(progress=False)
    wall = time.perf_counter() - started
    tracker = MlflowTracker(study.config.resolved_tracking_uri, study.config.name)
    tracker.find_study()
    trials = tracker.load_trials()
    worker_s = 0.0
    for t in trials:
        info = tracker.client.get_run(t.run_id).info
        worker_s += (info.end_time - info.start_time) / 1000.0
    best = summary.best
    test_metric = TEST_METRIC[path.parent.name]
    return {
        "name": study.config.name,
        "completed": sum(t.state is TrialState.COMPLETED for t in trials),
        "pruned": sum(t.state is TrialState.PRUNED for t in trials),
        "worker_s": worker_s,
        "wall_s": wall,
        "best": None if best is None else best.value,
        "test": None if best is None or test_metric is None else best.metrics.get(test_metric),
        "objective": study.config.objective.metric,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", default="solubility", choices=sorted(TEST_METRIC))
    ap.add_argument("--max-trials", type=int, default=None, help="override both files' budget.max_trials")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out = args.out or Path(f"benchmarks/results/study_early_stopping_{args.study}.md")
    rows = []
    with tempfile.TemporaryDirectory(prefix="autotune-es-") as tmp:
        for variant in ("study", "early_stopping"):
            rows.append(run(STUDIES / args.study / f"{variant}.yaml", Path(tmp) / variant, args.max_trials))
            print(rows[-1], flush=True)
    base, asha = rows
    metric = TEST_METRIC[args.study] or "test figure (none)"

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.4g}"

    lines = [
        f"# The {args.study} study with and without ASHA (real training, one seed)", "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/bench_study_early_stopping.py --study {args.study}"
        + (f" --max-trials {args.max_trials}" if args.max_trials else "") + f"`; machine: {platform.machine()}, "
        f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}. `studies/{args.study}/study.yaml` against "
        f"`studies/{args.study}/early_stopping.yaml`: the same space, strategy, budget and seed; local executor. "
        "Worker time: the sum of the trials' run durations in the MLflow record, each trial's process start and data loading included (early stopping does not shorten those). Wall seconds depend on the machine's load.", "",
        f"| study file | trials completed | pruned | worker time (s) | wall (s) | best {base['objective']} | its {metric} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r, f in zip(rows, ("study.yaml", "early_stopping.yaml")):
        lines.append(f"| {f} | {r['completed']} | {r['pruned']} | {r['worker_s']:.0f} | {r['wall_s']:.0f} | "
                     f"{fmt(r['best'])} | {fmt(r['test'])} |")
    lines += ["", f"Worker time with ASHA: {asha['worker_s'] / base['worker_s']:.2f} of the study without it."]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
