"""What per-epoch metric logging to MLflow costs a real training trial, side by side in one run.

Part 1 (end to end): a real :class:`~autotune.study.Study` (local executor: one fresh Python
process per trial, real MLflow SQLite store in a temporary folder) trains the quadratic
example's MLP (``studies/quadratic/train.py`` data and model, ``autotune.training``) for a
fixed number of epochs, one trial at a time, in three variants with the same Sobol
parameters (trial ``i`` is the same network in every variant):

* ``silent``: no ``report`` call at all (``train_model(report=None)``);
* ``reported``: ``report(step=..., **metrics)`` every epoch (the worker writes a JSON line),
  the driver reads the records but does not send them to MLflow (``log_reports`` is a no-op);
* ``logged``: the real path: the driver sends each batch of new records to MLflow.

The variants are interleaved (the order rotates each repeat) so the machine's load drifts
over all of them alike. Overheads are paired per trial (same network, same repeat) and
quoted as the median ratio.

Where logging happens: the worker only appends JSON lines to ``reports.jsonl``
(``autotune/report.py``, standard library); the driver reads the new lines every poll (0.5 s)
and writes them with one ``MlflowClient.log_batch`` per trial per poll
(``MlflowTracker.log_reports``). So the MLflow cost is the driver's time, running beside the
trial's process, and the trial itself pays only the JSON line.

Part 2 (raw cost per record): the worker's ``Reporter`` call (JSON line, flushed), in memory
and to a file, and the driver's ``MlflowTracker.log_reports`` per call for 1 and 10 records.

Example::

    OMP_NUM_THREADS=1 MLFLOW_DISABLE_TELEMETRY=true python benchmarks/bench_mlflow_overhead.py \\
        --trials 4 --repeats 3 --epochs 20 --out benchmarks/results/mlflow_overhead.md
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUADRATIC = HERE.parent / "studies" / "quadratic"
VARIANTS = ("silent", "reported", "logged")
RECORD = {"train_loss": 0.123456, "val_loss": 0.234567, "val_rmse": 0.484321, "lr": 0.001}


# -- the trials (run in the worker processes) -----------------------------------------------------


def _train(params: Mapping[str, Any], report: Callable[..., object] | None, epochs: int, n_train: int,
           seed: int = 0) -> dict[str, float]:
    """The quadratic example's training (same data and model), a fixed number of epochs."""
    from train import N_FEATURES, make_data  # studies/quadratic/train.py

    from autotune.training import build_mlp, seed_everything, train_model

    seed_everything(seed)
    train_data = make_data(n_train, task_seed=0, sample_seed=seed + 1)
    val_data = make_data(n_train // 4, task_seed=0, sample_seed=seed + 2)
    model = build_mlp(params, in_features=N_FEATURES, out_features=1)
    return train_model(model, train_data, val_data, params, report=report, max_epochs=epochs, patience=10**6)


def train_reported(params: Mapping[str, Any], report: Callable[..., object], epochs: int = 20,
                   n_train: int = 4096) -> dict[str, float]:
    """Entry point of the ``reported`` and ``logged`` variants: one report per epoch."""
    return _train(params, report, epochs, n_train)


def train_silent(params: Mapping[str, Any], report: Callable[..., object], epochs: int = 20,
                 n_train: int = 4096) -> dict[str, float]:
    """Entry point of the ``silent`` variant: no report at all."""
    return _train(params, None, epochs, n_train)


# -- the driver side ------------------------------------------------------------------------------


@contextlib.contextmanager
def _patched(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


def _timed(fn: Callable[..., Any], sink: list[float]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - t0)

    return timed


def run_variant(variant: str, trials: int, epochs: int, n_train: int, tmp: Path, rep: int) -> dict[str, Any]:
    """One study of ``trials`` trials in one variant; per-trial times and the driver's logging time."""
    from autotune.executors import Job
    from autotune.study import Study, StudyConfig
    from autotune.tracking import MlflowTracker

    config = StudyConfig.from_dict({
        "name": f"overhead-{variant}-{rep}",
        "space": {"parameters": {
            "n_layers": {"type": "fixed", "value": 2},
            "width_1": {"type": "fixed", "value": 128},
            "batch_size": {"type": "fixed", "value": 64},
            "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        }},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "strategy": {"name": "sobol"},
        "budget": {"max_trials": trials},
        "parallelism": {"workers": 1, "cpus_per_trial": 1},
        "executor": {"name": "local"},
        "trial": {"entry_point": f"bench_mlflow_overhead:{'train_silent' if variant == 'silent' else 'train_reported'}",
                  "fixed_args": {"epochs": epochs, "n_train": n_train}},
        "seed": 0,
        "output_dir": str(tmp / f"{variant}-{rep}"),
    })
    log_s: list[float] = []
    read_s: list[float] = []
    log_reports = MlflowTracker.log_reports
    logging_fn = _timed(log_reports, log_s) if variant == "logged" else _timed(lambda *a, **k: None, log_s)
    with _patched(MlflowTracker, "log_reports", logging_fn), \
            _patched(Job, "new_reports", _timed(Job.new_reports, read_s)):
        t0 = time.perf_counter()
        summary = Study(config).optimize(progress=False)
        wall = time.perf_counter() - t0
    tracker = MlflowTracker(config.resolved_tracking_uri, config.name)
    tracker.find_study()
    loaded = sorted(tracker.load_trials(), key=lambda t: t.trial_id)
    if summary.counts.get("completed") != trials:
        raise RuntimeError(f"{variant}: not every trial completed: {summary.counts}")
    n_logged = sum(len(tracker.client.get_metric_history(t.run_id, "val_loss")) for t in loaded)
    return {
        "variant": variant, "rep": rep, "wall_s": wall,
        "train_s": [t.metrics["train_seconds"] for t in loaded],
        "trial_s": [float(t.tags["autotune.duration_s"]) for t in loaded],
        "log_calls": log_s, "read_calls": read_s, "n_logged_val_loss": n_logged,
    }


def raw_costs(tmp: Path, n: int) -> dict[str, float]:
    """Median seconds per call of the reporting path's pieces."""
    from autotune.report import Reporter
    from autotune.tracking import MlflowTracker, ensure_store
    from autotune.trial import TrialResult, TrialState

    out: dict[str, float] = {}

    def per_call(fn: Callable[[int], object], k: int) -> float:
        times = []
        for i in range(k):
            t0 = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    out["noop"] = per_call(lambda i: None, n)
    memory = Reporter(None)
    out["reporter_memory"] = per_call(lambda i: memory(step=i, **RECORD), n)
    channel = Reporter(tmp / "reports.jsonl")
    out["reporter_file"] = per_call(lambda i: channel(step=i, **RECORD), n)
    channel.close()
    uri = f"sqlite:///{tmp / 'raw.db'}"
    ensure_store(uri)
    tracker = MlflowTracker(uri, "raw")
    tracker.start_study({"name": "raw"}, None)
    run_id = tracker.start_trial(0, {"lr": 0.001}, {})
    k = max(20, n // 20)
    out["log_reports_1"] = per_call(lambda i: tracker.log_reports(run_id, [{"step": i, **RECORD}]), k)
    out["log_reports_10"] = per_call(
        lambda i: tracker.log_reports(run_id, [{"step": 10 * i + j, **RECORD} for j in range(10)]), k)
    tracker.end_trial(run_id, TrialResult(0, TrialState.COMPLETED, metrics={"val_loss": 0.1}))
    tracker.end_study("FINISHED")
    return out


def _load() -> str:
    with contextlib.suppress(OSError):
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=4, help="trials per study")
    ap.add_argument("--repeats", type=int, default=3, help="studies per variant (interleaved)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n-train", type=int, default=4096)
    ap.add_argument("--raw-calls", type=int, default=2000)
    ap.add_argument("--target", type=float, default=0.02)
    ap.add_argument("--out", default=str(HERE / "results" / "mlflow_overhead.md"))
    args = ap.parse_args(argv)

    import logging

    import mlflow
    import torch

    import autotune

    warnings.simplefilter("ignore")
    logging.getLogger("autotune").setLevel(logging.WARNING)
    # The trial processes import this module (entry point) and the quadratic example's data.
    paths = [str(HERE), str(QUADRATIC), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    load_before = _load()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp_name:
        tmp = Path(tmp_name)
        for rep in range(args.repeats):
            order = VARIANTS[rep % 3:] + VARIANTS[:rep % 3]
            for variant in order:
                r = run_variant(variant, args.trials, args.epochs, args.n_train, tmp, rep)
                runs.append(r)
                print(f"rep {rep} {variant:9s} wall {r['wall_s']:6.1f} s  trial s {statistics.median(r['trial_s']):.2f}"
                      f"  train s {statistics.median(r['train_s']):.2f}  log calls {len(r['log_calls'])}"
                      f" ({sum(r['log_calls']):.2f} s)", flush=True)
        raw = raw_costs(tmp, args.raw_calls)

    by: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        v = by[r["variant"]]
        v["trial_s"] += r["trial_s"]
        v["train_s"] += r["train_s"]
        v["wall_per_trial_s"].append(r["wall_s"] / args.trials)
        v["log_s_per_trial"].append(sum(r["log_calls"]) / args.trials)
        v["log_calls_per_trial"].append(len(r["log_calls"]) / args.trials)
        v["read_s_per_trial"].append(sum(r["read_calls"]) / args.trials)

    def ratios(metric: str, variant: str) -> list[float]:
        """Variant / silent - 1 for each (repeat, trial) pair."""
        silent = {r["rep"]: r[metric] for r in runs if r["variant"] == "silent"}
        return [a / b - 1.0 for r in runs if r["variant"] == variant for a, b in zip(r[metric], silent[r["rep"]])]

    def paired(metric: str, variant: str) -> float:
        """Median over (repeat, trial) of variant / silent, minus 1."""
        return statistics.median(ratios(metric, variant))

    def spread(metric: str, variant: str) -> str:
        values = ratios(metric, variant)
        return f"{min(values):+.1%} .. {max(values):+.1%}"

    commit = subprocess.run(["git", "-C", str(HERE.parent), "log", "-1", "--format=%h"], capture_output=True,
                            text=True, check=False).stdout.strip() or "?"
    med = statistics.median
    trial_med = med(by["logged"]["trial_s"])
    log_share = med(by["logged"]["log_s_per_trial"]) / trial_med
    e2e = paired("trial_s", "logged")
    noise = abs(paired("train_s", "reported"))
    if noise > args.target:
        verdict_e2e = (f"this reading cannot resolve {args.target:.0%} at that noise floor (the direct timings "
                       "below decide).")
    else:
        verdict_e2e = f"target {'met' if e2e <= args.target else 'NOT met'} on this reading."
    lines = [
        "# MLflow logging overhead of per-epoch metrics on a real training trial",
        "",
        (f"Command: `OMP_NUM_THREADS=1 MLFLOW_DISABLE_TELEMETRY=true python benchmarks/bench_mlflow_overhead.py "
         f"{' '.join(sys.argv[1:])}`"),
        "",
        (f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other engineers' jobs (load "
         f"average 1/5/15 min: {load_before} before, {_load()} after), so absolute times are inflated and noisy; "
         f"Python {platform.python_version()}, torch {torch.__version__}, mlflow {mlflow.__version__}, "
         f"autotune {autotune.__version__}, git commit {commit}."),
        "",
        (f"Setup: the quadratic example's MLP (2 x 128, batch 64, {args.n_train} training samples, "
         f"{args.epochs} epochs, lr from Sobol), one trial at a time through the real local executor (a fresh "
         f"process per trial) and a real MLflow SQLite store; {args.trials} trials per study, {args.repeats} "
         "interleaved studies per variant. *Trial s* is the executor's wall time of the trial process (start to "
         "reaped, Python and torch start-up included); *train s* is the training loop inside it "
         "(`train_seconds`, the per-epoch `report` calls included). Overheads are the median over paired trials "
         "(same network, same repeat) of variant / silent - 1."),
        "",
        "## Result",
        "",
        (f"Target: MLflow logging overhead <= {args.target:.0%} of trial time. Two readings, side by side in "
         f"this run: (1) the trial's own time: a logged trial took **{e2e:+.2%}** vs a silent one (paired median; "
         f"pairs range {spread('trial_s', 'logged')}, and *reported* vs *silent*, whose true difference is "
         f"{args.epochs} x ~{raw['reporter_file'] * 1e6:.0f} us, reads {paired('train_s', 'reported'):+.2%} on "
         f"the training loop: that is this machine's noise floor); "
         f"{verdict_e2e} (2) the driver's time in MLflow: "
         f"**{log_share:.2%}** of the trial's time (median {med(by['logged']['log_s_per_trial']):.3f} s per "
         f"{trial_med:.2f} s trial, {med(by['logged']['log_calls_per_trial']):.1f} `log_batch` calls of "
         f"{med(by['logged']['log_s_per_trial']) / max(1.0, med(by['logged']['log_calls_per_trial'])) * 1e3:.0f} "
         f"ms); target {'met' if log_share <= args.target else 'NOT met'} on this reading. That time runs in the "
         "driver beside the trial's process, so it does not lengthen the trial; it is driver time, which limits "
         "how many workers one driver keeps busy (see `utilisation.md`)."),
        "",
        ("| variant | trial s (median) | train s (median) | study wall s / trial | MLflow log calls / trial | "
        "driver s in `log_reports` / trial | driver s reading reports / trial | trial s vs silent | "
        "train s vs silent |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        v = by[variant]
        vs = ("-", "-") if variant == "silent" else (f"{paired('trial_s', variant):+.2%}",
                                                     f"{paired('train_s', variant):+.2%}")
        lines.append(
            f"| {variant} | {med(v['trial_s']):.2f} | {med(v['train_s']):.2f} | {med(v['wall_per_trial_s']):.2f} | "
            f"{med(v['log_calls_per_trial']):.1f} | {med(v['log_s_per_trial']):.3f} | "
            f"{med(v['read_s_per_trial']):.4f} | {vs[0]} | {vs[1]} |")
    per_record_log = raw["log_reports_10"] / 10
    lines += [
        "",
        "## Raw cost of the reporting path (median per call)",
        "",
        "| piece | where | per call | per record |",
        "|---|---|---:|---:|",
        f"| empty Python call (reference) | - | {raw['noop'] * 1e6:.2f} us | |",
        f"| `report(step, 4 metrics)` kept in memory | worker | {raw['reporter_memory'] * 1e6:.1f} us | |",
        (f"| `report(step, 4 metrics)` to the JSON-lines channel (flushed) | worker | "
        f"{raw['reporter_file'] * 1e6:.1f} us | |"),
        (f"| `MlflowTracker.log_reports`, 1 record (4 metrics) | driver | {raw['log_reports_1'] * 1e3:.2f} ms | "
        f"{raw['log_reports_1'] * 1e3:.2f} ms |"),
        (f"| `MlflowTracker.log_reports`, 10 records (40 metrics) | driver | {raw['log_reports_10'] * 1e3:.2f} ms | "
        f"{per_record_log * 1e3:.2f} ms |"),
        "",
        (f"Reading: the worker pays ~{raw['reporter_file'] * 1e6:.0f} us per epoch, so an epoch of 0.1 s carries "
         f"{raw['reporter_file'] / 0.1:.3%} overhead. The driver pays one SQLite write per trial per send of "
         f"its new records (~{raw['log_reports_1'] * 1e3:.0f} ms; sends are every 5 s, `STREAM_EVERY_S`, plus one at the "
         "trial's end); it runs beside the trial, so it lengthens a trial only through "
         "CPU contention, and it costs driver time (what `bench_utilisation.py` charges to the workers). Records "
         f"made between two sends go in one batch; the driver's MLflow time per trial is about "
         f"(sends per trial) x {raw['log_reports_1'] * 1e3:.0f} ms, i.e. under 2 % of the trial time whenever "
         f"sends are >= {raw['log_reports_1'] / 0.02:.1f} s apart."),
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
