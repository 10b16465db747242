"""Early-stopping rules judged by training time: steps spent to reach a target, and regret at a budget.

An asynchronous study is simulated on ``workers`` identical workers (time = training steps, one
step per time unit): every free worker gets a new configuration from an autotune
:class:`~autotune.Optimizer` (random search, the model-free baseline; the GP strategy ``ei``,
which learns from pruned trials' last values as if they were final; or ``mobster``, the GP over
configuration and step that learns from every rung-level value) or, side by side, an Optuna study
(``optuna-tpe``/``optuna-gp``: TPESampler/GPSampler with the matching pruner: MedianPruner,
SuccessiveHalvingPruner, HyperbandPruner), trains it step by step, reports each step to the
study's rule through the driver's own seam (:class:`autotune.study._stopping.EarlyStopper`'s
rule), and stops when the rule says so.

The learning curves are synthetic but shaped like real ones: a configuration's final loss is
Hartmann-6 at that point (shifted to be positive), and its curve is
``final + a(x) * step**-b(x)`` with configuration-dependent ``a`` (0.5-3) and ``b`` (0.3-1.5), so
curves cross (a good configuration may start slowly) and early judgements can be wrong. This is
a development problem for the rules' defaults, stated as such in the report.

``--problem digits_mlp`` looks the curves up in a table of real training instead: every one of 648
MLP configurations (learning rate, width, depth, activation, weight decay, batch size) trained on
scikit-learn's digits for 27 epochs, validation loss per epoch, mean of two training seeds
(``benchmarks/lc_tables/build_digits_mlp.py`` built it; the true optimum is known). It was not
used to choose any default.

    OMP_NUM_THREADS=1 python benchmarks/bench_early_stopping.py --seeds 20 --out benchmarks/results/early_stopping.md
    OMP_NUM_THREADS=1 python benchmarks/bench_early_stopping.py --problem digits_mlp --strategies random ei mobster optuna-tpe
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TABLES = Path(__file__).resolve().parent / "lc_tables"

RULES = {
    "none": {},
    "median": {"rule": "median", "min_step": 3, "min_trials": 4},
    "asha": {"rule": "asha", "min_step": 1, "eta": 3},
    "hyperband": {"rule": "hyperband", "min_step": 1, "eta": 3},
}


def _curve_params(x: list[float]) -> tuple[float, float, float]:
    import torch
    from botorch.test_functions import Hartmann

    final = float(Hartmann(dim=6)(torch.tensor([x], dtype=torch.float64))) + 3.32237 + 0.1
    a = 0.5 + 2.5 * (0.5 + 0.5 * math.sin(7.0 * x[0] + 3.0 * x[3]))
    b = 0.3 + 1.2 * (0.5 + 0.5 * math.cos(5.0 * x[1] - 4.0 * x[4]))
    return final, a, b


@dataclass(frozen=True)
class Problem:
    """A search space and the learning curve of each of its configurations.

    Attributes:
        name: The ``--problem`` name.
        space: The autotune search space (a ``SearchSpace.from_dict`` mapping).
        choices: Per parameter, Optuna's distribution: ``(low, high)`` floats or a list of choices.
        curve: The learning curve of a configuration: step (1, 2, ...) to loss.
        optimum: The smallest final loss of the space.
        max_step: The last step of a full trial.
    """

    name: str
    space: dict[str, Any]
    choices: dict[str, Any]
    curve: Callable[[dict[str, Any]], Callable[[int], float]]
    optimum: float
    max_step: int | None = None


def _hartmann_curve(params: dict[str, Any]) -> Callable[[int], float]:
    final, a, b = _curve_params([float(params[f"x{i}"]) for i in range(6)])
    return lambda step: final + a * step ** -b


@functools.cache
def _digits_table() -> dict[str, Any]:
    with gzip.open(TABLES / "digits_mlp.json.gz", "rt", encoding="utf-8") as f:
        table = json.load(f)
    table["by_key"] = {tuple(r["config"][k] for k in table["grid"]): r["val_loss"] for r in table["rows"]}
    return table


def _digits_curve(params: dict[str, Any]) -> Callable[[int], float]:
    table = _digits_table()
    losses = table["by_key"][tuple(params[k] for k in table["grid"])]
    return lambda step: losses[min(step, len(losses)) - 1]


def problem(name: str) -> Problem:
    """A benchmark problem by name: ``hartmann6`` (synthetic curves) or ``digits_mlp`` (a table of real training)."""
    if name == "hartmann6":
        names = [f"x{i}" for i in range(6)]
        return Problem(name, {"parameters": {n: {"type": "float", "low": 0.0, "high": 1.0} for n in names}},
                       {n: (0.0, 1.0) for n in names}, _hartmann_curve, 0.1)
    if name == "digits_mlp":
        table = _digits_table()
        grid = table["grid"]
        spec = {k: ({"type": "categorical", "choices": v} if isinstance(v[0], str) else {"type": "ordinal", "values": v})
                for k, v in grid.items()}
        optimum = min(r["val_loss"][-1] for r in table["rows"])
        return Problem(name, {"parameters": spec}, dict(grid), _digits_curve, optimum, int(table["epochs"]))
    raise ValueError(f"unknown problem {name!r}: use hartmann6 or digits_mlp")


class _Autotune:
    """An autotune :class:`~autotune.Optimizer` and a rule from :mod:`autotune.stopping` (the driver's seam)."""

    def __init__(self, strategy: str, rule_name: str, seed: int, max_step: int, prob: Problem) -> None:
        from autotune import Optimizer
        from autotune.space import SearchSpace
        from autotune.stopping import make_rule

        space = SearchSpace.from_dict(prob.space)
        spec = dict(RULES[rule_name])
        name = spec.pop("rule", "none")
        # mobster models the values at the rule's rung levels (the study fills these from early_stopping)
        options = {"min_step": spec.get("min_step", 1), "max_step": max_step, "eta": spec.get("eta", 3)}
        self.opt = Optimizer(space, strategy, seed=seed, strategy_options=options if strategy == "mobster" else None)
        self.rule = make_rule(name, **({**spec, "max_step": max_step} if name in ("asha", "hyperband") else spec))

    def ask(self) -> tuple[int, dict[str, Any]]:
        s = self.opt.ask(1)[0]
        return s.trial_id, s.params

    def step(self, tid: int, step: int, value: float, last: bool) -> bool:
        self.opt.report(tid, step, value)  # the driver streams every report to the optimiser
        return not last and self.rule.observe(tid, step, value) is not None

    def end(self, tid: int, value: float, pruned: bool) -> None:
        from autotune.trial import TrialState

        if not pruned:
            self.rule.completed(tid)
        self.opt.tell(tid, value, state=TrialState.PRUNED if pruned else TrialState.COMPLETED)


class _Optuna:
    """An Optuna study with the pruner that matches the rule (peer): ask, ``report``, ``should_prune``, tell."""

    def __init__(self, sampler: str, rule_name: str, seed: int, max_step: int, prob: Problem) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        samplers = {"optuna-tpe": lambda: optuna.samplers.TPESampler(seed=seed),
                    "optuna-gp": lambda: optuna.samplers.GPSampler(seed=seed)}
        spec = RULES[rule_name]
        pruners = {
            "none": lambda: optuna.pruners.NopPruner(),
            "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=spec.get("min_trials", 4),
                                                          n_warmup_steps=spec.get("min_step", 3) - 1),
            "asha": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
            "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_step,
                                                                reduction_factor=3),
        }
        self.study = optuna.create_study(sampler=samplers[sampler](), pruner=pruners[rule_name]())
        self.dist = {k: optuna.distributions.FloatDistribution(*v) if isinstance(v, tuple)
                     else optuna.distributions.CategoricalDistribution(v) for k, v in prob.choices.items()}
        self.trials: dict[int, object] = {}

    def ask(self) -> tuple[int, dict[str, Any]]:
        trial = self.study.ask(self.dist)
        self.trials[trial.number] = trial
        return trial.number, dict(trial.params)

    def step(self, tid: int, step: int, value: float, last: bool) -> bool:
        trial = self.trials[tid]
        trial.report(value, step)  # type: ignore[attr-defined]
        return not last and bool(trial.should_prune())  # type: ignore[attr-defined]

    def end(self, tid: int, value: float, pruned: bool) -> None:
        import optuna

        trial = self.trials.pop(tid)
        if pruned:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, value)


