"""Run optimisers on problems and cache every (section, method, problem, seed) run as JSON.

Loops (hand-written: each is a few lines of simulation no library offers in this shape):

- ``seq``: ``ask(1)``, evaluate, ``tell``, ``n_evals`` times.
- ``sync``: rounds of ``ask(q)``; a round lasts as long as its slowest trial.
- ``async``: ``q`` workers; whenever the earliest trial finishes it is told and the freed worker
  asks for one point while the other ``q - 1`` are pending. Trial durations are log-normal with
  mean 1 (``sigma = 0.5``), drawn per seed in issue order, so every method sees the same
  durations and "rounds" means simulated time in units of the mean trial duration.

The ``ask()`` time and memory probe runs in a fresh subprocess per (method, n) so the peak
resident set size (``ru_maxrss``) belongs to that probe alone.

A run whose JSON exists is skipped, so an interrupted run resumes where it stopped. A run's
key names its section, method, problem, seed and evaluations, and for autotune's methods the
code state of the ``autotune/`` package (:func:`code_state`), so a change of autotune's code
starts new runs while the peers' runs stay cached and the suite grows over several days.

Development/confirmation split: every (problem, seed) belongs to one half
(:func:`benchmarks.compare.problems.split_of`); ``Plan.tasks(split)`` lists one half or both.

Health figures in each record: per proposal whether the optimiser's model proposed it
(``model_based``) and how many of its float coordinates lie on the box boundary (``n_on_bound``;
within :data:`BOUND_TOL` of a bound in the unit cube, log scale for log floats), and a summary
``health``: ``boundary_share`` (share of model-based proposals with >= 2 float coordinates on the
boundary; ``None`` without model-based proposals or with fewer than 2 float parameters),
``final_regret`` and ``stuck`` (final regret above the problem's ``stuck_regret``; ``None`` when
the optimum is unknown: the report decides against the best value seen).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.compare.problems import (
    COST_BUDGET,
    PROBLEM_NAMES,
    split_of,
    split_seeds,
)

REPO = Path(__file__).resolve().parents[2]
RAW_DIR = REPO / "benchmarks" / "results" / "compare_raw"
DURATION_SIGMA = 0.5
ASKTIME_TIMEOUT_S = 900
BOUND_TOL = 1e-6
SPLITS = ("dev", "confirm", "all")


@dataclass(frozen=True)
class Task:
    """One cached run.

    Attributes:
        section: ``seq``, ``batch``, ``cost``, ``constrained`` or ``asktime``.
        method: A method of :data:`benchmarks.compare.adapters.METHODS`.
        problem: A problem name (``hartmann6`` for ``asktime``).
        seed: The seed (for ``asktime``: the number of observations ``n``).
        mode: ``seq``, ``sync`` or ``async`` (``asktime`` for the probe).
        n_evals: Evaluations for ``seq``; the cap on evaluations for ``sync``/``async``.
        rounds: For ``sync``/``async``: rounds of ``q`` trials (simulated time for ``async``).
        q: Batch size / number of workers.
        repeats: Timed asks of the ``asktime`` probe.
        cost_budget: For ``seq``: stop once the evaluations' cumulative cost reaches this (the
            cost section gives every method the same budget, so a cost-aware method may make
            more, cheaper evaluations); ``n_evals`` stays a cap.
        code: The autotune code state (:func:`code_state`) for autotune's methods, part of the
            key; empty for the peers (filled in by :func:`run_tasks`).
    """

    section: str
    method: str
    problem: str
    seed: int
    mode: str = "seq"
    n_evals: int = 60
    rounds: int = 20
    q: int = 4
    repeats: int = 3
    cost_budget: float | None = None
    code: str = ""

    @property
    def key(self) -> str:
        code = f"__a{self.code}" if self.code else ""
        if self.mode == "asktime":
            return f"{self.section}__{self.method}__{self.problem}__n{self.seed}__r{self.repeats}{code}"
        m = self.method if self.mode == "seq" else f"{self.method}@{self.mode}{self.q}r{self.rounds}"
        budget = "" if self.cost_budget is None else f"__c{self.cost_budget:g}"
        return f"{self.section}__{m}__{self.problem}__s{self.seed}__e{self.n_evals}{budget}{code}"

    @property
    def split(self) -> str | None:
        """``dev`` or ``confirm`` (``None`` for the ``asktime`` probe, which belongs to neither)."""
        return None if self.mode == "asktime" else split_of(self.problem, self.seed)


def provenance() -> dict[str, Any]:
    """The autotune commit, whether its package differs from the commit, and library versions."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False).stdout
        except OSError:
            return ""

    diff = git("diff", "HEAD", "--", "autotune")
    untracked = git("ls-files", "--others", "--exclude-standard", "--", "autotune").split()
    for f in sorted(untracked):  # new files in autotune/ change the code too
        try:
            diff += f + (REPO / f).read_text(errors="replace")
        except OSError:
            pass
    tree = git("rev-parse", "--short=10", "HEAD:autotune").strip() or "unknown"
    diff_sha = hashlib.sha1(diff.encode()).hexdigest()[:10] if diff else ""
    return {"autotune_commit": git("log", "-1", "--format=%h").strip() or "unknown",
            "autotune_diff_sha1": diff_sha, "autotune_code": tree + (f"+{diff_sha}" if diff_sha else "")}


