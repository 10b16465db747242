"""Studies: the study file (:class:`StudyConfig`), the driver that runs it (:class:`Study`),
ask/tell from outside (:class:`RemoteStudy`) and the MLflow record they share (:class:`StudyRecord`).

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
from autotune.study._pareto import front_summary
from autotune.study._record import BestTrial, Recovery, StudyRecord, StudyStatus
from autotune.study._remote import RemoteStudy
from autotune.study._study import FAIL_FAST_TRIALS, Study, StudySummary
from autotune.study._trials import filter_rows, read_reports, sort_rows, study_url, trials_frame, trials_table

__all__ = [
    "FAIL_FAST_TRIALS",
    "BestTrial",
    "BudgetConfig",
    "ExecutorConfig",
    "ObjectiveConfig",
    "ParallelismConfig",
    "Recovery",
    "RemoteStudy",
    "StrategyConfig",
    "Study",
    "StudyConfig",
    "StudyRecord",
    "StudyStatus",
    "StudySummary",
    "TrialConfig",
    "filter_rows",
    "front_summary",
    "load_study_config",
    "read_reports",
    "sort_rows",
    "study_url",
    "trials_frame",
    "trials_table",
]
