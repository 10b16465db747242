"""Side-by-side benchmarks of autotune against random search, Optuna (TPE, GP) and Ax.

Run the full suite (resumable: finished runs are cached under ``benchmarks/results/compare_raw``)::

    OMP_NUM_THREADS=1 python -m benchmarks.compare --size full --split dev --jobs 2

(``--split confirm`` for the confirmation half, ``all`` for both) and regenerate the report from the cache alone with ``--report-only``. Parts:

- :mod:`~benchmarks.compare.problems`: test problems with known optima (BoTorch's synthetic
  functions, BBOB from coco-experiment, shifted boxes), mixed, constrained, cost-varying, scikit-learn
  tuning problems and an exhaustive MLP table; each in the development or the confirmation half.
- :mod:`~benchmarks.compare.adapters`: one small ask/tell adapter per optimiser.
- :mod:`~benchmarks.compare.runner`: sequential, synchronous-batch and asynchronous loops
  (simulated trial durations), the ``ask()`` time/memory probe, the JSON cache.
- :mod:`~benchmarks.compare.report`: regret statistics, tables, PNG plots, the goals.
"""