def code_state() -> str:
    """autotune's code state: the git tree hash of ``autotune/`` at HEAD, ``+`` the hash of the
    uncommitted changes (tracked diff and untracked files) when there are any. Commits that do
    not touch ``autotune/`` keep it."""
    return provenance()["autotune_code"]


def on_bound(space: Any, params: dict[str, Any]) -> int:
    """How many float coordinates of ``params`` lie on their bounds (unit cube, :data:`BOUND_TOL`)."""
    n = 0
    for name, p in space.parameters.items():
        if p.kind != "float" or name not in params:
            continue
        v, lo, hi = float(params[name]), float(p.low), float(p.high)
        if p.log:
            v, lo, hi = math.log(max(v, 1e-300)), math.log(lo), math.log(hi)
        u = (v - lo) / (hi - lo)
        n += u <= BOUND_TOL or u >= 1.0 - BOUND_TOL
    return n


def health(problem: Any, values: list[float], n_on_bound: list[int], model_based: list[bool | None],
           feasible: list[bool] | None = None) -> dict[str, Any]:
    """The run's health figures (see the module docstring)."""
    n_float = sum(p.kind == "float" for p in problem.space.parameters.values())
    model = [b for b, m in zip(n_on_bound, model_based) if m]
    share = (sum(b >= 2 for b in model) / len(model)) if model and n_float >= 2 else None
    final = stuck = None
    ok = [v for i, v in enumerate(values) if v is not None and math.isfinite(v) and (feasible is None or feasible[i])]
    if problem.optimal_value is not None and ok:
        final = max(min(ok) - problem.optimal_value, 0.0)
        stuck = final > problem.stuck_regret
    return {"boundary_share": share, "n_model_based": len(model), "n_float": n_float, "final_regret": final,
            "stuck": stuck, "stuck_regret": problem.stuck_regret}


