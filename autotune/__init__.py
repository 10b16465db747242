"""autotune: GP-based Bayesian optimisation for neural networks and experiments.

Importing this package imports no torch, botorch or mlflow: public names are resolved
lazily on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Optimizer": "autotune.optimizer",
    "Suggestion": "autotune.optimizer",
    "SearchSpace": "autotune.space",
    "Float": "autotune.space",
    "Int": "autotune.space",
    "Categorical": "autotune.space",
    "Ordinal": "autotune.space",
    "Bool": "autotune.space",
    "Fixed": "autotune.space",
    "Condition": "autotune.space",
    "load_space": "autotune.space",
    "TrialState": "autotune.trial",
    "Observation": "autotune.trial",
    "strategy_names": "autotune.strategies",
    "get_strategy": "autotune.strategies",
    "OutcomeConstraint": "autotune.strategies",
    "report": "autotune.report",
    "should_stop": "autotune.report",
    "TrialStopped": "autotune.report",
    "Study": "autotune.study",
    "RemoteStudy": "autotune.study",
    "StudyConfig": "autotune.study",
    "load_study_config": "autotune.study",
}

__all__ = [
    "Bool",
    "Categorical",
    "Condition",
    "Fixed",
    "Float",
    "Int",
    "Observation",
    "Optimizer",
    "Ordinal",
    "OutcomeConstraint",
    "RemoteStudy",
    "SearchSpace",
    "Study",
    "StudyConfig",
    "Suggestion",
    "TrialState",
    "TrialStopped",
    "get_strategy",
    "load_space",
    "load_study_config",
    "report",
    "should_stop",
    "strategy_names",
    "__version__",
]

if TYPE_CHECKING:
    from autotune.optimizer import Optimizer, Suggestion
    from autotune.space import Bool, Categorical, Condition, Fixed, Float, Int, Ordinal, SearchSpace, load_space
    from autotune.strategies import OutcomeConstraint, get_strategy, strategy_names
    from autotune.study import RemoteStudy, Study, StudyConfig, load_study_config
    from autotune.trial import Observation, TrialState


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'autotune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