def simulate(rule_name: str, strategy: str, seed: int, max_step: int, budget_steps: int, workers: int,
             problem_name: str = "hartmann6") -> dict[str, float]:
    """One asynchronous study; returns the best final loss at each budget mark and the steps used.

    ``strategy`` is an autotune strategy name, or ``optuna-tpe``/``optuna-gp`` for Optuna's
    sampler with the pruner that matches ``rule_name`` (median, successive halving, Hyperband).
    """
    prob = problem(problem_name)
    tuner = (_Optuna if strategy.startswith("optuna-") else _Autotune)(strategy, rule_name, seed, max_step, prob)
    running: dict[int, dict] = {}  # trial id -> state
    clock, used, best, tried = 0, 0, math.inf, 0
    marks: dict[str, float] = {}
    while used < budget_steps or running:
        while len(running) < workers and used < budget_steps:
            tid, params = tuner.ask()
            tried += 1
            running[tid] = {"curve": prob.curve(params), "step": 0}
        for tid in sorted(running):  # one time unit: every running trial trains one step
            t = running[tid]
            t["step"] += 1
            used += 1
            value = t["curve"](t["step"])
            done = t["step"] >= max_step
            stop = tuner.step(tid, t["step"], value, done)
            if done:
                best = min(best, value)
            if done or stop:
                tuner.end(tid, value, pruned=not done)
                del running[tid]
        clock += 1
        for frac in (0.25, 0.5, 1.0):
            key = f"best@{frac:g}"
            if key not in marks and used >= frac * budget_steps:
                marks[key] = best
    return {**marks, "steps": used, "trials": tried, "clock": clock}


