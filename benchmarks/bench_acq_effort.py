"""What each shortcut in one ``ask()`` costs and saves, measured side by side on Hartmann-6.

Two shortcuts make ``ask()`` cheap at large n; this script measures both against the full
computation, in one run, on one CPU thread::

    OMP_NUM_THREADS=1 python benchmarks/bench_acq_effort.py --n 200 1000

1. **Acquisition effort** (:class:`autotune.strategies._optimize.AcqOptions`): for each
   setting of ``num_restarts``/``raw_samples``/``maxiter``, the LogEI value reached on a fixed
   fitted GP, as a gap to the best value any setting found (``0`` = as good as the most
   expensive), the number of acquisition evaluations, and the seconds.
2. **Stale hyperparameters** (``GPFitter.refit_fraction``): a GP fitted on ``n - k`` points
   and conditioned on ``k`` more, against one re-fitted on all ``n``: the held-out predictive
   log likelihood on 500 fresh points and the seconds of each.

Counts of evaluations and likelihood gaps do not depend on machine load. Seconds are the
process's CPU seconds (``time.process_time``, one thread), which a busy machine inflates far
less than wall time; ratios are measured in the same process. Results go to
``benchmarks/results/acq_effort.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--seeds", type=int, default=3, help="acquisition optimisations per setting")
    ap.add_argument("--stale", type=int, nargs="+", default=[1, 4, 20])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "acq_effort.md"))
    args = ap.parse_args(argv)

    import botorch
    import torch
    from botorch.acquisition.analytic import LogExpectedImprovement
    from botorch.test_functions import Hartmann

    from autotune import Float, SearchSpace
    from autotune.models import GPFitter
    from autotune.strategies._optimize import AcqOptions, optimize_acquisition

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    h = Hartmann(dim=6)
    space = SearchSpace([Float(f"x{i}", low=0.0, high=1.0) for i in range(6)])
    settings = [
        AcqOptions(8, 512, 200, True),
        AcqOptions(16, 1024, 200, False),
        AcqOptions(8, 512, 200, False),
        AcqOptions(4, 512, 200, True),
        AcqOptions(4, 256, 200, True),
        AcqOptions(8, 512, 50, True),
        AcqOptions(4, 256, 50, True),
        AcqOptions(2, 256, 50, True),
    ]
    lines = [
        "# Cost and effect of ask() shortcuts (Hartmann-6, d = 6)",
        "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/bench_acq_effort.py --n {' '.join(map(str, args.n))}`  ",
        f"Machine: {platform.machine()}, {platform.python_version()}, torch {torch.__version__}, "
        f"botorch {botorch.__version__}; 1 thread. Seconds are CPU seconds of this process.",
        "",
    ]
    for n in args.n:
        g = torch.Generator().manual_seed(n)
        X = torch.rand(n, 6, generator=g, dtype=torch.float64)
        Y = -h(X).unsqueeze(-1)  # maximise -Hartmann
        fitter = GPFitter(space, refit_fraction=0.0)
        model = fitter.fit("objective", X, Y)
        best_f = float(Y.max())
        rows = []
        for opts in settings:
            vals, evals, secs = [], [], []
            for seed in range(args.seeds):
                acqf = LogExpectedImprovement(model, best_f=best_f)
                count = [0]
                forward = acqf.forward

                def counting(x: torch.Tensor, _f=forward, _c=count) -> torch.Tensor:  # noqa: ANN001
                    _c[0] += x.shape[0]
                    return _f(x)

                acqf.forward = counting  # type: ignore[method-assign]
                torch.manual_seed(seed)
                t0 = time.process_time()
                _, v = optimize_acquisition(acqf, space, 1, opts)
                secs.append(time.process_time() - t0)
                vals.append(v)
                evals.append(count[0])
            rows.append((opts, statistics.median(vals), statistics.median(evals), statistics.median(secs), min(vals)))
        top = max(r[1] for r in rows)
        lines += [
            f"## Acquisition effort at n = {n} (LogEI on a fitted GP; median of {args.seeds} seeds)",
            "",
            "| restarts | raw samples | maxiter | sample around best | LogEI gap to best (median) | worst gap | evaluations | CPU s | CPU ratio |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        base_s = rows[0][3]
        for opts, v, ev, s, worst in rows:
            lines.append(
                f"| {opts.num_restarts} | {opts.raw_samples} | {opts.maxiter} | {opts.sample_around_best} | "
                f"{top - v:.3g} | {top - worst:.3g} | {ev:.0f} | {s:.2f} | {s / base_s:.2f} |"
            )
        lines.append("")

        # Stale hyperparameters: fit on n - k, condition on k more, vs refit on n.
        Xt = torch.rand(500, 6, generator=g, dtype=torch.float64)
        Yt = -h(Xt).unsqueeze(-1)
        lines += [
            f"## Stale hyperparameters at n = {n} (held-out predictive log likelihood per point, 500 points)",
            "",
            "| points since the last fit | refit: log lik | conditioned: log lik | difference | refit CPU s | conditioned CPU s |",
            "|---|---|---|---|---|---|",
        ]
        for k in args.stale:
            stale = GPFitter(space, refit_fraction=0.0)
            stale.fit("objective", X[: n - k], Y[: n - k])
            stale.refit_fraction = 1.0  # the next call only conditions
            t0 = time.process_time()
            m_cond = stale.fit("objective", X, Y)
            with torch.no_grad():
                m_cond.posterior(Xt[:1])
            t_cond = time.process_time() - t0
            assert stale.last_outcome["objective"] == "conditioned"
            stale.refit_fraction = 0.0
            t0 = time.process_time()
            m_fit = stale.fit("objective", X, Y)
            with torch.no_grad():
                m_fit.posterior(Xt[:1])
            t_fit = time.process_time() - t0
            ll = []
            for m in (m_fit, m_cond):
                with torch.no_grad():
                    post = m.posterior(Xt, observation_noise=True)
                    dist = torch.distributions.Normal(post.mean, post.variance.sqrt())
                    ll.append(float(dist.log_prob(Yt).mean()))
            lines.append(f"| {k} | {ll[0]:.4f} | {ll[1]:.4f} | {ll[1] - ll[0]:+.4f} | {t_fit:.2f} | {t_cond:.2f} |")
        lines.append("")
        print("\n".join(lines[-40:]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
