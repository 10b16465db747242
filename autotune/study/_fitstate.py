"""The objective GP's hyperparameters kept in the study record, so a fresh process asks warm.

:class:`~autotune.study.RemoteStudy` rebuilds its optimiser from the MLflow record at every
call (either side may restart at any time), which would fit every GP from scratch. Instead,
each ask stores the fitter's last good hyperparameters (:meth:`autotune.models.GPFitter.export_state`,
a few hundred bytes at small ``d``) as a tag of the study's parent run, and the next ask,
in this process or another, warm-starts from them. A state written for another space,
kernel or length-scale bounds, or one that cannot be read, is ignored: the GP is then fitted
cold, as before, so a stale or foreign state never changes what is valid, only how fast.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autotune.optimizer import Optimizer
    from autotune.study._record import StudyRecord

logger = logging.getLogger(__name__)

FIT_STATE_TAG = "autotune.gp_state"
"""The parent-run tag holding the GP hyperparameters (JSON)."""

MAX_TAG_CHARS = 5000
"""A larger state (many parameters) is not stored: MLflow's tag values are limited."""


def load_fit_state(record: StudyRecord, optimizer: Optimizer) -> int:
    """Warm-start ``optimizer``'s GP fitter from the record; returns how many GPs were loaded (0: cold)."""
    tracker = record.tracker
    try:
        text = tracker.client.get_run(tracker.parent_run_id).data.tags.get(FIT_STATE_TAG)
        return optimizer.fitter.import_state(json.loads(text)) if text else 0
    except Exception as exc:  # noqa: BLE001 - a state that cannot be read only costs a cold fit
        logger.debug("no GP state read from the record: %s", exc)
        return 0


def save_fit_state(record: StudyRecord, optimizer: Optimizer) -> bool:
    """Store ``optimizer``'s last good GP hyperparameters in the record; ``False`` when none or too large."""
    state = optimizer.fitter.export_state()
    if not state["names"]:
        return False
    text = json.dumps(state, separators=(",", ":"))
    if len(text) > MAX_TAG_CHARS:
        return False
    try:
        record.tracker.set_study_tags({FIT_STATE_TAG: text})
    except Exception as exc:  # noqa: BLE001 - never fail an ask for a speed-up
        logger.debug("the GP state could not be stored: %s", exc)
        return False
    return True