def _durations(seed: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(10_000 + seed)
    mu = -0.5 * DURATION_SIGMA**2  # mean exp(mu + sigma^2 / 2) = 1
    return iter(lambda: float(rng.lognormal(mu, DURATION_SIGMA)), None)


def run_task(task: Task, stamp: dict[str, Any]) -> dict[str, Any]:
    """Run one task in this process and return its record (not written)."""
    import warnings

    import torch

    from benchmarks.compare.adapters import make_adapter
    from benchmarks.compare.problems import make_problem

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    problem = make_problem(task.problem)
    adapter = make_adapter(task.method, problem, task.seed)
    rec: dict[str, Any] = {**asdict(task), **stamp, "split": task.split, "adapter": adapter.name, "values": [],
                           "c": [], "cost": [], "ask_s": [], "ask_cpu_s": [], "time": [], "round": [],
                           "n_on_bound": [], "model_based": [], "load_start": os.getloadavg()[0]}
    dur = _durations(task.seed)
    t_start = time.perf_counter()

    def evaluate(p: dict[str, Any], t: float, rnd: int) -> None:
        out = problem.evaluate(p)
        adapter.tell(p, out["value"], out)
        rec["values"].append(out["value"])
        rec["c"].append(out.get("c"))
        rec["cost"].append(out.get("cost"))
        rec["time"].append(t)
        rec["round"].append(rnd)

    def ask(n: int) -> list[dict[str, Any]]:
        t0, c0 = time.perf_counter(), time.process_time()
        pts = adapter.ask(n)
        rec["ask_s"].append(time.perf_counter() - t0)
        rec["ask_cpu_s"].append(time.process_time() - c0)
        flags = list(getattr(adapter, "last_model_based", [None] * len(pts)))
        rec["model_based"] += flags + [None] * (len(pts) - len(flags))
        rec["n_on_bound"] += [on_bound(problem.space, p) for p in pts]
        return pts

    if task.mode == "seq":
        t = 0.0
        for i in range(task.n_evals):
            if task.cost_budget is not None and sum(c or 0.0 for c in rec["cost"]) >= task.cost_budget:
                break
            (p,) = ask(1)
            t += next(dur)
            evaluate(p, t, i + 1)
    elif task.mode == "sync":
        t = 0.0
        for r in range(task.rounds):
            pts = ask(task.q)
            t += max(next(dur) for _ in pts)
            for p in pts:
                evaluate(p, t, r + 1)
    elif task.mode == "async":
        heap: list[tuple[float, int, dict[str, Any]]] = []
        issued = 0
        for p in ask(task.q):
            heapq.heappush(heap, (next(dur), issued, p))
            issued += 1
        while heap:
            t, _, p = heapq.heappop(heap)
            evaluate(p, t, math.ceil(t))
            if t < task.rounds and issued < task.n_evals:
                (p,) = ask(1)
                heapq.heappush(heap, (t + next(dur), issued, p))
                issued += 1
    else:
        raise ValueError(f"task {task.key}: unknown mode {task.mode!r}; use seq, sync or async")
    rec["wall_s"] = time.perf_counter() - t_start
    rec["load_end"] = os.getloadavg()[0]
    feas = None
    if problem.constraint is not None:
        feas = [c is not None and c <= problem.constraint[1] for c in rec[problem.constraint[0]]]
    rec["health"] = health(problem, rec["values"], rec["n_on_bound"], rec["model_based"], feas)
    return rec


# -- ask() time and memory -----------------------------------------------------------------------
def asktime_child(method: str, n: int, repeats: int) -> dict[str, Any]:
    """Median ``ask()`` time and peak RSS with ``n`` random Hartmann-6 observations (run in a child)."""
    import resource
    import statistics
    import warnings

    import torch

    from benchmarks.compare.adapters import make_adapter, optuna_distributions
    from benchmarks.compare.problems import make_problem

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    problem = make_problem("hartmann6")
    data = problem.space.sample(n, "random", seed=n)  # as benchmarks/bench_ask.py builds them
    adapter: Any = make_adapter(method, problem, 0)
    if method.startswith("autotune"):
        adapter.opt.n_initial = 0
        for p in data:
            adapter.opt.add(p, problem.evaluate(p)["value"])
    elif method.startswith("optuna"):
        import optuna

        dists = optuna_distributions(problem.space)
        adapter.study.add_trials(
            [optuna.trial.create_trial(params=p, distributions=dists, value=problem.evaluate(p)["value"]) for p in data]
        )
    else:
        raise ValueError(f"asktime: method {method!r} is not probed; use autotune or optuna-gp")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpu = [], []
    load0 = os.getloadavg()[0]
    for r in range(repeats + 1):  # the first ask is a warm-up (a running study has fitted hyperparameters)
        t0, c0 = time.perf_counter(), time.process_time()
        (p,) = adapter.ask(1)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        adapter.tell(p, problem.evaluate(p)["value"], {})
        if r:
            times.append(dt)
            cpu.append(dc)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"median_ask_s": statistics.median(times), "ask_s": times, "median_ask_cpu_s": statistics.median(cpu),
            "ask_cpu_s": cpu, "load": [load0, os.getloadavg()[0]], "rss_before_mb": rss0 / 1024,
            "rss_peak_mb": rss1 / 1024, "ask_peak_extra_mb": (rss1 - rss0) / 1024,
            **provenance()}  # this interpreter imported the code now, not when the suite started


