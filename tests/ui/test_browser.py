"""Review a finished study in the MLflow UI as a user would: the record, then a real browser.

A small study (real driver, local executor, one deliberately failing trial) runs once per
module. The record must carry what the UI shows first (the runs view, the study run's
description and parameters, the analysis views); then ``mlflow ui``, started as ``autotune ui``
starts it, is opened in headless Chromium (Debian's ``chromium``) at the link ``autotune ui``
prints, and the rendered page must show the objective column, the trials best first, the
failure reason and the description. Screenshots go to ``$AUTOTUNE_ARTIFACTS`` (CI keeps them)
or the test's temporary folder. Skipped with a message when ``chromium`` is not installed.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autotune.study import Study, StudyConfig, StudyRecord, load_study_config
from autotune.tracking import NOTE_TAG, RUNS_VIEW_KEY
from tests.study.helpers import FNS, write_study

pytestmark = pytest.mark.slow

FAILING_TRIAL = 2
SERVER_START_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory,
             mlflow_store_factory: Callable[[Path], str]) -> tuple[StudyConfig, StudyRecord]:
    folder = tmp_path_factory.mktemp("ui-study")
    path = write_study(folder, mlflow_store_factory, name="ui", budget={"max_trials": 7},
                       strategy={"name": "ei"},
                       trial={"entry_point": f"{FNS}:quadratic",
                              "fixed_args": {"steps": 3, "fail_trials": [FAILING_TRIAL]}})
    config = load_study_config(path)
    summary = Study(config).optimize(progress=False)
    assert summary.counts["completed"] == 6 and summary.counts["failed"] == 1, summary.counts
    record = StudyRecord(config)
    assert record.exists()  # opens the record for reading
    return config, record


def test_the_record_holds_the_view_the_description_and_the_analysis(
        finished: tuple[StudyConfig, StudyRecord]) -> None:
    config, record = finished
    tracker = record.tracker
    parent = tracker.client.get_run(tracker.parent_run_id)
    assert parent.data.params["objective"] == "loss" and parent.data.params["strategy"] == "ei"
    assert parent.data.params["max_trials"] == "7"
    note = parent.data.tags[NOTE_TAG]
    best = min((t for t in record.trials() if t.value("loss") is not None), key=lambda t: t.value("loss") or 0.0)
    assert f"trial {best.trial_id}, `loss` = " in note and f"runs/{best.run_id})" in note
    assert "| completed | 6 |" in note and "| failed | 1 |" in note and "autotune run " in note
    assert "path=plots%2Fconvergence.png" in note and "analysis/analysis.html" in note, note
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert f"mlflow.sharedViewState.{RUNS_VIEW_KEY}" in experiment.tags
    artifacts = {a.path for a in tracker.client.list_artifacts(tracker.parent_run_id, "analysis")}
    assert artifacts == {"analysis/analysis.html"}
    text = (config.resolved_output_dir / "analysis" / "analysis.html").read_text(encoding="utf-8")
    assert "Parameter importance" in text or "importance" in text


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium): the browser test is skipped")
    return exe


@pytest.fixture(scope="module")
def ui(finished: tuple[StudyConfig, StudyRecord], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow ui`` over the study's store, started with the command line ``autotune ui`` uses."""
    from autotune.cli import _free_port, ui_argv

    _chromium()
    config, _ = finished
    port = _free_port("127.0.0.1")
    log = tmp_path_factory.mktemp("ui-log") / "ui.log"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "ab") as out:
        proc = subprocess.Popen(ui_argv(config, port), stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow ui did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.25)
        yield base
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("AUTOTUNE_ARTIFACTS") or tmp_path) / "ui-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _render(url: str, screenshot: Path) -> str:
    """The page's DOM after its scripts ran (and a screenshot of it), by headless Chromium."""
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--window-size=2400,1300", "--virtual-time-budget=25000"]
    subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=False)
    done = subprocess.run([*base, "--dump-dom", url], capture_output=True, timeout=120, check=False, text=True)
    return done.stdout


def _text(dom: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", dom))


def test_the_link_autotune_ui_prints_shows_the_trials_best_first(
        finished: tuple[StudyConfig, StudyRecord], ui: str, tmp_path: Path) -> None:
    from autotune.cli import _study_link

    config, record = finished
    link = _study_link(config, ui)
    assert f"viewStateShareKey={RUNS_VIEW_KEY}" in link
    dom = _render(link, _shots(tmp_path) / "runs_view.png")
    text = _text(dom)
    assert "loss" in text, text[:2000]
    assert "diverged: a deliberately failing trial" in text  # the failure-reason column
    # rows in display order (ag-grid positions rows by their row-index attribute)
    rows: dict[int, str] = {}
    for match in re.finditer(r'row-index="(\d+)"(.*?)(?=row-index="|\Z)', dom, re.S):
        name = re.search(r"trial-(\d+)", match.group(2))
        if name is not None:
            rows.setdefault(int(match.group(1)), name.group(0))
    shown = [rows[i] for i in sorted(rows)]
    # sorted by each run's `loss` metric: the final value, or a failed trial's last report
    client = record.tracker.client
    latest = {t.trial_id: client.get_run(t.run_id).data.metrics["loss"] for t in record.trials()}
    assert len(set(shown)) == 7, shown  # every trial, listed flat (not folded under the study run)
    assert shown == [f"trial-{tid}" for tid in sorted(latest, key=latest.__getitem__)], (shown, latest)


def test_the_study_run_page_shows_the_description(
        finished: tuple[StudyConfig, StudyRecord], ui: str, tmp_path: Path) -> None:
    _, record = finished
    tracker = record.tracker
    url = f"{ui}/#/experiments/{tracker.experiment_id}/runs/{tracker.parent_run_id}"
    text = _text(_render(url, _shots(tmp_path) / "study_run.png"))
    assert "Best:" in text and "Resume and review" in text, text[:3000]
