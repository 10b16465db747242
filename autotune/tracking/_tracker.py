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
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
import numbers
import os
import platform
import posixpath
import re
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from autotune.exceptions import ConfigError, TrackingError
from autotune.tracking._store import default_artifact_location
from autotune.trial import Observation, TrialResult, TrialState

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

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

ROLE_STUDY = "study"
DRIVER_DIED = "driver died"

# MLflow's limits (mlflow.utils.validation); repeated so that importing this module
# imports no mlflow. tests/tracking checks that they still agree.
MAX_TAG_VAL_LENGTH = 8000
MAX_PARAM_VAL_LENGTH = 6000
MAX_ENTITY_KEY_LENGTH = 250
_SEARCH_PAGE_SIZE = 1000
_ARTIFACT_REF = "@artifact:"
_VERSIONED_PACKAGES = ("autotune", "torch", "botorch", "gpytorch", "mlflow")
_INVALID_KEY_CHARS = re.compile(r"[^\w.\- /]")

RunStatus = Literal["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]

_RUN_STATUS: dict[TrialState, RunStatus] = {
    TrialState.COMPLETED: "FINISHED",
    TrialState.FAILED: "FAILED",
    TrialState.OOM: "FAILED",
    TrialState.NONFINITE: "FAILED",
    TrialState.TIMEOUT: "FAILED",
    TrialState.KILLED: "KILLED",
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
        params: The trial's parameters with their original types (ints, bools, exact floats).
        state: The trial state recorded by the driver.
        metrics: The final metrics, exactly as passed to :meth:`MlflowTracker.end_trial`
            (non-finite values included); the latest logged values for an unfinished trial.
        tags: All the run's tags.
        status: The MLflow run status: ``"RUNNING"``, ``"FINISHED"``, ``"FAILED"`` or ``"KILLED"``.
    """

    trial_id: int
    run_id: str
    params: dict[str, Any]
    state: TrialState
    metrics: dict[str, float]
    tags: dict[str, str]
    status: str

    @property
    def requeue(self) -> bool:
        """Whether the driver should run these params again (``close_orphans("requeue")``)."""
        return self.tags.get(TAG_REQUEUE) == "true"

    def value(self, objective: str) -> float | None:
        """The objective value, or ``None`` unless the trial completed with a finite value.

        Args:
            objective: The name of the objective metric.

        Returns:
            The value in the user's units, or ``None``.
        """
        value = self.metrics.get(objective)
        if self.state is not TrialState.COMPLETED or value is None or not math.isfinite(value):
            return None
        return float(value)

    def to_observation(self, objective: str) -> Observation:
        """The trial as the optimiser sees it (for resume).

        Args:
            objective: The name of the objective metric.

        Returns:
            An :class:`~autotune.trial.Observation` with the same params, state and metrics.
        """
        return Observation(
            params=dict(self.params),
            value=self.value(objective),
            state=self.state,
            metrics=dict(self.metrics),
            trial_id=self.trial_id,
        )


class MlflowTracker:
    """Writes a study to MLflow and reads it back.

    Args:
        tracking_uri: The MLflow tracking URI (``sqlite:///...``, ``http://host:port``, ...).
            Call :func:`~autotune.tracking.ensure_store` on it once before tracking.
        study_name: The study; it names the MLflow experiment and the parent run.
        artifact_location: Where a *new* experiment stores artifacts. ``None``: beside the
            database for SQLite stores (``mlartifacts/``), the server's choice otherwise.

    Example:
        >>> tracker = MlflowTracker(default_tracking_uri("runs/demo"), "demo")  # doctest: +SKIP
        >>> tracker.start_study(config, "studies/demo.yaml")  # doctest: +SKIP
    """

    def __init__(
        self, tracking_uri: str, study_name: str, artifact_location: str | None = None
    ) -> None:
        self._tracking_uri = tracking_uri
        self.study_name = study_name
        self.artifact_location = artifact_location
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._parent_run_id: str | None = None
        self._next_step: dict[str, int] = {}

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
        and the versions of python, autotune, torch, botorch, gpytorch and mlflow.

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
        elif run.info.status != "RUNNING":
            self.client.update_run(run.info.run_id, status="RUNNING")
        run_id: str = run.info.run_id
        self.client.log_text(run_id, _dump_config(config), "study/config.yaml")
        if study_file is not None:
            self.client.log_artifact(run_id, os.fspath(study_file), "study")
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
        """Close the parent run.

        Args:
            status: The final MLflow status of the study run.
        """
        self.client.set_terminated(self.parent_run_id, status)

    def set_study_tags(self, tags: Mapping[str, Any]) -> None:
        """Tag the parent run.

        Args:
            tags: Tags; non-string values are written as JSON, long values are truncated.
        """
        self._log(self.parent_run_id, tags=tags)

    def log_study_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Log study-level metrics on the parent run, e.g. the best value after ``step`` trials.

        Args:
            metrics: Metric values; non-numeric and non-finite values are skipped.
            step: The x-axis value, typically the number of finished trials.
        """
        self._log(self.parent_run_id, metrics=_metric_entities([{**metrics, "step": step}], 0)[0])

    def log_study_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Upload a file or a directory to the parent run.

        Args:
            local_path: The file or directory.
            artifact_path: The directory inside the run's artifacts; ``None`` for the root.
        """
        _log_path(self.client, self.parent_run_id, Path(local_path), artifact_path)

    # -- trials -----------------------------------------------------------------------------

    def start_trial(
        self, trial_id: int, params: Mapping[str, Any], tags: Mapping[str, Any] | None = None
    ) -> str:
        """Open the child run of a trial.

        Args:
            trial_id: The study-wide trial number.
            params: The trial's parameters; JSON types (and NumPy scalars) only. They are
                logged as MLflow params (strings, for the UI) and as a typed JSON tag.
            tags: Extra tags, e.g. :data:`TAG_ACQ_VALUE`, :data:`TAG_PRED_MEAN`,
                :data:`TAG_PRED_STD` from the proposal.

        Returns:
            The run id of the trial.

        Raises:
            TrackingError: A parameter value cannot be written as JSON.
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
        run_id: str = self.client.create_run(
            self.experiment_id, run_name=f"trial-{trial_id}", tags=run_tags
        ).info.run_id
        extra_tags = {} if fits else {TAG_PARAMS: self._json_tag(run_id, params_json, "params")}
        self._log(
            run_id,
            params={_mlflow_key(k): str(v)[:MAX_PARAM_VAL_LENGTH] for k, v in params.items()},
            tags=extra_tags,
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
        # MlflowClient.log_batch splits the list into requests of MLflow's 1000-metric limit.
        self._log(run_id, metrics=metrics)

    def end_trial(
        self, run_id: str, result: TrialResult, tags: Mapping[str, Any] | None = None
    ) -> None:
        """Record how a trial ended and close its run.

        Writes, in this order: the full error text (``trial/error.txt``), stdout/stderr
        (``logs/``) and ``result.artifacts`` (``artifacts/``); the final metrics (as MLflow
        metrics after the last report, and exactly as a JSON tag); the tags ``state``,
        ``failure_reason`` (the error's tail, cut to MLflow's tag limit), ``device`` and
        ``duration_s``; then the run status: ``FINISHED`` for completed trials, ``KILLED``
        for killed ones and ``FAILED`` for every failure state. ``result.history`` is not
        written here: stream it with :meth:`log_reports`.

        Args:
            run_id: The trial's run.
            result: How the trial ended; its state must be terminal.
            tags: Extra tags.

        Raises:
            TrackingError: ``result.state`` is not terminal, or a final metric is not a number.
        """
        status = _RUN_STATUS.get(result.state)
        if status is None:
            raise TrackingError(
                f"trial {result.trial_id}: end_trial needs a finished state, got "
                f"{result.state.value!r}. Fix: pass one of "
                f"{', '.join(s.value for s in _RUN_STATUS)}."
            )
        if result.error:
            self.client.log_text(run_id, result.error, "trial/error.txt")
        for path in (result.stdout_path, result.stderr_path):
            if path and os.path.isfile(path):
                self.client.log_artifact(run_id, path, "logs")
        for path in result.artifacts:
            _log_path(self.client, run_id, Path(path), "artifacts")
        try:
            final = {key: float(value) for key, value in result.metrics.items()}
        except (TypeError, ValueError) as exc:
            raise TrackingError(
                f"trial {result.trial_id}: final metrics must be numbers ({exc}), got "
                f"{result.metrics!r}. Fix: return a dict of floats from the trial function."
            ) from exc
        metrics, _ = _metric_entities([final], self._next_step.pop(run_id, 0))
        end_tags: dict[str, Any] = dict(tags or {})
        end_tags[TAG_METRICS] = self._json_tag(run_id, json.dumps(final), "metrics")
        nonfinite = [key for key, value in final.items() if not math.isfinite(value)]
        if nonfinite:
            end_tags[TAG_NONFINITE] = ",".join(nonfinite)
        reason = result.error or (result.state.value if result.state.is_failure else None)
        if reason:
            end_tags[TAG_FAILURE_REASON] = _tail(reason, MAX_TAG_VAL_LENGTH)
        end_tags[TAG_DEVICE] = result.device
        end_tags[TAG_DURATION_S] = result.duration_s
        end_tags[TAG_STATE] = result.state.value
        self._log(run_id, metrics=metrics, tags=end_tags)
        self.client.set_terminated(run_id, status)

    def load_trials(self) -> list[LoadedTrial]:
        """Read every trial of the study back: the source of truth for resume.

        Returns:
            The trials sorted by trial id (runs of a re-run trial id by start time).
        """
        return [self._loaded(run) for run in self._search_trials()]

    def close_orphans(self, mode: Literal["fail", "requeue"] = "fail") -> list[LoadedTrial]:
        """Close the trial runs a dead driver left ``RUNNING``; call it before new trials start.

        A run whose final state was already recorded (the driver died inside
        :meth:`end_trial`) only gets its status set and is not returned. Every other
        running trial gets the reason ``"driver died"`` and the run status ``FAILED``, and:

        * ``"fail"``: the state ``failed``: the optimiser learns it as a failed point;
        * ``"requeue"``: the state ``killed`` (not learned from) and the tag
          ``autotune.requeue=true``: the driver proposes the same params again.

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
        closed = []
        for run in self._search_trials("attributes.status = 'RUNNING'"):
            trial = self._loaded(run)
            if trial.state.is_finished:
                self.client.set_terminated(trial.run_id, _RUN_STATUS[trial.state])
                continue
            state = TrialState.FAILED if mode == "fail" else TrialState.KILLED
            new_tags = {TAG_STATE: state.value, TAG_FAILURE_REASON: DRIVER_DIED}
            if mode == "requeue":
                new_tags[TAG_REQUEUE] = "true"
            self._log(trial.run_id, tags=new_tags)
            self.client.set_terminated(trial.run_id, "FAILED")
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
        self._experiment_id = experiment_id
        return experiment_id

    def _search_trials(self, extra_filter: str | None = None) -> list[Run]:
        query = f"tags.`{TAG_PARENT_RUN_ID}` = '{self.parent_run_id}'"
        if extra_filter:
            query += f" and {extra_filter}"
        runs: list[Run] = []
        token: str | None = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], query, max_results=_SEARCH_PAGE_SIZE, page_token=token
            )
            runs.extend(run for run in page if TAG_TRIAL_ID in run.data.tags)
            token = page.token
            if not token:
                break
        runs.sort(key=lambda run: (int(run.data.tags[TAG_TRIAL_ID]), run.info.start_time))
        return runs

    def _loaded(self, run: Run) -> LoadedTrial:
        tags = dict(run.data.tags)
        status = run.info.status
        try:
            state = TrialState(tags[TAG_STATE])
        except (KeyError, ValueError):
            state = _STATE_OF_STATUS.get(status, TrialState.FAILED)
        return LoadedTrial(
            trial_id=int(tags[TAG_TRIAL_ID]),
            run_id=run.info.run_id,
            params=self._json_from_tag(run, TAG_PARAMS, run.data.params),
            state=state,
            metrics=self._json_from_tag(run, TAG_METRICS, run.data.metrics),
            tags=tags,
            status=status,
        )

    def _json_tag(self, run_id: str, text: str, name: str) -> str:
        """``text`` as a tag value, or, if too long, a reference to ``trial/<name>.json``."""
        if len(text) <= MAX_TAG_VAL_LENGTH:
            return text
        artifact_file = f"trial/{name}.json"
        self.client.log_text(run_id, text, artifact_file)
        return _ARTIFACT_REF + artifact_file

    def _json_from_tag(self, run: Run, key: str, default: Mapping[str, Any]) -> dict[str, Any]:
        text = run.data.tags.get(key)
        if text is None:
            return dict(default)
        if text.startswith(_ARTIFACT_REF):
            with tempfile.TemporaryDirectory() as tmp:
                local = self.client.download_artifacts(
                    run.info.run_id, text.removeprefix(_ARTIFACT_REF), tmp
                )
                text = Path(local).read_text()
        return dict(json.loads(text))

    def _log(
        self,
        run_id: str,
        metrics: Sequence[Any] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        from mlflow.entities import Param, RunTag

        self.client.log_batch(
            run_id,
            metrics=list(metrics),
            params=[Param(key, value) for key, value in (params or {}).items()],
            tags=[RunTag(key, _tag_value(value)) for key, value in (tags or {}).items()],
            synchronous=True,
        )


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
        given = report.get("step")
        step = int(float(given)) if isinstance(given, numbers.Real) else step
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


def _tail(text: str, limit: int) -> str:
    """The end of ``text`` (where a traceback names the error), at most ``limit`` characters."""
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


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
