"""Autonomous beamline steering against a raster scan, on the simulated instrument.

Each method measures the sample of ``instrument.py`` until its instrument clock (motor time
plus exposures) passes the budget:

* ``raster``: a serpentine raster at the finest grid that fits the budget (the baseline);
* ``max_variance``: autotune's maximum-variance sampling (Noack et al. 2019), through
  :class:`autotune.Optimizer` ask/tell, blind to motor time;
* ``max_variance_per_cost``: cost-aware exploration, ``max_variance`` with the option
  ``cost: known`` (``log sigma(x) - log c(x)``) and the *known* cost
  ``c(x) = exposure + |x - stage| / speed`` (defined here: the stage position changes after
  every measurement, so the cost is a known function, not a GP of log cost);
* ``ei_per_cost``: autotune's cost-aware strategy (EI per second, same known cost): it hunts
  the largest radius, i.e. the narrow feature;
* ``thompson_per_cost``, ``ucb_per_cost``: Thompson sampling and UCB with the same cost option
  (a posterior draw, or ``mu + sqrt(beta) sigma``, less the cost's log).

``--max-length-scale``, ``--n-initial``/``--initial-design`` and ``--cost-exponent`` set the
model-based methods' options (the narrow-feature tools, measured in ``results/narrow/``).

After each method, the map is reconstructed at checkpoints of instrument time by the GP
posterior mean (autotune's own surrogate, fitted on the measurements made by then) on a
41 x 41 grid, and compared with the true radius map (RMSE, Angstrom). The time of the first
measurement inside the narrow feature is recorded too. Run::

    python studies/beamline/steer.py --seeds 0 1 2 --budget-s 600 --out studies/beamline/results

Hand-written: it is the experiment protocol; the proposals are autotune's.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

METHODS = ("raster", "max_variance", "max_variance_per_cost", "ei_per_cost", "thompson_per_cost", "ucb_per_cost")
GRID_N = 41


def _instrument() -> ModuleType:
    """``instrument.py`` beside this file, under a name no other study's module can shadow."""
    name = "autotune_studies_beamline_instrument"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("instrument.py"))
        assert spec is not None and spec.loader is not None  # the file ships beside this one
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclass
class Run:
    """One method on one seed: its measurements and what they gave.

    Attributes:
        method: The method.
        seed: The seed (detector noise and the optimiser).
        points: ``(x, y, radius, clock_s)`` per measurement, in order.
        wall_s: Seconds of computation (proposals and measurements).
        checkpoints_s: Instrument times of the map evaluations.
        rmse: Map RMSE (Angstrom) at each checkpoint.
        feature_s: Instrument time of the first measurement inside the narrow feature (``None``: never).
    """

    method: str
    seed: int
    points: list[tuple[float, float, float, float]] = field(default_factory=list)
    wall_s: float = 0.0
    checkpoints_s: list[float] = field(default_factory=list)
    rmse: list[float] = field(default_factory=list)
    feature_s: float | None = None


def raster_points(n: int) -> list[tuple[float, float]]:
    """A serpentine raster of ``n x n`` cell centres, row by row from ``y = 0``."""
    out = []
    for j in range(n):
        xs = [(i + 0.5) / n for i in range(n)]
        out += [(x, (j + 0.5) / n) for x in (xs if j % 2 == 0 else xs[::-1])]
    return out


def raster_size(budget_s: float, exposure_s: float, speed: float) -> int:
    """The finest ``n`` whose whole raster (from the stage's start at the origin) fits ``budget_s``."""
    n = 1
    while True:
        path = raster_points(n + 1)
        length = math.hypot(*path[0]) + sum(math.dist(a, b) for a, b in itertools.pairwise(path))
        if length / speed + len(path) * exposure_s > budget_s:
            return n
        n += 1


def _space() -> Any:
    from autotune.space import Float, SearchSpace

    return SearchSpace([Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)])


