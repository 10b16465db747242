"""Fuzzed study and space files: 0 uncaught, 0 accepted-invalid, every error names file, key and value.

The short size (200 files) runs here; the long size (10,000) is
``python -m benchmarks.faults.fuzz_config --n 10000``. The oracle and the message check are
themselves tested: a permissive loader must be caught accepting each known-invalid class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from autotune.exceptions import StudyConfigError
from benchmarks.faults import fuzz_config as fuzz


def test_two_hundred_fuzzed_files_get_clean_errors_or_are_valid() -> None:
    summary = fuzz.run_fuzz(200, seed=1, workers=1)
    counts = summary["counts"]
    findings = [(f["result"], f["ops"], f["detail"]) for f in summary["findings"]]
    assert counts["uncaught"] == 0, findings
    assert counts["accepted_crash"] == 0, findings
    assert counts["accepted_invalid"] == 0, findings
    assert counts["error_incomplete"] == 0, findings
    # The generator really produces both kinds, and every textual attack ran.
    assert counts["error"] >= 100 and counts["accepted"] >= 10, counts
    assert {"deep", "utf8", "duplicate", "bomb", "recursive", "huge_int"} <= set(summary["mutations"])
    assert {"bool_int", "huge_condition", "uri", "strategy_option", "executor_option", "only_fixed"} <= set(
        summary["mutations"])
    assert summary["max_seconds_per_file"] < fuzz.TIME_LIMIT_S


def _permissive(kind: str, path: Path) -> Any:
    return yaml.safe_load(path.read_bytes().decode("utf-8"))


GOOD_STUDY = {
    "name": "s", "space": {"parameters": {"x": {"type": "float", "low": 0, "high": 1}}},
    "objective": {"metric": "loss"}, "budget": {"max_trials": 5}, "trial": {"entry_point": "train:train"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (yaml.safe_dump(GOOD_STUDY) + "budget: {max_trials: 3}\n", "duplicate_key"),
        (yaml.safe_dump({**GOOD_STUDY, "budget": {"max_trials": True}}), "bool_as_number"),
        (yaml.safe_dump({**GOOD_STUDY, "constraints": ["n <= nan"]}), "bad_constraint"),
        (yaml.safe_dump({**GOOD_STUDY, "tracking_uri": "sqlite:///:memory:"}), "bad_tracking_uri"),
        (yaml.safe_dump({**GOOD_STUDY, "space": {"parameters": {"x": {"type": "fixed", "value": 1}}}}),
         "nothing_to_tune"),
        (yaml.safe_dump({**GOOD_STUDY, "space": {"parameters": {"x": {"type": "bool"}}, "extra": 1}}),
         "unknown_key_in_space"),
        (yaml.safe_dump({**GOOD_STUDY, "strategy": {"name": "ei", "options": {"raw_samples": -5}}}),
         "bad_strategy_option"),
        (yaml.safe_dump({**GOOD_STUDY, "executor": {"name": "local", "options": {"kill_grace": 1}}}),
         "unknown_executor_option"),
        (yaml.safe_dump({**GOOD_STUDY, "trial": {"entry_point": "t:t", "fixed_args": {"a": float("nan")}}}),
         "nonfinite_number"),
    ],
    ids=lambda v: v if isinstance(v, str) and "\n" not in v else None,
)
def test_the_oracle_catches_a_loader_that_accepts_known_invalid_files(tmp_path: Path, text: str,
                                                                      expected: str) -> None:
    result, detail = fuzz.run_case("study", tmp_path / "x.yaml", text.encode(), loader=_permissive)
    assert result == "accepted_invalid" and expected in detail.split(","), (result, detail)
    assert fuzz.run_case("study", tmp_path / "ok.yaml", yaml.safe_dump(GOOD_STUDY).encode(),
                         loader=_permissive) == ("accepted", "")


def test_an_error_without_key_or_value_is_counted_incomplete(tmp_path: Path) -> None:
    path = str(tmp_path / "x.yaml")
    assert fuzz.names_file_key_value(StudyConfigError(f"{path}: budget", "bad", 3), path) == ""
    assert fuzz.names_file_key_value(StudyConfigError(path, "bad", 3), path) == "key"
    assert fuzz.names_file_key_value(StudyConfigError(f"{path}: budget", "bad"), path) == "value"
    assert fuzz.names_file_key_value(StudyConfigError("budget", "bad", 3), path) == "file"
    assert fuzz.names_file_key_value(StudyConfigError(f"{path}: objective", "is required"), path) == ""


def test_a_loader_that_raises_something_else_is_counted_uncaught(tmp_path: Path) -> None:
    def crash(kind: str, path: Path) -> Any:
        raise RecursionError("deep")

    assert fuzz.run_case("study", tmp_path / "x.yaml", b"a: 1\n", loader=crash) == ("uncaught", "RecursionError: deep")


def test_cases_are_deterministic_and_mutated() -> None:
    seeds = fuzz.seed_files()
    assert {kind for kind, _ in seeds} == {"study", "space"}
    first = [fuzz.make_case(i, 7, seeds) for i in range(20)]
    assert first == [fuzz.make_case(i, 7, seeds) for i in range(20)]
    assert all(raw != src.read_bytes() for _, src, raw, ops in first if ops != ["noop"])


def test_the_oracle_knows_every_top_level_key_of_a_study_file() -> None:
    from autotune.study._config import EarlyStoppingConfig, StudyConfig

    # a key the oracle does not know makes every valid file that uses it an "accepted invalid" finding
    assert set(fuzz.TOP_KEYS) == set(StudyConfig.model_fields)
    assert set(fuzz.SECTION_KEYS["early_stopping"]) == set(EarlyStoppingConfig.model_fields)