def run_asktime(task: Task, stamp: dict[str, Any]) -> dict[str, Any]:
    """Run the probe for ``task.method`` at ``n = task.seed`` in a fresh interpreter."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "benchmarks.compare.runner", "asktime", task.method, str(task.seed), str(task.repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, check=False, timeout=ASKTIME_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"asktime probe {cmd} failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**asdict(task), **stamp, "n": task.seed, **out}


# -- the cached driver ---------------------------------------------------------------------------
def _execute(task: Task, stamp: dict[str, Any], raw_dir: str, stop_at: float | None) -> tuple[str, str]:
    path = Path(raw_dir) / f"{task.key}.json"
    if path.exists():
        return task.key, "cached"
    if stop_at is not None and time.time() > stop_at:
        return task.key, "skipped (past --stop-at)"
    try:
        rec = run_asktime(task, stamp) if task.section == "asktime" else run_task(task, stamp)
    except Exception:  # noqa: BLE001 - one failed run must not stop the suite; the report lists it
        return task.key, "FAILED\n" + traceback.format_exc()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec))
    os.replace(tmp, path)
    return task.key, f"done in {rec.get('wall_s', 0.0):.1f} s"


def run_tasks(tasks: Sequence[Task], raw_dir: Path = RAW_DIR, jobs: int = 1, stop_at: float | None = None,
              log: Any = print) -> dict[str, str]:
    """Run the tasks not yet cached, in order, on ``jobs`` processes; return each task's status."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    stamp = provenance()
    tasks = [replace(t, code=stamp["autotune_code"]) if t.method.startswith("autotune") and not t.code else t
             for t in tasks]
    status: dict[str, str] = {}
    todo = [t for t in tasks if not (raw_dir / f"{t.key}.json").exists()]
    for t in tasks:
        if t not in todo:
            status[t.key] = "cached"
    log(f"{len(tasks)} tasks, {len(todo)} to run on {jobs} process(es)")
    if jobs <= 1:
        for t in todo:
            k, s = _execute(t, stamp, str(raw_dir), stop_at)
            status[k] = s
            log(f"{k}: {s}")
        return status
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futs = [pool.submit(_execute, t, stamp, str(raw_dir), stop_at) for t in todo]
        for f in as_completed(futs):
            k, s = f.result()
            status[k] = s
            log(f"{k}: {s}")
    return status


@dataclass
class Plan:
    """What a run covers (see :data:`SIZES`).

    ``seeds`` is the number of seeds per half for every sequential method not named in
    ``method_seeds`` (per-method counts; Ax has ``ax_seeds``). With ``split = all`` each half gets
    that many: development seeds ``0..n-1``, confirmation seeds ``1000..1000+n-1``.
    """

    seeds: int
    n_evals: int
    problems: list[str]
    methods: list[str]
    method_seeds: dict[str, int] = field(default_factory=dict)
    ax_problems: list[str] = field(default_factory=list)
    ax_seeds: int = 0
    batch_methods: list[tuple[str, str]] = field(default_factory=list)  # (method, sync|async)
    batch_problem: str = "hartmann6"
    batch_seeds: int = 0
    rounds: int = 20
    q: int = 4
    cost_methods: list[str] = field(default_factory=list)
    cost_seeds: int = 0
    cost_budget: float | None = None  # every cost method runs until it has spent this much
    cost_max_evals: int = 60
    constrained_methods: list[str] = field(default_factory=list)
    constrained_seeds: int = 0
    asktime_methods: list[str] = field(default_factory=list)
    asktime_n: list[int] = field(default_factory=list)
    asktime_repeats: int = 2
    reference_method: str = "autotune"  # the strategy the goals are about

    def n_seeds(self, method: str) -> int:
        """Seeds per half of a sequential method."""
        return self.method_seeds.get(method, self.seeds)

    def tasks(self, split: str = "all") -> list[Task]:
        """All tasks of one half (``dev``, ``confirm``) or both (``all``), seed-major, so a run cut
        short (``--stop-at``) stays balanced across methods and, with ``all``, across halves.

        Per seed index: every sequential (method, problem) whose method has that many seeds and
        whose (problem, seed) belongs to the half, the constrained and cost problems, the batch
        runs, then Ax (slowest, on its subset and seeds). The ``ask()`` probe up to n = 1000
        follows the first seed (the goals need it early); the larger n come after the last seed.
        The probe belongs to no half and is listed with every split.
        """
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: use one of {', '.join(SPLITS)}")
        out: list[Task] = []

        def probe(ns: list[int]) -> list[Task]:
            return [Task("asktime", m, "hartmann6", n, mode="asktime", repeats=self.asktime_repeats)
                    for n in ns for m in self.asktime_methods]

        def keep(ts: list[Task]) -> list[Task]:
            return [t for t in ts if t.split is not None]

        seq_max = max([self.n_seeds(m) for m in self.methods] + [0])
        n_idx = max(seq_max, self.batch_seeds, self.cost_seeds, self.constrained_seeds, self.ax_seeds)
        halves = ["dev", "confirm"] if split == "all" else [split]
        for i in range(n_idx):
            for half in halves:
                seed = split_seeds(half, i + 1)[-1]
                out += keep([Task("seq", m, p, seed, n_evals=self.n_evals) for p in self.problems
                             for m in self.methods if i < self.n_seeds(m)])
                if i < self.constrained_seeds:
                    out += keep([Task("constrained", m, "constrained_hartmann6", seed, n_evals=self.n_evals)
                                 for m in self.constrained_methods])
                if i < self.cost_seeds:
                    out += keep([Task("cost", m, "cost_hartmann6", seed, n_evals=self.cost_max_evals,
                                      cost_budget=self.cost_budget) for m in self.cost_methods])
                if i < self.batch_seeds:
                    out += keep([Task("batch", m, self.batch_problem, seed, mode=mode, n_evals=self.rounds * self.q,
                                      rounds=self.rounds, q=self.q) for m, mode in self.batch_methods])
            if i == 0:
                out += probe([n for n in self.asktime_n if n <= 1000])
            for half in halves:
                seed = split_seeds(half, i + 1)[-1]
                if i < self.ax_seeds:
                    out += keep([Task("seq", "ax", p, seed, n_evals=self.n_evals) for p in self.ax_problems])
        out += probe([n for n in self.asktime_n if n > 1000])
        return out