def steer(method: str, seed: int, budget_s: float, beamline_kw: dict[str, Any] | None = None,
          n_initial: int = 4, raster_plan_s: float | None = None, model_kw: dict[str, Any] | None = None) -> Run:
    """Measure with one method until the instrument clock passes ``budget_s``.

    Args:
        method: One of :data:`METHODS`.
        seed: Detector noise and optimiser seed.
        budget_s: Instrument seconds.
        beamline_kw: Options of :class:`Beamline` (exposure, speed, noise).
        n_initial: Sobol points before the model-based strategies take over.
        raster_plan_s: The time the raster is planned for (default ``budget_s``: the finest
            raster that fits; a longer plan is a finer raster cut short).
        model_kw: More options of :class:`autotune.Optimizer` for the model-based methods
            (``max_length_scale``, ``initial_design``, ``strategy_options`` merged with the method's).

    Returns:
        The run (map errors not yet evaluated: see :func:`evaluate`).
    """
    import torch

    from autotune.optimizer import Optimizer

    inst = _instrument()
    beamline = inst.Beamline(seed=seed, **(beamline_kw or {}))
    run = Run(method, seed)
    start = time.perf_counter()
    if method == "raster":
        for x, y in raster_points(raster_size(raster_plan_s or budget_s, beamline.exposure_s, beamline.speed)):
            m = beamline.measure(x, y)
            run.points.append((m.x, m.y, m.radius, m.clock_s))
            if m.clock_s >= budget_s:
                break
        run.wall_s = time.perf_counter() - start
        return run
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")

    def known_cost(X: Tensor) -> Tensor:  # model space == (x, y) here: the space is [0, 1]^2
        here = torch.tensor(beamline.position, dtype=X.dtype, device=X.device)
        return beamline.exposure_s + (X - here).norm(dim=-1) / beamline.speed

    # max_variance_per_cost is max_variance with the cost option: log sigma(x) - log c(x);
    # thompson_per_cost a posterior sample per unit cost (exploration that follows posterior draws).
    strategy, options = {
        "max_variance_per_cost": ("max_variance", {"cost": "known"}),
        "thompson_per_cost": ("thompson", {"cost": "known"}),
        "ucb_per_cost": ("ucb", {"cost": "known"}),
    }.get(method, (method, {}))
    kw = dict(model_kw or {})
    options = {**options, **kw.pop("strategy_options", {})}
    opt = Optimizer(_space(), strategy, direction="maximize", seed=seed, n_initial=n_initial, known_cost=known_cost,
                    strategy_options=options, **kw)
    while beamline.clock_s < budget_s:
        (s,) = opt.ask(1)
        m = beamline.measure(s.params["x"], s.params["y"])
        opt.tell(s, m.radius, metrics=m.metrics())
        run.points.append((m.x, m.y, m.radius, m.clock_s))
    run.wall_s = time.perf_counter() - start
    return run


def reconstruct(points: Sequence[tuple[float, float, float, float]], grid_n: int = GRID_N) -> np.ndarray:
    """The GP posterior mean of the radius on a ``grid_n x grid_n`` grid (rows: ``y``)."""
    from autotune.optimizer import Optimizer

    g = np.linspace(0.0, 1.0, grid_n)
    if len(points) < 2:
        mean = points[0][2] if points else 50.0
        return np.full((grid_n, grid_n), mean)
    opt = Optimizer(_space(), "max_variance", direction="maximize")
    for x, y, radius, _ in points:
        opt.add({"x": x, "y": y}, radius)
    grid = [{"x": float(x), "y": float(y)} for y in g for x in g]
    mean, _ = opt.predict(grid)
    return np.asarray(mean).reshape(grid_n, grid_n)


def truth(grid_n: int = GRID_N) -> np.ndarray:
    """The true radius map on the grid of :func:`reconstruct`."""
    g = np.linspace(0.0, 1.0, grid_n)
    xx, yy = np.meshgrid(g, g)
    return np.asarray(_instrument().true_radius(xx, yy))


def evaluate(run: Run, checkpoints_s: Sequence[float]) -> Run:
    """Fill in the map RMSE at each checkpoint and the time the narrow feature was first hit."""
    inst = _instrument()
    true_map = truth()
    run.checkpoints_s = [float(t) for t in checkpoints_s]
    run.rmse = []
    for t in checkpoints_s:
        seen = [p for p in run.points if p[3] <= t]
        run.rmse.append(float(np.sqrt(np.mean((reconstruct(seen) - true_map) ** 2))))
    run.feature_s = next((p[3] for p in run.points if inst.in_feature(p[0], p[1])), None)
    return run


def compare(methods: Sequence[str], seeds: Sequence[int], budget_s: float, n_checkpoints: int = 10,
            beamline_kw: dict[str, Any] | None = None, log: Callable[[str], None] | None = None,
            n_initial: int = 4, model_kw: dict[str, Any] | None = None) -> list[Run]:
    """Every method on every seed, evaluated at ``n_checkpoints`` equally spaced instrument times.

    ``n_initial`` and ``model_kw`` go to :func:`steer` (the model-based methods' settings).
    """
    checkpoints = [budget_s * (k + 1) / n_checkpoints for k in range(n_checkpoints)]
    runs = []
    for seed in seeds:
        for method in methods:
            run = evaluate(steer(method, seed, budget_s, beamline_kw, n_initial, model_kw=model_kw), checkpoints)
            runs.append(run)
            if log is not None:
                log(f"seed {seed} {method}: {len(run.points)} measurements, final RMSE {run.rmse[-1]:.2f} A, "
                    f"feature at {run.feature_s} s, {run.wall_s:.0f} s wall")
    return runs


