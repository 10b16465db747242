"""Studies: the study file (:class:`StudyConfig`) and the driver that runs it (:class:`Study`).

Importing this package imports no torch, botorch or mlflow; they load when a study is
validated or run.
"""

from autotune.study._config import (
    BudgetConfig,
    ExecutorConfig,
    ObjectiveConfig,
    ParallelismConfig,
    StrategyConfig,
    StudyConfig,
    TrialConfig,
    load_study_config,
)
from autotune.study._remote import RemoteStudy
from autotune.study._study import BestTrial, Study, StudyStatus, StudySummary

__all__ = [
    "BestTrial",
    "BudgetConfig",
    "ExecutorConfig",
    "ObjectiveConfig",
    "ParallelismConfig",
    "RemoteStudy",
    "StrategyConfig",
    "Study",
    "StudyConfig",
    "StudyStatus",
    "StudySummary",
    "TrialConfig",
    "load_study_config",
]
