"""Side-by-side benchmarks of autotune against random search, Optuna (TPE, GP) and Ax.

Run the full suite (resumable: finished runs are cached under ``benchmarks/results/compare_raw``)::

    OMP_NUM_THREADS=1 python -m benchmarks.compare --size full --jobs 2

and regenerate the report from the cache alone with ``--report-only``. Parts:

- :mod:`~benchmarks.compare.problems`: test problems with known optima (BoTorch's synthetic
  functions), mixed, constrained, cost-varying and a real scikit-learn tuning problem.
- :mod:`~benchmarks.compare.adapters`: one small ask/tell adapter per optimiser.
- :mod:`~benchmarks.compare.runner`: sequential, synchronous-batch and asynchronous loops
  (simulated trial durations), the ``ask()`` time/memory probe, the JSON cache.
- :mod:`~benchmarks.compare.report`: regret statistics, tables, PNG plots, the goals.
"""
