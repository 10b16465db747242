"""The learning-curve table builders reproduce the tables they shipped (real training, one row each).

Each builder runs as a script from ``benchmarks/lc_tables/`` (its imports are by name there), so
every check runs in a subprocess of its own, as the builder would.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

LC = Path(__file__).resolve().parents[2] / "benchmarks" / "lc_tables"


def _run(code: str) -> Any:
    """Run ``code`` in a fresh interpreter in the builders' folder; it prints one JSON value."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=LC, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _shipped_row(table: str, config: dict[str, Any]) -> tuple[list[float], str]:
    with gzip.open(LC / f"{table}.json.gz", "rt", encoding="utf-8") as f:
        data = json.load(f)
    (row,) = [r for r in data["rows"] if r["config"] == config]
    return row[data["metric"]], data["metric"]


def test_the_digits_mlp_builder_reproduces_its_shipped_row_bit_for_bit() -> None:
    config = {"lr": 1e-3, "width": 16, "depth": 1, "activation": "relu", "weight_decay": 0.0, "batch_size": 128}
    shipped, metric = _shipped_row("digits_mlp", config)
    rebuilt = _run(
        "import json, torch; torch.set_num_threads(1)\n"
        "import build_digits_mlp as B\nfrom _table import mean_curves\n"
        f"data = B.digits_split(); c = {config!r}\n"
        f"print(json.dumps(mean_curves([B.train(c, s, data) for s in B.SEEDS], [{metric!r}], B.EPOCHS)[{metric!r}]))"
    )
    assert rebuilt == shipped


def test_the_digits_cnn_builder_reproduces_its_shipped_row() -> None:
    config = {"optimizer": "adam", "lr": 1e-3, "channels": 4, "n_conv": 1, "batch_norm": False, "dropout": 0.0,
              "batch_size": 128}
    shipped, metric = _shipped_row("digits_cnn", config)
    rebuilt = _run(
        "import json, torch; torch.set_num_threads(1)\n"
        "import build_digits_cnn as B\nfrom build_digits_mlp import digits_split\n"
        f"print(json.dumps(B.train({config!r}, 0, digits_split())[{metric!r}]))"
    )
    assert len(rebuilt) == len(shipped) == 27
    # Convolutions may differ in the last bits between CPUs: equal to the table's 6 decimals.
    assert rebuilt == pytest.approx(shipped, abs=2e-6)
    assert rebuilt[-1] < rebuilt[0]  # it learned


def test_the_solubility_builder_reproduces_its_shipped_row_through_the_studys_own_training() -> None:
    pytest.importorskip("rdkit")
    config = {"optimizer": "adam", "lr": 1e-3, "n_layers": 1, "width_1": 32, "dropout": 0.0, "batch_size": 64}
    shipped, metric = _shipped_row("solubility_mlp", config)
    rebuilt = _run(
        "import json, torch; torch.set_num_threads(1)\nimport build_solubility_mlp as B\n"
        f"print(json.dumps([round(v, 6) for v in B.train({config!r}, 0)[{metric!r}]]))"
    )
    assert rebuilt == pytest.approx(shipped, abs=2e-6)


def test_two_studies_in_one_process_is_a_clear_error_not_the_wrong_training_code() -> None:
    """The studies' ``train`` modules share a name: the second would silently be the first."""
    result = _run(
        "import json\nfrom _table import study_module\nfrom build_forecast_rnn import STUDY\n"
        "from build_solubility_mlp import STUDY as SOL\n"
        "study_module(STUDY)\n"
        "try:\n    study_module(SOL)\nexcept RuntimeError as e:\n    print(json.dumps(str(e)))\n"
        "else:\n    print(json.dumps(None))"
    )
    assert result is not None and "studies/forecast/train.py" in result and "process of its own" in result