# The original problems (the defaults were tuned on them: all in the development half),
# then the broadened suite (issue 12): Levy-6, shifted boxes, BBOB, scikit-learn tuning, the table.
SEQ_PROBLEMS_V1 = ["branin", "hartmann6", "ackley10", "levy4", "rosenbrock4", "styblinski_tang4", "mixed",
                   "svc_breast_cancer"]
SEQ_PROBLEMS = [p for p in PROBLEM_NAMES if p not in ("constrained_hartmann6", "cost_hartmann6")]
PEERS = ["random", "optuna-tpe", "optuna-gp", "autotune"]
FULL_SEEDS = {"autotune": 20, "optuna-gp": 20, "optuna-tpe": 10, "random": 10}
"""Seeds per half and per cell in the full size (issue 12); Ax gets 5."""

SIZES: dict[str, Plan] = {
    "full": Plan(
        seeds=10, n_evals=60, problems=SEQ_PROBLEMS, methods=PEERS, method_seeds=FULL_SEEDS,
        ax_problems=SEQ_PROBLEMS, ax_seeds=5,
        batch_methods=[("autotune", "sync"), ("autotune", "async"), ("autotune-local_penalization", "async"),
                       ("random", "sync")], batch_seeds=10,
        cost_methods=["random", "autotune-ei", "autotune-ei_per_cost", "autotune-ei_per_cost_cool"], cost_seeds=10,
        cost_budget=COST_BUDGET, cost_max_evals=200,
        constrained_methods=["random", "optuna-tpe", "optuna-gp", "autotune"], constrained_seeds=10,
        asktime_methods=["autotune", "optuna-gp"], asktime_n=[50, 200, 500, 1000, 2000], asktime_repeats=2,
    ),
    # What fitted one session on the shared 2-core machine (see the report's notes): 3 seeds, 30 evaluations.
    "reduced": Plan(
        seeds=3, n_evals=30, problems=SEQ_PROBLEMS_V1, methods=PEERS,
        ax_problems=["branin", "hartmann6"], ax_seeds=1,
        batch_methods=[("autotune", "sync"), ("autotune", "async"), ("random", "sync")], batch_seeds=3, rounds=10,
        cost_methods=["random", "autotune-ei", "autotune-ei_per_cost"], cost_seeds=3,
        constrained_methods=["random", "optuna-tpe", "optuna-gp", "autotune"], constrained_seeds=3,
        asktime_methods=["autotune", "optuna-gp"], asktime_n=[50, 200, 500, 1000, 2000], asktime_repeats=2,
    ),
    "smoke": Plan(
        seeds=1, n_evals=6, problems=["branin", "hartmann6"], methods=["random", "autotune"],
        batch_methods=[("random", "sync"), ("random", "async")], batch_seeds=1, rounds=2, q=2,
        cost_methods=["random"], cost_seeds=1, constrained_methods=["random"], constrained_seeds=1,
    ),
}


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "asktime":
    print(json.dumps(asktime_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
