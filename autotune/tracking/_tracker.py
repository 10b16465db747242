"""The study record in MLflow: one experiment per study, one parent run, one child run per trial.

The driver owns the record; workers never touch MLflow. Everything goes through an explicit
:class:`mlflow.MlflowClient` (no ``mlflow.start_run`` global state), so a tracker is safe to
use from the driver thread while other code uses MLflow's fluent API.

Layout of a study in MLflow::

    experiment <study_name>
    └── run <study_name>              tag autotune.role=study; study file, config.yaml, plots/
        ├── run trial-0               tags mlflow.parentRunId, autotune.trial_id, autotune.state,
        ├── run trial-1               autotune.params (typed JSON), autotune.metrics (final, JSON)
        └── ...

The ``autotune.*`` tags are the source of truth for resume: MLflow params are strings and
MLflow metrics keep only finite floats, so the exact typed values live in JSON tags (or,
when a value is longer than MLflow's tag limit, in a JSON artifact the tag points to).
For the UI, numeric parameters are also metrics (``param/<name>``) and so are the model's
view of a proposal (``proposal/acq_value``, ``proposal/pred_mean``, ``proposal/pred_std``),
so that they sort, filter and chart.

What is read back is not trusted: anyone who can write to the tracking server can write
tags. An ``@artifact:`` reference must stay inside its run's artifact store, JSON and
numbers are parsed defensively, and a trial whose typed parameters cannot be read is left
out of the model with a warning (:attr:`LoadedTrial.unreadable`), never a crash.

Writes survive a tracking server that goes away for a while: they are delivered in order
by one writer thread; while the server does not answer they are kept in memory (bounded)
and in a JSON-lines spool file, retried with backoff, and sent when it is back (see
:class:`MlflowTracker`).
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.metadata
import json
import logging
import math
import numbers
import os
import platform
import posixpath
import re
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Any, Literal

from autotune.exceptions import ConfigError, TrackingError
from autotune.tracking._store import default_artifact_location, sqlite_path
from autotune.trial import Observation, TrialResult, TrialState

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

logger = logging.getLogger(__name__)

TAG_PARENT_RUN_ID = "mlflow.parentRunId"
TAG_ROLE = "autotune.role"
TAG_STUDY = "autotune.study"
TAG_TRIAL_ID = "autotune.trial_id"
TAG_STATE = "autotune.state"
TAG_PARAMS = "autotune.params"
TAG_METRICS = "autotune.metrics"
TAG_FAILURE_REASON = "autotune.failure_reason"
TAG_NONFINITE = "autotune.nonfinite_metrics"
TAG_REQUEUE = "autotune.requeue"
TAG_DEVICE = "autotune.device"
TAG_DURATION_S = "autotune.duration_s"
TAG_STRATEGY = "autotune.strategy"
TAG_SEED = "autotune.seed"
TAG_VERSION_PREFIX = "autotune.version."
TAG_ACQ_VALUE = "autotune.acq_value"
TAG_PRED_MEAN = "autotune.pred_mean"
TAG_PRED_STD = "autotune.pred_std"
TAG_PARETO = "autotune.pareto"
"""On a trial run of a multi-objective study: ``true`` while the trial is on the Pareto front, else ``false``."""
TAG_REFERENCE_POINT = "autotune.reference_point"
"""On the parent run of a multi-objective study: the hypervolume's reference point (JSON by metric)."""

#: Numeric parameters are also logged as metrics ``param/<name>`` (step 0), for the UI.
METRIC_PARAM_PREFIX = "param/"
#: The proposal's acquisition value and prediction as metrics (``proposal/acq_value``, ...):
#: at step 0 on the trial's run and at step ``trial_id`` on the study run (a curve over trials).
METRIC_PROPOSAL_PREFIX = "proposal/"
_PROPOSAL_TAGS = {TAG_ACQ_VALUE: "acq_value", TAG_PRED_MEAN: "pred_mean", TAG_PRED_STD: "pred_std"}

ROLE_STUDY = "study"
DRIVER_DIED = "driver died"

# MLflow's limits (mlflow.utils.validation); repeated so that importing this module
# imports no mlflow. tests/tracking checks that they still agree.
MAX_TAG_VAL_LENGTH = 8000
MAX_PARAM_VAL_LENGTH = 6000
MAX_ENTITY_KEY_LENGTH = 250
_SEARCH_PAGE_SIZE = 1000
_ARTIFACT_REF = "@artifact:"
_MAX_JSON_ARTIFACT_BYTES = 64 * 2**20  # a params/metrics JSON artifact larger than this is refused
_FAILURE_LINE_CHARS = 500
_VERSIONED_PACKAGES = ("autotune", "torch", "botorch", "gpytorch", "mlflow")
_INVALID_KEY_CHARS = re.compile(r"[^\w.\- /]")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")

# The writer: how long a caller waits for one write before the server counts as down, the
# retry backoff while it is down, the /health probe's timeout, and the memory bound.
WRITE_TIMEOUT_S = 20.0
SERVER_WAIT_S = 300.0
MAX_BUFFERED_WRITES = 10_000
_RETRY_MIN_S = 0.5
_RETRY_MAX_S = 10.0
_PROBE_TIMEOUT_S = 2.0
_COALESCE_METRICS = 5000  # kept metric writes sent together after an outage, at most this many values
SPOOL_SUFFIX = ".mlflow-unsent.jsonl"

