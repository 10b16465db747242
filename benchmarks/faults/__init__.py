"""Fault injection against real ``autotune`` processes (issue 13), black-box.

Each module drives the ``autotune`` command in subprocesses, injects one kind of fault and
measures what the MLflow record and the trial folders hold afterwards:

- :mod:`benchmarks.faults.driver_kills`: SIGKILL of the driver at random moments of a study,
  during the very first start (store creation), and two first starts on one fresh store.
- :mod:`benchmarks.faults.server_outage`: the ``mlflow server`` of a study killed mid-study
  and restarted.
- :mod:`benchmarks.faults.run_all`: every suite at one size, figures to
  ``benchmarks/results/faults.md``.

Short sizes run in ``tests/faults/``; the long sizes are the issue's figures.
"""