PROBLEM_TEXT = {
    "hartmann6": ("Synthetic crossing learning curves ending at Hartmann-6 (see the script): a **development** "
                  "problem for the rules and for `mobster`, not a held-out claim."),
    "digits_mlp": ("Curves looked up in a table of real training (648 MLP configurations on scikit-learn's digits, "
                   "27 epochs, validation loss, mean of two training seeds; `benchmarks/lc_tables/`): **not** used "
                   "to choose any default (held out). Regret is against the table's best final validation loss."),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--problem", default="hartmann6", choices=["hartmann6", "digits_mlp"])
    ap.add_argument("--max-step", type=int, default=27)
    ap.add_argument("--budget-trials", type=int, default=30, help="budget in full trials' worth of steps")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--strategies", nargs="+", default=["random", "ei"])
    ap.add_argument("--gp-seeds", type=int, default=10, help="seeds for the GP strategy (slower)")
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    ap.add_argument("--raw", type=Path, default=Path("benchmarks/results/early_stopping_raw.json"),
                    help="cache of finished simulations (the report grows over several runs)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/early_stopping.md"))
    args = ap.parse_args(argv)
    prob = problem(args.problem)
    max_step = prob.max_step or args.max_step
    budget = args.budget_trials * max_step
    optimum = prob.optimum  # regret = best final loss - the space's best
    rows = []
    started = time.time()
    cache: dict[str, dict[str, float]] = json.loads(args.raw.read_text()) if args.raw.is_file() else {}
    for strategy in args.strategies:
        n = args.seeds if strategy in ("random", "sobol", "optuna-tpe") else min(args.seeds, args.gp_seeds)
        for rule in args.rules:
            res = []
            for s in range(n):
                key = f"{strategy}|{rule}|{1000 + s}|{max_step}|{budget}|{args.workers}"
                key = key if args.problem == "hartmann6" else f"{args.problem}|{key}"
                if key not in cache:
                    cache[key] = simulate(rule, strategy, 1000 + s, max_step, budget, args.workers, args.problem)
                    args.raw.parent.mkdir(parents=True, exist_ok=True)
                    args.raw.write_text(json.dumps(cache, indent=0, sort_keys=True))
                res.append(cache[key])
            rows.append((strategy, rule, n, res))
            print(f"{strategy:8s} {rule:10s} done ({time.time() - started:.0f} s)", flush=True)

    def q(values: list[float]) -> str:
        v = sorted(values)
        return f"{statistics.median(v):.2f} [{v[len(v) // 4]:.2f}, {v[(3 * len(v)) // 4]:.2f}]"

    lines = [
        "# Early stopping judged by training steps", "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/bench_early_stopping.py --problem {args.problem} --seeds {args.seeds} "
        f"--gp-seeds {args.gp_seeds} --strategies {' '.join(args.strategies)} --rules {' '.join(args.rules)}`; machine: {platform.machine()}, "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d')}.", "",
        f"Simulated asynchronous study: {args.workers} workers, trials of {max_step} steps, a budget of "
        f"{budget} training steps ({args.budget_trials} full trials' worth). "
        + (PROBLEM_TEXT[args.problem]) + " Seeds 1000 and up. Log10 regret of the best *completed* trial's final loss (median [IQR]) after a quarter, "
        "half and all of the step budget; trials = configurations tried within the budget.", "",
        "| strategy | rule | seeds | log10 regret @ 25 % steps | @ 50 % | @ 100 % | trials tried |",
        "|---|---|---|---|---|---|---|",
    ]
    for strategy, rule, n, res in rows:
        cells = []
        for key in ("best@0.25", "best@0.5", "best@1"):
            cells.append(q([math.log10(max(r.get(key, math.inf) - optimum, 1e-6)) if math.isfinite(r.get(key, math.inf))
                            else 1.0 for r in res]))
        lines.append(f"| {strategy} | {rule} | {n} | {' | '.join(cells)} | {q([float(r['trials']) for r in res])} |")
    lines += ["", "A regret of 1.00 stands for no completed trial yet at that point."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