RunStatus = Literal["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]

_RUN_STATUS: dict[TrialState, RunStatus] = {
    TrialState.COMPLETED: "FINISHED",
    TrialState.FAILED: "FAILED",
    TrialState.OOM: "FAILED",
    TrialState.NONFINITE: "FAILED",
    TrialState.TIMEOUT: "FAILED",
    TrialState.KILLED: "KILLED",
    TrialState.PRUNED: "KILLED",  # stopped early by the rule: MLflow's "stopped before its end"
}
_STATE_OF_STATUS: dict[str, TrialState] = {
    "SCHEDULED": TrialState.PENDING,
    "RUNNING": TrialState.RUNNING,
    "FINISHED": TrialState.COMPLETED,
    "FAILED": TrialState.FAILED,
    "KILLED": TrialState.KILLED,
}


@dataclasses.dataclass(frozen=True)
class LoadedTrial:
    """One trial as recorded in MLflow: what resume rebuilds the optimiser's history from.

    Attributes:
        trial_id: The study-wide trial number.
        run_id: The MLflow run of the trial.
        params: The trial's parameters with their original types (ints, bools, exact floats);
            for an unreadable trial, MLflow's string params (for display only).
        state: The trial state recorded by the driver.
        metrics: The final metrics, exactly as passed to :meth:`MlflowTracker.end_trial`
            (non-finite values included); the latest logged values for an unfinished trial.
        tags: All the run's tags.
        status: The MLflow run status: ``"RUNNING"``, ``"FINISHED"``, ``"FAILED"`` or ``"KILLED"``.
        unreadable: ``None``, or why the trial's typed parameters cannot be trusted (a
            non-JSON ``autotune.params`` tag, an ``@artifact:`` reference outside the run's
            artifacts, ...). Such a trial is never learned from: :meth:`value` is ``None``.
    """

    trial_id: int
    run_id: str
    params: dict[str, Any]
    state: TrialState
    metrics: dict[str, float]
    tags: dict[str, str]
    status: str
    unreadable: str | None = None

    @property
    def requeue(self) -> bool:
        """Whether the driver should run these params again (``close_orphans("requeue")``)."""
        return self.unreadable is None and self.tags.get(TAG_REQUEUE) == "true"

    def value(self, objective: str) -> float | None:
        """The objective value, or ``None`` unless the trial completed with a finite value.

        Args:
            objective: The name of the objective metric.

        Returns:
            The value in the user's units, or ``None``.
        """
        value = self.metrics.get(objective)
        if (
            self.unreadable is not None
            or self.state is not TrialState.COMPLETED
            or value is None
            or not math.isfinite(value)
        ):
            return None
        return float(value)

    def float_tag(self, key: str) -> float | None:
        """A numeric tag (e.g. :data:`TAG_ACQ_VALUE`) as a finite float, or ``None``.

        Args:
            key: The tag.

        Returns:
            The value; ``None`` when the tag is absent, not a number or not finite.
        """
        return _finite_float(self.tags.get(key))

    def to_observation(self, objective: str) -> Observation:
        """The trial as the optimiser sees it (for resume).

        Args:
            objective: The name of the objective metric.

        Returns:
            An :class:`~autotune.trial.Observation` with the same params, state and metrics.

        Raises:
            TrackingError: The trial is unreadable (see :attr:`unreadable`).
        """
        if self.unreadable is not None:
            raise TrackingError(
                f"run {self.run_id} (trial {self.trial_id}): {self.unreadable}. Fix: leave it "
                "out of the model (load_trials() does unless include_unreadable=True)."
            )
        value = self.value(objective)
        if self.state is TrialState.PRUNED:  # its last reported value: a low-fidelity observation
            value = _finite_float(self.metrics.get(objective))
        return Observation(
            params=dict(self.params),
            value=value,
            state=self.state,
            metrics=dict(self.metrics),
            trial_id=self.trial_id,
        )


class MlflowTracker:
    """Writes a study to MLflow and reads it back.

    Writes go, in order, through one writer thread. While the store answers, every write is
    synchronous: the caller waits for it and gets its errors, as if it called MLflow itself.
    When a write fails with a connection error (or gets no answer within
    ``write_timeout_s``), the store counts as down: a warning is logged once, that write and
    every later one (metrics, params, tags, run states, artifacts) is kept, in order, in
    memory (at most ``max_buffered_writes``; the rest is read back from disk) and in the
    JSON-lines spool file :attr:`spool_path`, and the writer retries with backoff (probing
    the server's ``/health``), sending everything when the store is back. Opening a trial's
    run needs its run id from the server, so :meth:`start_trial` waits (up to
    ``server_wait_s``); :meth:`end_study` waits for the backlog too, and if the store never
    came back it logs and raises a :class:`~autotune.exceptions.TrackingError` naming the
    spool file. The next :meth:`start_study` on the same spool file (e.g. ``autotune
    resume``) sends what a dead driver left in it.

    Args:
        tracking_uri: The MLflow tracking URI (``sqlite:///...``, ``http://host:port``, ...).
            Call :func:`~autotune.tracking.ensure_store` on it once before tracking.
        study_name: The study; it names the MLflow experiment and the parent run.
        artifact_location: Where a *new* experiment stores artifacts. ``None``: beside the
            database for SQLite stores (``mlartifacts/``), the server's choice otherwise.
        spool_dir: Where writes are kept while the store does not answer (the study's output
            directory). ``None``: beside a SQLite database, else the current directory.
        write_timeout_s: How long a write may take before the store counts as down.
        server_wait_s: How long :meth:`start_trial` and :meth:`end_study` wait for a store
            that is down.
        max_buffered_writes: How many unsent writes are held in memory during an outage.

    Example:
        >>> tracker = MlflowTracker(default_tracking_uri("runs/demo"), "demo")  # doctest: +SKIP
        >>> tracker.start_study(config, "studies/demo.yaml")  # doctest: +SKIP
    """

    def __init__(
        self,
        tracking_uri: str,
        study_name: str,
        artifact_location: str | None = None,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        write_timeout_s: float = WRITE_TIMEOUT_S,
        server_wait_s: float = SERVER_WAIT_S,
        max_buffered_writes: int = MAX_BUFFERED_WRITES,
    ) -> None:
        self._tracking_uri = tracking_uri
        self.study_name = study_name
        self.artifact_location = artifact_location
        self.spool_dir = spool_dir
        self.write_timeout_s = write_timeout_s
        self.server_wait_s = server_wait_s
        self.max_buffered_writes = max_buffered_writes
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._parent_run_id: str | None = None
        self._next_step: dict[str, int] = {}
        # Per trial run, the last (step, timestamp in ms) of each reported metric (a curve).
        self._curves: dict[str, dict[str, tuple[int, int]]] = {}
        self._writer_instance: _RecordWriter | None = None
        self._warned: set[tuple[str, str]] = set()

    # -- identity ---------------------------------------------------------------------------

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI."""
        return self._tracking_uri

    @property
    def experiment_id(self) -> str:
        """The study's MLflow experiment id (after :meth:`start_study` or :meth:`find_study`)."""
        if self._experiment_id is None:
            raise self._not_started()
        return self._experiment_id

    @property
    def parent_run_id(self) -> str:
        """The study's parent run id (after :meth:`start_study` or :meth:`find_study`)."""
        if self._parent_run_id is None:
            raise self._not_started()
        return self._parent_run_id

    @property
    def client(self) -> MlflowClient:
        """The MLflow client bound to :attr:`tracking_uri` (created on first use)."""
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self._tracking_uri)
        return self._client

    @property
    def spool_path(self) -> Path:
        """The JSON-lines file that keeps unsent writes while the store does not answer."""
        if self.spool_dir is not None:
            folder = Path(self.spool_dir)
        else:
            db = sqlite_path(self._tracking_uri)
            folder = db.resolve().parent if db is not None else Path.cwd()
        safe = re.sub(r"[^\w.\-]", "_", self.study_name)[:100] or "study"
        return folder.resolve() / f"{safe}{SPOOL_SUFFIX}"

    @property
    def unsent_writes(self) -> int:
        """How many writes wait for the store (0 while it answers)."""
        return 0 if self._writer_instance is None else self._writer_instance.backlog()

    @property
    def _writer(self) -> _RecordWriter:
        if self._writer_instance is None:
            self._writer_instance = _RecordWriter(
                self._tracking_uri,
                lambda: self.client,
                self.spool_path,
                self.write_timeout_s,
                self.max_buffered_writes,
            )
        return self._writer_instance

    # -- the study --------------------------------------------------------------------------

    def find_study(self) -> str | None:
        """Find the study's experiment and parent run without creating anything.

        Returns:
            The parent run id, or ``None`` if the study has not been started in this store.

        Raises:
            TrackingError: The store cannot be read, or the experiment was deleted.
        """
        run = self._find_study_run()
        return None if run is None else run.info.run_id

    def _find_study_run(self) -> Run | None:
        from mlflow.exceptions import MlflowException

        try:
            experiment = self.client.get_experiment_by_name(self.study_name)
        except MlflowException as exc:
            raise TrackingError(
                f"{self._tracking_uri}: cannot read experiment {self.study_name!r} ({exc}). "
                "Fix: check the URI and run ensure_store() on it first."
            ) from exc
        if experiment is None:
            return None
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(
                f"{self._tracking_uri}: experiment {self.study_name!r} (id "
                f"{experiment.experiment_id}) is deleted. Fix: restore it with `mlflow "
                f"experiments restore --experiment-id {experiment.experiment_id}`, or use "
                "another study name."
            )
        self._experiment_id = experiment.experiment_id
        runs = self.client.search_runs(
            [experiment.experiment_id],
            f"tags.`{TAG_ROLE}` = '{ROLE_STUDY}'",
            max_results=2,
            order_by=["attributes.start_time ASC"],
        )
        if not runs:
            return None
        if len(runs) > 1:
            warnings.warn(
                f"experiment {self.study_name!r} holds several study runs; using the oldest, "
                f"{runs[0].info.run_id}. Fix: delete the others in the MLflow UI.",
                stacklevel=3,
            )
        self._parent_run_id = runs[0].info.run_id
        return runs[0]

    def start_study(
        self,
        config: Mapping[str, Any],
        study_file: str | os.PathLike[str] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        """Create the study's experiment and parent run, or find them again on resume.

        The resolved config is written to ``study/config.yaml`` and the study file to
        ``study/`` (the latest call wins on resume). The parent run is tagged with the
        strategy and seed (from ``tags``, else from the config's ``strategy``/``seed`` keys)
        and the versions of python, autotune, torch, botorch, gpytorch and mlflow. Writes a
        previous driver left unsent in :attr:`spool_path` are sent first.

        Args:
            config: The resolved study config.
            study_file: The study file as written by the user, if any.
            tags: Extra parent-run tags; non-string values are written as JSON.

        Returns:
            The parent run id.

        Raises:
            TrackingError: The store cannot be used.
        """
        run = self._find_study_run()
        if run is None:
            run = self.client.create_run(
                self._experiment_id or self._create_experiment(),
                run_name=self.study_name,
                tags={TAG_ROLE: ROLE_STUDY, TAG_STUDY: self.study_name},
            )
            self._parent_run_id = run.info.run_id
        self._writer.replay_spool()
        if run.info.status != "RUNNING":
            self._writer.submit({"op": "update_run", "run_id": run.info.run_id, "status": "RUNNING"})
        run_id: str = run.info.run_id
        self._log_text(run_id, _dump_config(config), "study/config.yaml")
        if study_file is not None:
            self._log_path(run_id, Path(study_file), "study")
        study_tags: dict[str, Any] = {
            TAG_VERSION_PREFIX + name: version for name, version in package_versions().items()
        }
        strategy = config.get("strategy")
        if isinstance(strategy, Mapping):
            strategy = strategy.get("name")
        if strategy is not None:
            study_tags[TAG_STRATEGY] = strategy
        if config.get("seed") is not None:
            study_tags[TAG_SEED] = config["seed"]
        self.set_study_tags({**study_tags, **(tags or {})})
        return run_id

    def end_study(self, status: Literal["FINISHED", "FAILED", "KILLED"] = "FINISHED") -> None:
        """Close the parent run and send every write still waiting for the store.

        Args:
            status: The final MLflow status of the study run.

        Raises:
            TrackingError: The store did not come back within ``server_wait_s``; the error
                (also logged) says how many writes are kept, and where.
        """
        self._writer.submit({"op": "set_terminated", "run_id": self.parent_run_id, "status": status})
        self.flush()

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every write has reached the store.

        Args:
            timeout_s: How long to wait for a store that does not answer; ``None``:
                ``server_wait_s`` (or a few seconds when an earlier wait already gave up).

        Raises:
            TrackingError: Writes are still unsent after the wait; they stay in
                :attr:`spool_path` (the error, also logged, says how many and what).
        """
        writer = self._writer
        if timeout_s is None:
            timeout_s = self.write_timeout_s if writer.gave_up else self.server_wait_s
        if writer.flush(timeout_s):
            return
        writer.gave_up = True
        message = (
            f"{self._tracking_uri}: the MLflow tracking store did not answer for "
            f"{writer.outage_s():.0f} s ({writer.outage_reason}); {writer.describe_backlog()} "
            f"were not sent. Nothing is lost: they are kept in order in {writer.spool_path}. "
            "Fix: bring the tracking server back and resume the study (`autotune resume "
            "STUDY`): its start sends them first."
        )
        logger.error("%s", message)
        raise TrackingError(message)

    def set_study_tags(self, tags: Mapping[str, Any]) -> None:
        """Tag the parent run.

        Args:
            tags: Tags; non-string values are written as JSON, long values are truncated.
        """
        self._log(self.parent_run_id, tags=tags)

    def log_study_params(self, params: Mapping[str, Any]) -> dict[str, str]:
        """Log the study's settings as parent-run parameters, so the run is not empty in the UI.

        MLflow parameters cannot change: a key already logged with another value (a budget
        raised on resume) keeps its first value and is returned; the description
        (:meth:`set_study_note`) shows the current settings.

        Args:
            params: e.g. ``{"objective": "val_loss", "direction": "minimize", "strategy": "ei"}``.

        Returns:
            The keys left at a different earlier value, with that value.
        """
        run = self._writer.call(lambda client: client.get_run(self.parent_run_id), "read the study run",
                                timeout_s=30.0)
        logged = dict(run.data.params)
        new = {key: _tag_value(value) for key, value in params.items() if value is not None}
        kept = {key: logged[key] for key, value in new.items() if key in logged and logged[key] != value}
        fresh = {key: value for key, value in new.items() if key not in logged}
        if fresh:
            self._log(self.parent_run_id, params=fresh)
        return kept

    def set_study_note(self, markdown: str) -> None:
        """Set the parent run's description (MLflow's note, shown on the run page)."""
        from autotune.tracking._views import NOTE_TAG

        self._log(self.parent_run_id, tags={NOTE_TAG: markdown})

    def set_runs_view(self, state: Mapping[str, Any]) -> str:
        """Store the study's runs-page state as the experiment's shared view (see ``_views``).

        Args:
            state: From :func:`autotune.tracking._views.runs_view_state`.

        Returns:
            The experiment tag key written.
        """
        from autotune.tracking._views import runs_view_tag

        key, value = runs_view_tag(state)
        self._writer.call(lambda client: client.set_experiment_tag(self.experiment_id, key, value),
                          "set the study's runs view", timeout_s=30.0)
        return key

    def log_study_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Log study-level metrics on the parent run, e.g. the best value after ``step`` trials.

        Args:
            metrics: Metric values; non-numeric and non-finite values are skipped.
            step: The x-axis value, typically the number of finished trials.
        """
        self._log(self.parent_run_id, metrics=_metric_entities([{**metrics, "step": step}], 0)[0])

    def set_trial_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Tag a trial's run (e.g. :data:`TAG_PARETO`, kept current as the front changes).

        Args:
            run_id: The trial's run.
            tags: Tags; non-string values are written as JSON.
        """
        self._log(run_id, tags=tags)

    def log_study_text(self, text: str, artifact_file: str) -> None:
        """Write a text artifact (e.g. the Pareto front as JSON or CSV) on the parent run.

        Args:
            text: The content.
            artifact_file: Its path inside the run's artifacts.
        """
        self._log_text(self.parent_run_id, text, artifact_file)

    def log_study_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Upload a file or a directory to the parent run.

        Args:
            local_path: The file or directory.
            artifact_path: The directory inside the run's artifacts; ``None`` for the root.
        """
        self._log_path(self.parent_run_id, Path(local_path), artifact_path)

    # -- trials -----------------------------------------------------------------------------

    def start_trial(
        self, trial_id: int, params: Mapping[str, Any], tags: Mapping[str, Any] | None = None
    ) -> str:
        """Open the child run of a trial.

        Args:
            trial_id: The study-wide trial number.
            params: The trial's parameters; JSON types (and NumPy scalars) only. They are
                logged as MLflow params (strings, for display), as a typed JSON tag (the
                source of truth), and the numeric ones as metrics ``param/<name>`` (step 0).
            tags: Extra tags, e.g. :data:`TAG_ACQ_VALUE`, :data:`TAG_PRED_MEAN`,
                :data:`TAG_PRED_STD` from the proposal; these three are also logged as
                metrics ``proposal/...``, at step 0 on the trial's run and at step
                ``trial_id`` on the study run.

        Returns:
            The run id of the trial.

        Raises:
            TrackingError: A parameter value cannot be written as JSON, or the store did
                not answer within ``server_wait_s``.
        """
        try:
            params_json = json.dumps(dict(params), default=_to_builtin)
        except (TypeError, ValueError) as exc:
            raise TrackingError(
                f"trial {trial_id}: params must be JSON-serialisable ({exc}). "
                "Fix: pass int, float, bool, str, None, or lists and dicts of them."
            ) from exc
        # The typed params go into create_run itself when they fit in a tag, so that a run
        # never exists without them (close_orphans may requeue it).
        fits = len(params_json) <= MAX_TAG_VAL_LENGTH
        run_tags = {
            **{key: _tag_value(value) for key, value in (tags or {}).items()},
            TAG_PARENT_RUN_ID: self.parent_run_id,
            TAG_TRIAL_ID: str(trial_id),
            TAG_STATE: TrialState.RUNNING.value,
        }
        if fits:
            run_tags[TAG_PARAMS] = params_json
        experiment_id = self.experiment_id

        def create(client: MlflowClient) -> str:
            run_id: str = client.create_run(
                experiment_id, run_name=f"trial-{trial_id}", tags=run_tags
            ).info.run_id
            return run_id

        run_id = self._writer.call(create, f"open the run of trial {trial_id}", self.server_wait_s)
        extra_tags = {} if fits else {TAG_PARAMS: self._json_tag(run_id, params_json, "params")}
        now_ms = int(time.time() * 1000)
        from mlflow.entities import Metric

        numbers_as_metrics = [
            Metric(_mlflow_key(METRIC_PARAM_PREFIX + str(key)), float(value), now_ms, 0)
            for key, value in params.items()
            if _is_number(value) and math.isfinite(float(value))
        ]
        proposal = {
            METRIC_PROPOSAL_PREFIX + name: value
            for tag, name in _PROPOSAL_TAGS.items()
            if (value := _finite_float((tags or {}).get(tag))) is not None
        }
        numbers_as_metrics += [Metric(key, value, now_ms, 0) for key, value in proposal.items()]
        self._log(
            run_id,
            metrics=numbers_as_metrics,
            params={_mlflow_key(k): str(v)[:MAX_PARAM_VAL_LENGTH] for k, v in params.items()},
            tags=extra_tags,
        )
        if proposal:  # on the study run: a curve over trials
            self._log(
                self.parent_run_id,
                metrics=[Metric(key, value, now_ms, trial_id) for key, value in proposal.items()],
            )
        self._next_step[run_id] = 0
        return run_id

    def log_reports(self, run_id: str, reports: Sequence[Mapping[str, Any]]) -> None:
        """Log a trial's ``report(...)`` calls as per-step metrics, in batches.

        A report's ``step`` key gives its step; reports without one follow the previous
        report's step. Non-numeric and non-finite values are skipped.

        Args:
            run_id: The trial's run.
            reports: The reports, in order (e.g. the new ones since the last call).
        """
        metrics, self._next_step[run_id] = _metric_entities(reports, self._next_step.get(run_id, 0))
        curves = self._curves.setdefault(run_id, {})
        for metric in metrics:
            last = curves.get(metric.key)
            if last is None or metric.step >= last[0]:
                curves[metric.key] = (metric.step, max(metric.timestamp, last[1] if last else 0))
        # MlflowClient.log_batch splits the list into requests of MLflow's 1000-metric limit.
        self._log(run_id, metrics=metrics)

    def end_trial(
        self, run_id: str, result: TrialResult, tags: Mapping[str, Any] | None = None
    ) -> None:
        """Record how a trial ended and close its run.

        Writes, in this order: the full error text (``trial/error.txt``), stdout/stderr
        (``logs/``) and ``result.artifacts`` (``artifacts/``); the final metrics (as MLflow
        metrics, and exactly as a JSON tag); the tags ``state``, ``failure_reason`` (one
        line: the exception's type and message, or the state), ``device`` and
        ``duration_s``; then the run status: ``FINISHED`` for completed trials, ``KILLED``
        for killed ones and ``FAILED`` for every failure state. ``result.history`` is not
        written here: stream it with :meth:`log_reports`.

        A final metric that was reported as a curve is logged at its last reported step (no
        extra step); one that was not (``n_params``, ``train_seconds``...) at step 0.

        Args:
            run_id: The trial's run.
            result: How the trial ended; its state must be terminal.
            tags: Extra tags.

        Raises:
            TrackingError: ``result.state`` is not terminal, or a final metric is not a number.
        """
        from mlflow.entities import Metric

        status = _RUN_STATUS.get(result.state)
        if status is None:
            raise TrackingError(
                f"trial {result.trial_id}: end_trial needs a finished state, got "
                f"{result.state.value!r}. Fix: pass one of "
                f"{', '.join(s.value for s in _RUN_STATUS)}."
            )
        try:
            final = {key: float(value) for key, value in result.metrics.items()}
        except (TypeError, ValueError) as exc:
            raise TrackingError(
                f"trial {result.trial_id}: final metrics must be numbers ({exc}), got "
                f"{result.metrics!r}. Fix: return a dict of floats from the trial function."
            ) from exc
        if result.error:
            self._log_text(run_id, result.error, "trial/error.txt")
        for path in (result.stdout_path, result.stderr_path):
            if path and os.path.isfile(path):
                self._log_path(run_id, Path(path), "logs")
        for path in result.artifacts:
            self._log_path(run_id, Path(path), "artifacts")
        curves = self._curves.pop(run_id, {})
        self._next_step.pop(run_id, None)
        now_ms = int(time.time() * 1000)
        metrics = []
        for key, value in final.items():
            if not math.isfinite(value):
                continue
            mkey = _mlflow_key(key)
            step, last_ms = curves.get(mkey, (0, -1))
            # Later than the last report, so that MLflow takes the final value as the latest.
            metrics.append(Metric(mkey, value, max(now_ms, last_ms + 1), step))
        end_tags: dict[str, Any] = dict(tags or {})
        end_tags[TAG_METRICS] = self._json_tag(run_id, json.dumps(final), "metrics")
        nonfinite = [key for key, value in final.items() if not math.isfinite(value)]
        if nonfinite:
            end_tags[TAG_NONFINITE] = ",".join(nonfinite)
        reason = result.error or (result.state.value if result.state.is_failure else None)
        if reason:
            end_tags[TAG_FAILURE_REASON] = failure_line(reason)
        end_tags[TAG_DEVICE] = result.device
        end_tags[TAG_DURATION_S] = result.duration_s
        end_tags[TAG_STATE] = result.state.value
        self._log(run_id, metrics=metrics, tags=end_tags)
        self._writer.submit({"op": "set_terminated", "run_id": run_id, "status": status})

    def load_trials(self, include_unreadable: bool = False) -> list[LoadedTrial]:
        """Read every trial of the study back: the source of truth for resume.

        Nothing read is trusted: a trial whose typed params cannot be read (a non-JSON
        ``autotune.params`` tag, an ``@artifact:`` reference outside the run's artifacts)
        is logged once as a warning naming its run and tag and is left out, unless
        ``include_unreadable`` (then it has :attr:`LoadedTrial.unreadable` set and no value).

        Args:
            include_unreadable: Also return unreadable trials (to show them, never to learn).

        Returns:
            The trials sorted by trial id (runs of a re-run trial id by start time).

        Raises:
            TrackingError: Writes still wait for a store that does not answer (the record
                read back would be behind).
        """
        self._check_current()
        trials = [trial for run in self._search_trials() if (trial := self._loaded(run))]
        return [t for t in trials if include_unreadable or t.unreadable is None]

    def close_orphans(self, mode: Literal["fail", "requeue"] = "fail") -> list[LoadedTrial]:
        """Close the trial runs a dead driver left ``RUNNING``; call it before new trials start.

        A run whose final state was already recorded (the driver died inside
        :meth:`end_trial`) only gets its status set and is not returned. Every other
        running trial gets the reason ``"driver died"`` and the run status ``FAILED``, and:

        * ``"fail"``: the state ``failed``: the optimiser learns it as a failed point;
        * ``"requeue"``: the state ``killed`` (not learned from) and the tag
          ``autotune.requeue=true``: the driver proposes the same params again.

        An unreadable trial (see :meth:`load_trials`) is closed ``failed`` and not returned.

        Args:
            mode: ``"fail"`` or ``"requeue"``.

        Returns:
            The trials it closed, as they now stand in the record.

        Raises:
            ConfigError: ``mode`` is neither.
        """
        if mode not in ("fail", "requeue"):
            raise ConfigError(
                "MlflowTracker.close_orphans: mode", "must be 'fail' or 'requeue'", mode
            )
        self._check_current()
        closed = []
        for run in self._search_trials("attributes.status = 'RUNNING'"):
            trial = self._loaded(run)
            if trial is None:
                continue
            if trial.state.is_finished:
                self._writer.submit(
                    {"op": "set_terminated", "run_id": trial.run_id,
                     "status": _RUN_STATUS[trial.state]}
                )
                continue
            readable = trial.unreadable is None
            state = TrialState.KILLED if mode == "requeue" and readable else TrialState.FAILED
            new_tags = {TAG_STATE: state.value, TAG_FAILURE_REASON: DRIVER_DIED}
            if state is TrialState.KILLED:
                new_tags[TAG_REQUEUE] = "true"
            self._log(trial.run_id, tags=new_tags)
            self._writer.submit({"op": "set_terminated", "run_id": trial.run_id, "status": "FAILED"})
            if readable:
                closed.append(
                    dataclasses.replace(
                        trial, state=state, status="FAILED", tags={**trial.tags, **new_tags}
                    )
                )
        return closed

    # -- helpers ----------------------------------------------------------------------------

    def _not_started(self) -> TrackingError:
        return TrackingError(
            f"study {self.study_name!r}: the tracker has no study run yet. "
            "Fix: call start_study() (or find_study() to read an existing study) first."
        )

    def _check_current(self) -> None:
        """Refuse to read a record that is behind (writes wait for a store that is down)."""
        writer = self._writer_instance
        if writer is None or writer.backlog() == 0:
            return
        if writer.flush(min(self.write_timeout_s, 5.0)):
            return
        # A store that answers its health check is slow, not down: wait for it to catch up.
        if writer.store_answers() and writer.flush(self.server_wait_s):
            return
        raise TrackingError(
            f"{self._tracking_uri}: the MLflow tracking store does not answer "
            f"({writer.outage_reason}); {writer.describe_backlog()} wait to be sent (kept in "
            f"{writer.spool_path}), so the record cannot be read yet. Fix: wait for the "
            "server to come back."
        )

    def _create_experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        try:
            experiment_id: str = self.client.create_experiment(
                self.study_name,
                artifact_location=self.artifact_location
                or default_artifact_location(self._tracking_uri),
            )
        except MlflowException as exc:
            raise TrackingError(
                f"{self._tracking_uri}: cannot create experiment {self.study_name!r} ({exc}). "
                "Fix: check the study name and the store."
            ) from exc
        # MLflow 3 opens an experiment on its GenAI overview unless it is marked as model training.
        self.client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "custom_model_development")
        self._experiment_id = experiment_id
        return experiment_id

    def _search_trials(self, extra_filter: str | None = None) -> list[Run]:
        query = f"tags.`{TAG_PARENT_RUN_ID}` = '{self.parent_run_id}'"
        if extra_filter:
            query += f" and {extra_filter}"
        runs: list[tuple[int, Run]] = []
        token: str | None = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], query, max_results=_SEARCH_PAGE_SIZE, page_token=token
            )
            for run in page:
                text = run.data.tags.get(TAG_TRIAL_ID)
                if text is None:
                    continue
                trial_id = _int_or_none(text)
                if trial_id is None:
                    self._warn_once(
                        run.info.run_id,
                        TAG_TRIAL_ID,
                        f"is not a trial number ({text[:50]!r}); the run is ignored",
                    )
                    continue
                runs.append((trial_id, run))
            token = page.token
            if not token:
                break
        runs.sort(key=lambda item: (item[0], item[1].info.start_time or 0))
        return [run for _, run in runs]

    def _loaded(self, run: Run) -> LoadedTrial | None:
        tags = dict(run.data.tags)
        status = run.info.status
        trial_id = _int_or_none(tags.get(TAG_TRIAL_ID))
        if trial_id is None:
            return None
        try:
            state = TrialState(tags[TAG_STATE])
        except (KeyError, ValueError):
            state = _STATE_OF_STATUS.get(status, TrialState.FAILED)
        unreadable = None
        params, problem = self._json_from_tag(run, TAG_PARAMS)
        if problem is None and params is None:
            problem = "is missing"
        elif problem is None and not isinstance(params, dict):
            problem = f"is not a JSON object (got {type(params).__name__})"
        if problem is not None:
            unreadable = f"tag {TAG_PARAMS} {problem}"
            self._warn_once(
                run.info.run_id,
                TAG_PARAMS,
                f"{problem}; trial {trial_id} is left out of the model and shown as unreadable",
            )
            params = dict(run.data.params)
        metrics, problem = self._json_from_tag(run, TAG_METRICS)
        if problem is None and metrics is not None:
            metrics, problem = _float_dict(metrics)
        if problem is not None:
            self._warn_once(
                run.info.run_id, TAG_METRICS, f"{problem}; its MLflow metrics are used instead"
            )
        if problem is not None or metrics is None:
            metrics = {
                key: value
                for key, value in run.data.metrics.items()
                if not key.startswith((METRIC_PARAM_PREFIX, METRIC_PROPOSAL_PREFIX))
            }
        return LoadedTrial(
            trial_id=trial_id,
            run_id=run.info.run_id,
            params=params,
            state=state,
            metrics=metrics,
            tags=tags,
            status=status,
            unreadable=unreadable,
        )

    def _warn_once(self, run_id: str, tag: str, problem: str) -> None:
        if (run_id, tag) in self._warned:
            return
        self._warned.add((run_id, tag))
        logger.warning(
            "study %r, run %s: tag %s %s. Fix: correct or delete the tag in the MLflow UI.",
            self.study_name,
            run_id,
            tag,
            problem,
        )

    def _json_tag(self, run_id: str, text: str, name: str) -> str:
        """``text`` as a tag value, or, if too long, a reference to ``trial/<name>.json``."""
        if len(text) <= MAX_TAG_VAL_LENGTH:
            return text
        artifact_file = f"trial/{name}.json"
        self._log_text(run_id, text, artifact_file)
        return _ARTIFACT_REF + artifact_file

    def _json_from_tag(self, run: Run, key: str) -> tuple[Any, str | None]:
        """The JSON value of tag ``key`` (``None`` if absent) and ``None``, or why it is unusable.

        An ``@artifact:`` reference is followed only to a file inside the run's own artifacts:
        a normalised relative path (no ``..``, not absolute, no URI) that, in a local
        artifact store, does not resolve (through a symbolic link) outside the run's folder.
        """
        text = run.data.tags.get(key)
        if text is None:
            return None, None
        if text.startswith(_ARTIFACT_REF):
            path = text.removeprefix(_ARTIFACT_REF)
            problem = _unsafe_artifact_path(path)
            if problem is not None:
                return None, f"refers to {path[:200]!r}, {problem}: refused"
            try:
                text = self._read_run_artifact(run, path)
            except (OSError, ValueError, TrackingError) as exc:
                return None, f"refers to {path!r}, which cannot be read ({exc})"
            except Exception as exc:  # noqa: BLE001 (MLflow's errors: a missing artifact, ...)
                return None, f"refers to {path!r}, which cannot be read ({type(exc).__name__}: {exc})"
        try:
            return json.loads(text), None
        except (ValueError, RecursionError) as exc:
            return None, f"is not valid JSON ({str(exc)[:200]})"

    def _read_run_artifact(self, run: Run, path: str) -> str:
        """The text of the run's artifact ``path`` (already checked by ``_unsafe_artifact_path``)."""
        root = _local_path(run.info.artifact_uri or "")
        if root is not None:
            base = root.resolve()
            target = (base / path).resolve()
            if not target.is_relative_to(base):
                raise TrackingError("it resolves outside the run's artifact store (a symbolic link)")
            if target.stat().st_size > _MAX_JSON_ARTIFACT_BYTES:
                raise TrackingError(f"it is larger than {_MAX_JSON_ARTIFACT_BYTES} bytes")
            return target.read_text(encoding="utf-8")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(self.client.download_artifacts(run.info.run_id, path, tmp)).resolve()
            if not local.is_relative_to(Path(tmp).resolve()) or not local.is_file():
                raise TrackingError("the download is not a file inside the download folder")
            if local.stat().st_size > _MAX_JSON_ARTIFACT_BYTES:
                raise TrackingError(f"it is larger than {_MAX_JSON_ARTIFACT_BYTES} bytes")
            return local.read_text(encoding="utf-8")

    def _log(
        self,
        run_id: str,
        metrics: Sequence[Any] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        op = {
            "op": "log_batch",
            "run_id": run_id,
            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
            "params": [[key, value] for key, value in (params or {}).items()],
            "tags": [[key, _tag_value(value)] for key, value in (tags or {}).items()],
        }
        if op["metrics"] or op["params"] or op["tags"]:
            self._writer.submit(op)

    def _log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._writer.submit(
            {"op": "log_text", "run_id": run_id, "text": text, "artifact_file": artifact_file}
        )

    def _log_path(self, run_id: str, path: Path, artifact_path: str | None) -> None:
        self._writer.submit(
            {"op": "log_path", "run_id": run_id, "local_path": str(path.resolve()),
             "artifact_path": artifact_path}
        )


class _RecordWriter:
    """Sends a tracker's writes in order from one thread; keeps them while the store is down.

    A write is a JSON-able dict (``op``: ``log_batch``, ``log_text``, ``log_path``,
    ``set_terminated`` or ``update_run``), so that during an outage it can be appended to
    the spool file. The spool's companion file ``<spool>.ack`` holds the number of the last
    spooled write that was delivered, so a later :meth:`replay_spool` sends only the rest.
    """

    def __init__(
        self,
        uri: str,
        client: Callable[[], MlflowClient],
        spool_path: Path,
        write_timeout_s: float,
        max_buffered: int,
    ) -> None:
        self.uri = uri
        self.spool_path = spool_path
        self.gave_up = False
        self.outage_reason = ""
        self.n_spooled_total = 0  # writes that waited for the store, over all outages
        self._client = client
        self._write_timeout_s = write_timeout_s
        self._max_buffered = max(1, max_buffered)
        self._cond = threading.Condition()
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._next_seq = 1
        self._outage_since: float | None = None
        self._spool: Any = None  # the open spool file during an outage
        self._overflow_offset: int | None = None  # the first spooled write not held in memory
        self._n_overflow = 0
        self._thread: threading.Thread | None = None
        self._rejected: list[str] = []
        self._spool_failed = False
        self._single_until = 0  # kept writes up to this number are sent one at a time
        self._connection_failed = False  # during this outage, a write failed to connect

    # -- the callers' side ---------------------------------------------------------------------

    def submit(self, op: dict[str, Any]) -> None:
        """Send ``op`` (synchronously while the store answers; kept in order while it does not).

        Raises:
            Exception: The store refused the write (not a connection error), as MLflow raised it.
        """
        with self._cond:
            self._start()
            op["seq"] = self._next_seq
            self._next_seq += 1
            if self._outage_since is not None:
                self._spool_op(op)
                return
            self._queue.append(op)
            self._cond.notify_all()
            deadline = time.monotonic() + self._write_timeout_s
            try:
                while not op.get("done"):
                    if op.get("spooled"):
                        return  # the store went down: it is kept and sent later
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._begin_outage(f"no answer within {self._write_timeout_s:g} s")
                        return
                    self._cond.wait(remaining)
            except BaseException:
                # Interrupted (Ctrl-C) while waiting: keep the write on disk before giving up.
                if not op.get("done"):
                    self._spool_queue()
                raise
        if "error" in op:
            raise op["error"]

    def call(self, fn: Callable[[MlflowClient], Any], what: str, timeout_s: float) -> Any:
        """Run ``fn(client)`` after every earlier write, waiting up to ``timeout_s`` for the store.

        Raises:
            TrackingError: The store did not answer in time.
            Exception: What ``fn`` raised, unless a connection error.
        """
        op: dict[str, Any] = {"op": "call", "fn": fn}
        with self._cond:
            self._start()
            if self.gave_up:
                timeout_s = min(timeout_s, self._write_timeout_s)
            deadline = time.monotonic() + timeout_s
            while self._queue or self._overflow_offset is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timeout_error(what, timeout_s)
                self._cond.wait(remaining)
            op["seq"] = self._next_seq
            self._next_seq += 1
            self._queue.append(op)
            self._cond.notify_all()
            while not op.get("done"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 and not op.get("running"):
                    op["cancelled"] = True
                    raise self._timeout_error(what, timeout_s)
                self._cond.wait(max(remaining, 0.1))
        if "error" in op:
            raise op["error"]
        return op.get("result")

    def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for every write to be sent; whether they all were."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._overflow_offset is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def backlog(self) -> int:
        """The number of writes not sent yet."""
        with self._cond:
            return sum(1 for op in self._queue if op["op"] != "call") + self._n_overflow

    def store_answers(self) -> bool:
        """Whether the store is up (slow, maybe): a server's ``/health`` answers, or no connection failed."""
        if urllib.parse.urlsplit(self.uri).scheme in ("http", "https"):
            return _reachable(self.uri)
        return not self._connection_failed

    def outage_s(self) -> float:
        """Seconds since the store stopped answering (0 when it answers)."""
        since = self._outage_since
        return 0.0 if since is None else time.monotonic() - since

    def describe_backlog(self) -> str:
        """``"12 writes (340 metric values, 20 tags, 3 run states, 2 artifacts)"``."""
        with self._cond:
            ops = [op for op in self._queue if op["op"] != "call"]
            if self._overflow_offset is not None:
                ops += self._read_spool(self._overflow_offset, None)[0]
            n_metrics = sum(len(op.get("metrics", ())) for op in ops)
            n_tags = sum(len(op.get("tags", ())) + len(op.get("params", ())) for op in ops)
            n_states = sum(1 for op in ops if op["op"] in ("set_terminated", "update_run"))
            n_files = sum(1 for op in ops if op["op"] in ("log_text", "log_path"))
            text = (
                f"{len(ops)} writes ({n_metrics} metric values, {n_tags} tags and params, "
                f"{n_states} run states, {n_files} artifacts)"
            )
            if self._rejected:
                text += f"; {len(self._rejected)} were refused by the store: {self._rejected[:3]}"
            return text

    def replay_spool(self) -> None:
        """Send what an earlier tracker left unsent in the spool file (its driver died)."""
        if not self.spool_path.exists():
            return
        stamp = f"{time.time_ns():020d}"
        taken = self.spool_path.with_name(f"{self.spool_path.name}.replay-{stamp}")
        os.replace(self.spool_path, taken)
        ack = Path(str(self.spool_path) + ".ack")
        if ack.exists():
            os.replace(ack, Path(str(taken) + ".ack"))
        for path in sorted(self.spool_path.parent.glob(f"{self.spool_path.name}.replay-*[0-9]")):
            acked = _read_ack(Path(str(path) + ".ack"))
            ops, _ = self._read_spool(0, None, path)
            todo = [op for op in ops if op["seq"] > acked]
            logger.warning(
                "%s: sending %d writes a previous driver left unsent in %s",
                self.uri,
                len(todo),
                path,
            )
            for op in todo:
                op.pop("seq", None)
                try:
                    self.submit(op)
                except Exception as exc:  # noqa: BLE001 (one refused write must not stop the rest)
                    logger.error("%s: the store refused a kept write %s (%s)", self.uri, _op_name(op), exc)
            # Every write is now sent or kept in the new spool file.
            for done in (path, Path(str(path) + ".ack")):
                done.unlink(missing_ok=True)

    # -- the writer thread ---------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="autotune-mlflow-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self._step()
            except Exception:
                logger.exception("%s: the MLflow writer failed; retrying", self.uri)
                time.sleep(_RETRY_MAX_S)

    def _step(self) -> None:
        """Send the next write (several kept metric writes at once), or wait for one."""
        with self._cond:
            while not self._queue and self._overflow_offset is None:
                self._cond.wait()
            if not self._queue:
                self._refill()
                return
            op = self._queue[0]
            if op.get("cancelled"):
                self._queue.popleft()
                op["done"] = True
                self._cond.notify_all()
                return
            batch = self._coalescible()
            for each in batch:
                each["running"] = True
        try:
            if len(batch) == 1:
                result = self._apply(op)
            else:  # a backlog of metrics: one request per run instead of one per report
                for merged in _merge_metric_writes(batch):
                    self._apply(merged)
                result = None
            error: Exception | None = None
        except Exception as exc:  # noqa: BLE001 (sorted below: retried or handed to the caller)
            unreachable = _unreachable(exc)
            with self._cond:
                for each in batch:
                    each["running"] = False
                if unreachable:
                    self._connection_failed = True
                    self._begin_outage(_short(exc))
                elif len(batch) > 1:  # to find the write the store refuses: one at a time
                    self._single_until = batch[-1]["seq"]
            if unreachable:
                self._wait_until_reachable()
                return
            if len(batch) > 1:
                return
            result, error = None, exc
        with self._cond:
            for each in batch:
                self._queue.popleft()
                each["running"] = False
                each["done"] = True
            if error is not None:
                if op.get("spooled"):  # no caller waits for it any more
                    self._rejected.append(f"{_op_name(op)}: {_short(error)}")
                    logger.error("%s: the store refused a kept write %s (%s)", self.uri, _op_name(op), error)
                else:
                    op["error"] = error
            else:
                op["result"] = result
            if batch[-1].get("spooled"):
                self._ack(batch[-1]["seq"])
            if self._outage_since is not None and not self._queue and self._overflow_offset is None:
                self._end_outage()
            self._cond.notify_all()

    def _coalescible(self) -> list[dict[str, Any]]:
        """The head of the queue and the kept metrics-only writes right after it (holding the lock)."""
        batch: list[dict[str, Any]] = []
        n_metrics = 0
        for op in self._queue:
            metrics_only = (
                op["op"] == "log_batch" and op.get("spooled") and not op["params"] and not op["tags"]
                and op["seq"] > self._single_until and not op.get("cancelled")
            )
            if batch and (not metrics_only or n_metrics + len(op["metrics"]) > _COALESCE_METRICS):
                break
            batch.append(op)
            n_metrics += len(op.get("metrics", ()))
            if not metrics_only:
                break
        return batch

    def _apply(self, op: dict[str, Any]) -> Any:
        from mlflow.entities import Metric, Param, RunTag

        client = self._client()
        kind = op["op"]
        if kind == "call":
            return op["fn"](client)
        run_id: str = op["run_id"]
        if kind == "log_batch":
            client.log_batch(
                run_id,
                metrics=[Metric(key, value, ts, step) for key, value, ts, step in op["metrics"]],
                params=[Param(key, value) for key, value in op["params"]],
                tags=[RunTag(key, value) for key, value in op["tags"]],
                synchronous=True,
            )
        elif kind == "log_text":
            client.log_text(run_id, op["text"], op["artifact_file"])
        elif kind == "log_path":
            _log_path(client, run_id, Path(op["local_path"]), op["artifact_path"])
        elif kind == "set_terminated":
            client.set_terminated(run_id, op["status"])
        elif kind == "update_run":
            client.update_run(run_id, status=op["status"])
        else:
            raise TrackingError(f"{self.spool_path}: unknown write {kind!r}")
        return None

    def _wait_until_reachable(self) -> None:
        """Sleep with backoff until the server's ``/health`` answers (other stores: one backoff)."""
        delay = _RETRY_MIN_S
        while True:
            time.sleep(delay)
            if _reachable(self.uri):
                return
            delay = min(2 * delay, _RETRY_MAX_S)

    # -- outages (called holding the lock) -----------------------------------------------------

    def _begin_outage(self, reason: str) -> None:
        if self._outage_since is not None:
            return
        self._outage_since = time.monotonic()
        self.outage_reason = reason
        self._spool_queue()
        logger.warning(
            "%s: the MLflow tracking store does not answer (%s). The study goes on: every write "
            "is kept, in order, in memory and in %s, and sent when the store is back "
            "(retrying with backoff up to %g s).",
            self.uri,
            reason,
            self.spool_path,
            _RETRY_MAX_S,
        )

    def _end_outage(self) -> None:
        down_s = self.outage_s()
        self._outage_since = None
        self._connection_failed = False
        self.gave_up = False
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        for path in (self.spool_path, Path(str(self.spool_path) + ".ack")):
            path.unlink(missing_ok=True)
        logger.warning(
            "%s: the MLflow tracking store answers again after %.0f s; every kept write was sent.",
            self.uri,
            down_s,
        )

    def _spool_queue(self) -> None:
        """Append every queued write not in the spool file yet (in order) to it."""
        for op in list(self._queue):
            if op["op"] != "call" and not op.get("spooled"):
                self._append(op)

    def _spool_op(self, op: dict[str, Any]) -> None:
        """Keep a new write during an outage: on disk, and in memory while there is room."""
        offset = self._append(op)
        if offset is None:  # not on disk: memory is all there is (over the bound if need be)
            self._queue.append(op)
            self._cond.notify_all()
            return
        if self._overflow_offset is None and len(self._queue) >= self._max_buffered:
            self._overflow_offset = offset
        if self._overflow_offset is None:
            self._queue.append(op)
        else:
            self._n_overflow += 1
        self._cond.notify_all()

    def _append(self, op: dict[str, Any]) -> int | None:
        """Append ``op`` to the spool file; its offset there (``None``: kept in memory only)."""
        op["spooled"] = True  # no caller waits for it any more
        self.n_spooled_total += 1
        try:
            if self._spool is None:
                self.spool_path.parent.mkdir(parents=True, exist_ok=True)
                self._spool = open(self.spool_path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
            offset: int = self._spool.tell()
            self._spool.write(json.dumps({k: v for k, v in op.items() if k in _SPOOL_KEYS}) + "\n")
            self._spool.flush()
        except (OSError, TypeError, ValueError) as exc:
            if not self._spool_failed:
                self._spool_failed = True
                logger.error("%s: cannot keep unsent writes in %s (%s); they are kept in memory only",
                             self.uri, self.spool_path, exc)
            return None
        return offset

    def _refill(self) -> None:
        """Move the next spooled writes that are not in memory back into it."""
        assert self._overflow_offset is not None
        ops, offset = self._read_spool(self._overflow_offset, self._max_buffered)
        for op in ops:
            op["spooled"] = True
        self._queue.extend(ops)
        self._n_overflow -= len(ops)
        at_end = self._spool is None or offset >= self._spool.tell()
        self._overflow_offset = None if at_end or not ops else offset

    def _read_spool(
        self, offset: int, limit: int | None, path: Path | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        ops: list[dict[str, Any]] = []
        with open(path or self.spool_path, "rb") as file:
            file.seek(offset)
            while limit is None or len(ops) < limit:
                line = file.readline()
                if not line.endswith(b"\n"):
                    break  # the end (or a line cut by a crash while it was written)
                try:
                    ops.append(json.loads(line))
                except ValueError:
                    logger.error("%s: an unreadable line at byte %d is skipped", path or self.spool_path, offset)
                offset = file.tell()
        return ops, offset

    def _ack(self, seq: int) -> None:
        ack = Path(str(self.spool_path) + ".ack")
        tmp = ack.with_name(ack.name + ".tmp")
        tmp.write_text(str(seq), encoding="utf-8")
        os.replace(tmp, ack)

    def _timeout_error(self, what: str, timeout_s: float) -> TrackingError:
        self.gave_up = True
        return TrackingError(
            f"{self.uri}: cannot {what}: the MLflow tracking store did not answer within "
            f"{timeout_s:g} s ({self.outage_reason or 'no answer'}); the writes waiting for it are "
            f"kept in {self.spool_path}. Fix: bring the tracking server back and resume the study."
        )


_SPOOL_KEYS = frozenset(
    {"seq", "op", "run_id", "metrics", "params", "tags", "text", "artifact_file", "local_path",
     "artifact_path", "status"}
)


def _merge_metric_writes(ops: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Metrics-only writes merged into one write per run (each run's values in their order)."""
    by_run: dict[str, list[Any]] = {}
    for op in ops:
        by_run.setdefault(op["run_id"], []).extend(op["metrics"])
    return [
        {"op": "log_batch", "run_id": run_id, "metrics": metrics, "params": [], "tags": []}
        for run_id, metrics in by_run.items()
    ]


def _op_name(op: Mapping[str, Any]) -> str:
    return f"{op['op']} of run {op.get('run_id')}"


def _read_ack(path: Path) -> int:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return 0


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the store could not be reached (worth retrying), not a refusal."""
    import requests

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
             requests.exceptions.RetryError, ConnectionError, TimeoutError),
        ):
            return True
        if "database is locked" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _reachable(uri: str) -> bool:
    if urllib.parse.urlsplit(uri).scheme not in ("http", "https"):
        return True
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=_PROBE_TIMEOUT_S) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def package_versions() -> dict[str, str]:
    """The versions recorded with every study (installed distributions only).

    Returns:
        ``{"python": "3.11.7", "torch": "2.13.0", ...}``, read from package metadata
        without importing the packages.
    """
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _metric_entities(reports: Iterable[Mapping[str, Any]], step: int) -> tuple[list[Any], int]:
    """MLflow metrics of ``reports`` (finite numbers only) and the step after the last one."""
    from mlflow.entities import Metric

    now_ms = int(time.time() * 1000)
    metrics = []
    for report in reports:
        given: Any = report.get("step")
        if _is_number(given) and math.isfinite(given):
            step = int(given)
        for key, value in report.items():
            if key == "step" or not isinstance(value, numbers.Real) or not math.isfinite(value):
                continue
            metrics.append(Metric(_mlflow_key(key), float(value), now_ms, step))
        step += 1
    return metrics, step


def _mlflow_key(name: str) -> str:
    """``name`` made valid as an MLflow metric or param key (invalid characters become ``_``)."""
    key = _INVALID_KEY_CHARS.sub("_", str(name))[:MAX_ENTITY_KEY_LENGTH]
    if posixpath.normpath(key) != key or key.startswith((".", "/")):
        key = key.replace("/", "_").lstrip(".") or "_"
    return key


def _tag_value(value: Any) -> str:
    text: str = value if isinstance(value, str) else json.dumps(value, default=_to_builtin)
    return text[:MAX_TAG_VAL_LENGTH]


def _to_builtin(value: Any) -> Any:
    """JSON fallback for NumPy/PyTorch scalars and arrays (their ``tolist()``)."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON-serialisable")


def _dump_config(config: Mapping[str, Any]) -> str:
    import yaml

    # The JSON round trip turns tuples, paths and enums into plain YAML types.
    text: str = yaml.safe_dump(json.loads(json.dumps(dict(config), default=str)), sort_keys=False)
    return text


def _log_path(client: MlflowClient, run_id: str, path: Path, artifact_path: str | None) -> None:
    if path.is_dir():
        client.log_artifacts(
            run_id,
            str(path),
            posixpath.join(artifact_path, path.name) if artifact_path else path.name,
        )
    elif path.is_file():
        client.log_artifact(run_id, str(path), artifact_path)
    else:
        warnings.warn(f"{path}: artifact not found; it is not recorded.", stacklevel=3)


def failure_line(error: str) -> str:
    """The one line that says why a trial failed: the exception's type and message.

    For a Python traceback it is the exception line(s) after the last ``Traceback (most
    recent call last):`` block, joined into one line; for any other text its first line.
    The full text stays in the run's ``trial/error.txt`` artifact.

    Args:
        error: The error text (a traceback, or a message).

    Returns:
        One line of at most 500 characters, e.g. ``"ValueError: diverged at epoch 3"``.
    """
    lines = [line.rstrip() for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    headers = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call")]
    if headers:
        i = headers[-1] + 1
        while i < len(lines) and lines[i][:1].isspace():  # the frames and their code lines
            i += 1
        text = " ".join(line.strip() for line in lines[i:]) or lines[-1].strip()
    else:
        text = lines[0].strip()
    text = " ".join(text.split())
    return text if len(text) <= _FAILURE_LINE_CHARS else text[: _FAILURE_LINE_CHARS - 3] + "..."


def _unsafe_artifact_path(path: str) -> str | None:
    """Why ``path`` may not name a file inside a run's artifacts, or ``None`` if it may."""
    if not path:
        return "an empty path"
    if "\x00" in path or "\\" in path:
        return "a path with a NUL or a backslash"
    if path.startswith("/") or PureWindowsPath(path).drive or _URI_SCHEME.match(path):
        return "an absolute path or a URI"
    if ".." in path.split("/"):
        return "a path with '..'"
    if posixpath.normpath(path) != path or path.startswith("."):
        return "a path that is not in normal form"
    return None


def _local_path(artifact_uri: str) -> Path | None:
    """The folder of a local artifact store (``file://`` URI or plain path), else ``None``."""
    parts = urllib.parse.urlsplit(artifact_uri)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme == "" and artifact_uri:
        return Path(artifact_uri)
    return None


def _float_dict(value: Any) -> tuple[dict[str, float] | None, str | None]:
    """``value`` as ``{name: float}``, or ``None`` and why it is not one."""
    if not isinstance(value, dict):
        return None, f"is not a JSON object (got {type(value).__name__})"
    out = {}
    for key, item in value.items():
        if not _is_number(item):
            return None, f"holds {key!r}: {str(item)[:50]!r}, not a number"
        out[str(key)] = float(item)
    return out, None


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite_float(value: Any) -> float | None:
    """``value`` (a number or its text) as a finite float, else ``None``."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _int_or_none(text: Any) -> int | None:
    """A trial number written as text (``"12"``), else ``None``."""
    if not isinstance(text, str) or not re.fullmatch(r"\s*[+-]?\d{1,18}\s*", text):
        return None
    return int(text)
