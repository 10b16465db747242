"""Worker utilisation of a real :class:`~autotune.study.Study` whose driver time is charged.

A real study (real GP strategy, real MLflow SQLite store in a temporary folder, the real
driver loop) runs on a :class:`~autotune.executors.SimulatedExecutor` with
``driver_clock=True``: trials take virtual time (log-normal durations), and every real second
the driver spends outside the executor (``ask``, MLflow writes, plots, bookkeeping) moves the
virtual clock too, so a slow driver shows up as idle workers. The problem is Hartmann-6
(d = 6), each trial replays a 10-epoch learning curve (10 ``report`` records, logged to MLflow
per epoch as a real trial's would be).

Examples::

    OMP_NUM_THREADS=1 python benchmarks/bench_utilisation.py --workers 8 --median-s 30 --sigma 0.5 \\
        --trials 300 --strategies ei kriging_believer --out benchmarks/results/utilisation_w8.md
    OMP_NUM_THREADS=1 python benchmarks/bench_utilisation.py --workers 8 16 32 64 --median-s 60 \\
        --sigma 0 --trials 150 --strategies ei --out benchmarks/results/utilisation_sweep.md

Measured per run: utilisation (busy / available worker time, virtual clock) in steady state
(from the start to the last submission, i.e. without the drain at the end of the budget), per
window of completed trials, and overall; the driver's real time per trial, split by part (the
optimiser's ``ask`` and ``tell``, each MLflow call, the plots), median and p90; and the
suggestion latency (``ask``) against the trial duration divided by the workers, the time
between two completions in steady state, which the driver must stay under. The timings wrap
the optimiser's and tracker's methods from outside (``_study.py`` is not changed).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

EPOCHS = 10
TRACKER_METHODS = ("start_trial", "log_reports", "end_trial", "log_study_metrics", "set_study_tags", "load_trials")


class Timings:
    """Real seconds per driver part, attributed to a trial where the call names one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None, float]] = []  # (part, trial id, seconds)
        self.asks: list[tuple[int, int, float, str]] = []  # (observations, pending, seconds, strategy used)
        self.run_trial: dict[str, int] = {}
        self.current: int | None = None  # the trial being recorded (for study-level calls)
        self.closed = False  # the executor has shut down: later calls (final plots) are not charged
        self.mirror: list[float] = []  # the ask process's seconds per adopted point (not charged)

    def wrap(self, part: str, fn: Callable[..., Any], trial_of: Callable[..., int | None]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            dt = time.perf_counter() - t0
            tid = trial_of(args, kwargs, out)
            self.calls.append((f"{part} (after the run, not charged)" if self.closed else part, tid, dt))
            return out

        return timed


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _busy_in(spans: list[tuple[float, float]], a: float, b: float) -> float:
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e in spans)


