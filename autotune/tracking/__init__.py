"""MLflow as the study record: write trials as they run, read a study back to resume it.

A study is one MLflow experiment holding one parent run (the study: its file, config,
versions and plots) and one child run per trial (typed params, per-step and final metrics,
state, failure reason, logs). The driver owns the record; workers never touch MLflow.

Importing this package imports neither mlflow nor matplotlib; they load on first use.
"""

from autotune.tracking._lock import (
    LockOwner,
    StudyLockedError,
    read_lock_owner,
    record_lock,
    record_lock_path,
)
from autotune.tracking._map import MAP_FILENAME, plot_posterior_map, refresh_posterior_map
from autotune.tracking._plots import (
    PLOTS_ARTIFACT_DIR,
    plot_acquisition_trace,
    plot_convergence,
    plot_parallel_coordinates,
    plot_pareto_front,
    refresh_study_plots,
)
from autotune.tracking._store import check_tracking_server, default_tracking_uri, ensure_store, sqlite_path
from autotune.tracking._tracker import (
    METRIC_PARAM_PREFIX,
    METRIC_PROPOSAL_PREFIX,
    TAG_ACQ_VALUE,
    TAG_DEVICE,
    TAG_DURATION_S,
    TAG_FAILURE_REASON,
    TAG_PARETO,
    TAG_PRED_MEAN,
    TAG_PRED_STD,
    TAG_REFERENCE_POINT,
    TAG_REQUEUE,
    TAG_SEED,
    TAG_STATE,
    TAG_STRATEGY,
    TAG_TRIAL_ID,
    LoadedTrial,
    MlflowTracker,
    failure_line,
    package_versions,
)
from autotune.tracking._views import (
    NOTE_TAG,
    RUNS_VIEW_KEY,
    runs_view_state,
    runs_view_url,
    study_note,
)

__all__ = [
    "MAP_FILENAME",
    "NOTE_TAG",
    "RUNS_VIEW_KEY",
    "METRIC_PARAM_PREFIX",
    "METRIC_PROPOSAL_PREFIX",
    "PLOTS_ARTIFACT_DIR",
    "TAG_ACQ_VALUE",
    "TAG_DEVICE",
    "TAG_DURATION_S",
    "TAG_FAILURE_REASON",
    "TAG_PARETO",
    "TAG_PRED_MEAN",
    "TAG_PRED_STD",
    "TAG_REFERENCE_POINT",
    "TAG_REQUEUE",
    "TAG_SEED",
    "TAG_STATE",
    "TAG_STRATEGY",
    "TAG_TRIAL_ID",
    "LoadedTrial",
    "LockOwner",
    "MlflowTracker",
    "StudyLockedError",
    "check_tracking_server",
    "default_tracking_uri",
    "ensure_store",
    "failure_line",
    "package_versions",
    "plot_acquisition_trace",
    "plot_convergence",
    "plot_parallel_coordinates",
    "plot_pareto_front",
    "plot_posterior_map",
    "read_lock_owner",
    "record_lock",
    "record_lock_path",
    "refresh_posterior_map",
    "refresh_study_plots",
    "runs_view_state",
    "runs_view_url",
    "sqlite_path",
    "study_note",
]