def summary_table(runs: Sequence[Run]) -> str:
    """A markdown table: per method, means over seeds (and the feature hit count)."""
    methods = list(dict.fromkeys(r.method for r in runs))
    n_seeds = len({r.seed for r in runs})
    half = len(runs[0].checkpoints_s) // 2 - 1
    header = (f"| method | measurements | map RMSE at {runs[0].checkpoints_s[half]:.0f} s (A) | "
              f"map RMSE at {runs[0].checkpoints_s[-1]:.0f} s (A) | feature found | time to feature (s) | wall (s) |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    for method in methods:
        rs = [r for r in runs if r.method == method]
        found = [r.feature_s for r in rs if r.feature_s is not None]
        mid = [r.rmse[half] for r in rs]
        end = [r.rmse[-1] for r in rs]
        lines.append(
            f"| {method} | {np.mean([len(r.points) for r in rs]):.0f} | {np.mean(mid):.2f} ± {np.std(mid):.2f} | "
            f"{np.mean(end):.2f} ± {np.std(end):.2f} | {len(found)}/{n_seeds} | "
            f"{'-' if not found else f'{np.median(found):.0f} (median of hits)'} | "
            f"{np.mean([r.wall_s for r in rs]):.0f} |"
        )
    return "\n".join(lines)


def plot(runs: Sequence[Run], path: Path) -> None:
    """Map RMSE against instrument time (mean over seeds, band: min to max), and one seed's maps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r.method for r in runs))
    fig, axes = plt.subplots(1, 1 + len(methods), figsize=(4.2 * (1 + len(methods)), 3.8))
    ax = axes[0]
    for method in methods:
        rs = [r for r in runs if r.method == method]
        t = np.asarray(rs[0].checkpoints_s)
        err = np.asarray([r.rmse for r in rs])
        ax.plot(t, err.mean(0), label=method)
        ax.fill_between(t, err.min(0), err.max(0), alpha=0.2)
    ax.set_xlabel("instrument time (s)")
    ax.set_ylabel("map RMSE (Angstrom)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    seed = runs[0].seed
    for ax, method in zip(axes[1:], methods):
        run = next(r for r in runs if r.method == method and r.seed == seed)
        ax.imshow(reconstruct(run.points), origin="lower", extent=(0, 1, 0, 1), vmin=35, vmax=95, cmap="viridis")
        pts = np.asarray(run.points)
        ax.plot(pts[:, 0], pts[:, 1], "w.-", ms=3, lw=0.3)
        ax.set_title(f"{method} (seed {seed})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and write ``results.md``, ``results.json`` and ``map_error.png``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget-s", type=float, default=600.0, help="instrument seconds per run")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS[:4]))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results"))
    parser.add_argument("--n-initial", type=int, default=4, help="initial-design points of the model-based methods")
    parser.add_argument("--initial-design", choices=("sobol", "random", "lhs", "grid"), default="sobol")
    parser.add_argument("--max-length-scale", type=float, default=None,
                        help="cap on the GP length scale of x and y (sample widths): the feature size to resolve")
    parser.add_argument("--cost-exponent", type=float, default=None, help="cost_exponent of the cost-aware methods")
    parser.add_argument("--beta", type=float, default=None, help="beta of ucb_per_cost")
    args = parser.parse_args(argv)
    model_kw: dict[str, Any] = {"initial_design": args.initial_design}
    if args.max_length_scale is not None:
        model_kw["max_length_scale"] = {"x": args.max_length_scale, "y": args.max_length_scale}
    options = {"cost_exponent": args.cost_exponent, "beta": args.beta}
    model_kw["strategy_options"] = {k: v for k, v in options.items() if v is not None}
    start = time.perf_counter()
    runs = compare(args.methods, args.seeds, args.budget_s, log=lambda line: print(line, flush=True),
                   n_initial=args.n_initial, model_kw=model_kw)
    args.out.mkdir(parents=True, exist_ok=True)
    table = summary_table(runs)
    command = "python studies/beamline/steer.py " + " ".join(sys.argv[1:] if argv is None else argv)
    (args.out / "results.md").write_text(
        f"{table}\n\nSeeds {args.seeds}, budget {args.budget_s:g} instrument seconds per run, "
        f"{time.perf_counter() - start:.0f} s wall in all. Command: `{command}`\n")
    (args.out / "results.json").write_text(json.dumps([vars(r) for r in runs], indent=1))
    plot(runs, args.out / "map_error.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