@contextlib.contextmanager
def _stop_after(seconds: float) -> Iterator[None]:
    """SIGINT this process after ``seconds`` of wall time: the study stops gracefully."""
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def run_one(workers: int, strategy: str, median_s: float, sigma: float, trials: int, seed: int,
            max_wall_s: float, prefetch: int | None = None, ask_process: bool | None = None) -> dict[str, Any]:
    """Run one study and return its figures (``prefetch``, ``ask_process``: ``None``, the study's default)."""
    import torch
    from botorch.test_functions import Hartmann

    from autotune import tracking
    from autotune.executors import SimulatedExecutor
    from autotune.optimizer import Optimizer
    from autotune.study import Study, StudyConfig
    from autotune.study._ahead import AskAhead

    hartmann = Hartmann(dim=6)
    rng = random.Random(seed)

    def duration_fn(params: dict[str, Any]) -> float:
        return median_s * math.exp(sigma * rng.gauss(0.0, 1.0))

    def objective_fn(params: dict[str, Any]) -> list[dict[str, float]]:
        x = torch.tensor([[params[f"x{i}"] for i in range(6)]], dtype=torch.float64)
        final = float(hartmann(x))
        return [{"val_loss": final + 2.0 * (EPOCHS - 1 - e) / EPOCHS, "train_loss": final + 1.5 * (EPOCHS - 1 - e)
                 / EPOCHS} for e in range(EPOCHS)]

    timings = Timings()
    jobs: list[Any] = []

    class RecordingExecutor(SimulatedExecutor):
        def submit(self, spec: Any) -> Any:
            job = super().submit(spec)
            jobs.append(job)
            return job

        def shutdown(self, kill: bool = False) -> None:
            super().shutdown(kill)
            timings.closed = True

    executor = RecordingExecutor(workers, duration_fn=duration_fn, objective_fn=objective_fn, driver_clock=True)

    class TimedTracker(tracking.MlflowTracker):
        pass

    def trial_of(part: str) -> Callable[..., int | None]:
        def find(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int | None:
            if part == "start_trial":
                timings.run_trial[out] = args[1]
                timings.current = args[1]
            elif part == "end_trial":
                timings.current = args[2].trial_id
            elif part == "log_reports":
                return timings.run_trial.get(args[1])
            return timings.current

        return find

    for part in TRACKER_METHODS:
        setattr(TimedTracker, part, timings.wrap(part, getattr(tracking.MlflowTracker, part), trial_of(part)))

    # Timed at class level: an instance attribute would not survive the pickle that starts the
    # optimiser's mirror (parallelism.ask_process), whose own asks are timed by AskAhead.
    raw_ask, raw_tell, raw_collect = Optimizer.ask, Optimizer.tell, AskAhead.collect

    def ask(opt: Optimizer, n: int = 1, **kwargs: Any) -> Any:
        n_obs, n_pending = len(opt.observations), len(opt.pending)
        t0 = time.perf_counter()
        out = raw_ask(opt, n, **kwargs)
        dt = time.perf_counter() - t0
        used = str(out[0].info.get("strategy", "")) if out else ""
        timings.asks.append((n_obs, n_pending, dt, used))
        for s in out:  # the initial design's asks are told apart: they cost no model
            part = "ask (initial design)" if used == config.initial_design else "ask"
            timings.calls.append((part, s.trial_id, dt / len(out)))
        return out

    def tell(opt: Optimizer, trial_id: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = raw_tell(opt, trial_id, *args, **kwargs)
        timings.calls.append(("tell", trial_id if isinstance(trial_id, int) else None, time.perf_counter() - t0))
        return out

    def collect(ahead: AskAhead, timeout_s: float = 0.0) -> Any:
        t0 = time.perf_counter()
        out = raw_collect(ahead, timeout_s)
        dt = time.perf_counter() - t0
        if out is not None:  # the mirror's own seconds per point, not charged (another process)
            timings.mirror.extend([ahead.ask_s[-1] / max(1, len(out))] * len(out))
        timings.calls.append(("collect from the ask process (waits included)", None, dt))
        return out

    raw_plots = tracking.refresh_study_plots
    with tempfile.TemporaryDirectory(prefix="bench-util-") as tmp:
        config = StudyConfig.from_dict({
            "name": f"util-w{workers}-{strategy}",
            "space": {"parameters": {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(6)}},
            "objective": {"metric": "val_loss", "direction": "minimize"},
            "strategy": {"name": strategy},
            "budget": {"max_trials": trials},
            "parallelism": {"workers": workers, "prefetch": prefetch, "ask_process": ask_process},
            "executor": {"name": "simulated"},
            "trial": {"entry_point": "hartmann:objective"},
            "seed": seed,
            "output_dir": tmp,
        })
        tracking.MlflowTracker = TimedTracker  # type: ignore[misc]
        tracking.refresh_study_plots = timings.wrap("plots", raw_plots, lambda a, k, o: timings.current)
        t0, cpu0 = time.perf_counter(), time.process_time()
        try:
            Optimizer.ask, Optimizer.tell, AskAhead.collect = ask, tell, collect  # type: ignore[method-assign]
            with _stop_after(max_wall_s):
                summary = Study(config, executor=executor).optimize(progress=False)
        finally:
            Optimizer.ask, Optimizer.tell, AskAhead.collect = raw_ask, raw_tell, raw_collect  # type: ignore[method-assign]
            tracking.MlflowTracker = TimedTracker.__mro__[1]  # type: ignore[misc]
            tracking.refresh_study_plots = raw_plots
        wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0

    results = [j.result() for j in jobs if j.done()]
    spans = [(r.start_time, r.end_time) for r in results]
    submits = sorted(r.start_time for r in results)
    last_submit = submits[-1]
    steady = _busy_in(spans, 0.0, last_submit) / (workers * last_submit) if last_submit > 0 else math.nan
    completed = sorted(results, key=lambda r: r.end_time)
    windows = []
    size = 50
    for k in range(0, len(completed), size):
        chunk = completed[k:k + size]
        a = 0.0 if k == 0 else completed[k - 1].end_time
        b = min(chunk[-1].end_time, last_submit)
        if b <= a:
            continue
        ids = {r.trial_id for r in chunk}
        ask_s = [dt for part, tid, dt in timings.calls if part == "ask" and tid in ids]
        windows.append({"trials": f"{k + 1}-{k + len(chunk)}", "from_s": a, "to_s": b,
                        "util": _busy_in(spans, a, b) / (workers * (b - a)),
                        "ask_med": statistics.median(ask_s) if ask_s else math.nan,
                        "ask_p90": _percentile(ask_s, 0.9)})
    per_part: dict[str, list[float]] = defaultdict(list)
    per_trial: dict[int, float] = defaultdict(float)
    for part, tid, dt in timings.calls:
        per_part[part].append(dt)
        if tid is not None and "not charged" not in part:
            per_trial[tid] += dt
    n_submitted = len(jobs)
    model_asks = [dt for _, _, dt, used in timings.asks if used != config.initial_design]
    return {
        "workers": workers, "strategy": strategy, "median_s": median_s, "sigma": sigma,
        "prefetch": config.parallelism.prefetch, "ask_process": config.parallelism.ask_process,
        "mirror_points": len(timings.mirror),
        "mirror_med": statistics.median(timings.mirror) if timings.mirror else math.nan,
        "n_submitted": n_submitted, "n_finished": len(results), "stop": summary.stop_reason,
        "wall_s": wall_s, "cpu_s": cpu_s, "makespan_s": executor.makespan_s, "last_submit_s": last_submit,
        "steady_util": steady, "overall_util": executor.utilisation(),
        "driver_s": executor.driver_time_s, "driver_per_trial": executor.driver_time_s / max(1, n_submitted),
        "per_part": {p: (sum(v), statistics.median(v), _percentile(v, 0.9), len(v)) for p, v in per_part.items()},
        "per_trial_med": statistics.median(per_trial.values()) if per_trial else math.nan,
        "per_trial_p90": _percentile(list(per_trial.values()), 0.9),
        "ask_med": statistics.median(model_asks) if model_asks else math.nan,
        "ask_p90": _percentile(model_asks, 0.9),
        "windows": windows,
        "best": None if summary.best is None else summary.best.value,
    }


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _load() -> str:
    with contextlib.suppress(OSError):
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[8])
    ap.add_argument("--strategies", nargs="+", default=["ei"])
    ap.add_argument("--median-s", type=float, default=30.0, help="median trial duration (virtual seconds)")
    ap.add_argument("--sigma", type=float, default=0.5, help="log-normal sigma of the durations (0: fixed)")
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--prefetch", nargs="+", default=["auto"],
                    help="suggestions asked ahead (parallelism.prefetch); 'auto' is the study default")
    ap.add_argument("--ask-process", nargs="+", default=["auto"], choices=["auto", "on", "off"],
                    help="suggestions computed in a second process (parallelism.ask_process); 'auto': the default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-wall-s", type=float, default=600.0, help="stop a run (gracefully) after this wall time")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "utilisation.md"))
    args = ap.parse_args(argv)

    import torch

    import autotune

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    import logging

    logging.getLogger("autotune").setLevel(logging.WARNING)
    load_before = _load()
    runs = []
    for workers in args.workers:
        for strategy, prefetch, ahead in itertools.product(args.strategies, args.prefetch, args.ask_process):
            r = run_one(workers, strategy, args.median_s, args.sigma, args.trials, args.seed, args.max_wall_s,
                        None if prefetch == "auto" else int(prefetch), {"auto": None, "on": True, "off": False}[ahead])
            runs.append(r)
            print(f"workers={workers:3d} {strategy:18s} prefetch={r['prefetch']} ask_process={r['ask_process']} trials={r['n_submitted']} steady util={r['steady_util']:.3f} "
                  f"overall={r['overall_util']:.3f} driver/trial={r['driver_per_trial']:.3f} s "
                  f"ask med={r['ask_med']:.3f} s wall={r['wall_s']:.0f} s stop={r['stop']}", flush=True)

    import mlflow

    commit = subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[1]), "log", "-1", "--format=%h"],
                            capture_output=True, text=True, check=False).stdout.strip() or "?"
    dur = (f"log-normal, median {args.median_s:g} s, sigma {args.sigma:g}" if args.sigma > 0
           else f"fixed {args.median_s:g} s")
    lines = [
        "# Worker utilisation with the driver's own time charged (simulated executor, `driver_clock=True`)",
        "",
        (f"Command: `OMP_NUM_THREADS=1 MLFLOW_DISABLE_TELEMETRY=true python benchmarks/bench_utilisation.py "
        f"{' '.join(sys.argv[1:])}`"),
        "",
        (f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other engineers' jobs "
        f"(load average 1/5/15 min: {load_before} before, {_load()} after), so real-time figures are inflated; "
        f"Python {platform.python_version()}, torch {torch.__version__}, mlflow {mlflow.__version__}, "
        f"autotune {autotune.__version__}, git commit {commit}, one torch thread."),
        "",
        (f"Setup: Hartmann-6 (d = 6), trial durations {dur}, {EPOCHS} per-epoch report records per trial "
        "logged to a real MLflow SQLite store, the real `Study` driver (plots every 10 trials included), "
        f"budget {args.trials} trials, seed {args.seed}. Virtual time advances by the trials' durations and by "
        "every real second the driver spends outside the executor. Utilisation = busy worker time / "
        "(workers x elapsed virtual time). *Steady* runs from t = 0 to the last submission (the drain after "
        "the budget is spent is excluded); *overall* includes the drain."),
        "",
        f"## Summary (target: steady utilisation >= {args.target:.0%})",
        "",
        ("| workers | strategy | prefetch | ask process | trials | steady util | overall util | target met | "
         "driver s / trial (mean) | per-trial driver s med / p90 | model ask s med / p90 | points from the ask process "
         "(its s / point, median) | T / workers (s) | wall s | CPU s / wall s | stop |"),
        "|---:|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['workers']} | {r['strategy']} | {r['prefetch']} | {'on' if r['ask_process'] else 'off'} | "
            f"{r['n_submitted']} | {_fmt(r['steady_util'])} | "
            f"{_fmt(r['overall_util'])} | {'yes' if r['steady_util'] >= args.target else 'no'} | "
            f"{_fmt(r['driver_per_trial'])} | {_fmt(r['per_trial_med'])} / {_fmt(r['per_trial_p90'])} | "
            f"{_fmt(r['ask_med'])} / {_fmt(r['ask_p90'])} | {r['mirror_points']} ({_fmt(r['mirror_med'])}) | "
            f"{_fmt(args.median_s / r['workers'], 2)} | "
            f"{r['wall_s']:.0f} | {r['cpu_s'] / r['wall_s']:.2f} | {r['stop']} |")
    lines += ["", ("*Driver s / trial (mean)* is all real time charged to the virtual clock divided by the trials "
              "submitted (it includes the polling loop); *per-trial* sums the timed calls attributed to one trial "
              "(its ask, its MLflow calls, its tell, the plots drawn when it finished); *model ask* leaves out the "
              "initial design's asks (no model). *T / workers* is the mean "
              "time between two completions in steady state: the latency budget of one suggestion. *CPU s / wall s* is "
              "the driver process's CPU time over its wall time: below 1 the driver waited for a CPU (other jobs) "
              "or for I/O, so its real-time figures are inflated by up to that factor."), ""]
    for r in runs:
        lines += [f"## {r['workers']} workers, {r['strategy']}, prefetch {r['prefetch']}, ask process "
                  f"{'on' if r['ask_process'] else 'off'}", "",
                  "Driver time by part (real seconds):", "",
                  "| part | calls | total s | median s | p90 s |", "|---|---:|---:|---:|---:|"]
        for part, (total, med, p90, n) in sorted(r["per_part"].items(), key=lambda kv: -kv[1][0]):
            lines.append(f"| {part} | {n} | {total:.1f} | {med:.4f} | {p90:.4f} |")
        other = r["driver_s"] - sum(v[0] for p, v in r["per_part"].items() if "not charged" not in p)
        lines += [f"| other (driver loop, polling, executor bookkeeping) | | {other:.1f} | | |",
                  f"| **all charged driver time** | | **{r['driver_s']:.1f}** | | |", "",
                  "Utilisation over the study's progress (windows of 50 completions, cut at the last submission):",
                  "", "| completed trials | virtual s | utilisation | ask s med / p90 |", "|---|---|---:|---:|"]
        for w in r["windows"]:
            lines.append(f"| {w['trials']} | {w['from_s']:.0f}-{w['to_s']:.0f} | {w['util']:.3f} | "
                         f"{_fmt(w['ask_med'])} / {_fmt(w['ask_p90'])} |")
        lines.append("")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
