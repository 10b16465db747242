"""Work with the tools users already have: Optuna and Ax.

* :mod:`autotune.integrations.optuna`: :class:`~autotune.integrations.optuna.AutotuneSampler`
  (any autotune strategy inside an Optuna study), and Optuna studies read as / written from a
  :class:`History` (``load_study``, ``save_study``). Needs ``pip install 'autotune[optuna]'``.
* :mod:`autotune.integrations.ax`: Ax experiments (JSON) read as / written from a
  :class:`History` (``load_experiment``, ``save_experiment``). Needs ``pip install 'autotune[ax]'``.
* Here: :class:`History`, :func:`import_trials` (into an ``Optimizer`` or a ``Study``'s MLflow
  record) and :func:`study_history` (out of either).

Importing this package imports neither optuna nor ax (nor torch or mlflow); each submodule
imports its tool, and a missing one raises :class:`~autotune.exceptions.MissingExtraError`
naming the extra to install.

Example:
    >>> from autotune.integrations import import_trials
    >>> from autotune.integrations.optuna import load_study
    >>> import_trials(study, load_study("sqlite:///optuna.db", "my-study"))  # doctest: +SKIP
"""

from autotune.integrations._history import (
    TAG_IMPORTED_FROM,
    History,
    import_trials,
    study_history,
)

__all__ = ["TAG_IMPORTED_FROM", "History", "import_trials", "study_history"]
