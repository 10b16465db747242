"""Early stopping: rules that stop a running trial from its reported learning curve.

The driver feeds every streamed ``report(step=..., <metric>=...)`` of every trial to one
:class:`StoppingRule` and stops the trials it condemns (state ``pruned``). The rules are pure
logic over the curves seen so far, deterministic, and decide each (trial, rung) once, so that
a resumed driver rebuilds the same state from the record (:meth:`StoppingRule.observe` with
``decided=True``) without deciding twice.

* :class:`MedianRule`: the median stopping rule of Google Vizier (Golovin et al., 2017, "Google
  Vizier: A Service for Black-Box Optimization", KDD).
* :class:`AshaRule`: asynchronous successive halving (Li et al., 2020, "A System for Massively
  Parallel Hyperparameter Tuning", MLSys), in its stopping form (as Ray Tune's
  ``ASHAScheduler`` and Syne Tune's stopping-type ASHA): at each rung a trial continues only if
  it is in the best ``1/eta`` of the values recorded at that rung.
* :class:`HyperbandRule`: several ASHA brackets with growing minimum steps (Li et al., 2018,
  "Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization", JMLR), a trial's
  bracket fixed by its id.
* Several objectives (ASHA and Hyperband): a trial is judged at each rung by its Pareto front
  among the trials recorded there (non-dominated sorting), so a trial no other dominates is
  never stopped (Schmucker et al., 2021, "Multi-objective Asynchronous Successive Halving").

Importing this package is cheap (standard library only).
"""

from autotune.stopping._rules import (
    AshaRule,
    Decision,
    HyperbandRule,
    MedianRule,
    NoStopping,
    StoppingRule,
    Value,
    make_rule,
    pareto_ranks,
)

__all__ = ["AshaRule", "Decision", "HyperbandRule", "MedianRule", "NoStopping", "StoppingRule", "Value", "make_rule",
           "pareto_ranks"]
