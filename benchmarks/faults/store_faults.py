"""Faults while an MLflow SQLite store is created: SIGKILL during creation, concurrent first starts.

Each start is a fresh interpreter (as a driver is) that imports autotune, says ``READY``, and
then calls :func:`autotune.tracking.ensure_store` on a fresh store:

- ``kills``: the starter is SIGKILLed at a random moment (seeded) of its store creation (the
  window is one unkilled creation's measured duration). After each kill the store must be
  absent or complete (never half-made), and ``ensure_store`` + an experiment, a run and a
  metric must work on it. Each kill is on a store directory of its own (this process keeps
  MLflow's engine of every store it opened, so a store is never deleted under it).
- ``concurrent``: ``--workers`` starters wait until all are ready and then first-start one
  fresh store at the same moment, each for a study of its own (``record_lock`` held, an
  experiment, a run, a metric). Every starter must succeed.

Run ``python -m benchmarks.faults.store_faults`` (10 kills, 10 x 4 concurrent starts: a few
minutes of CPU) or with ``--kills 3 --repeats 2`` for a short size; ``--json`` for machines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_STARTER = """
import sys, time
from autotune.tracking import ensure_store, record_lock
from autotune.tracking._store import _head_revision
_head_revision()  # imports done: what follows is the store's creation
uri, study, wait = sys.argv[1], sys.argv[2], sys.argv[3] == "wait"
print("READY", flush=True)
if wait:
    sys.stdin.readline()
start = time.monotonic()
ensure_store(uri)
created_s = time.monotonic() - start
if study != "-":
    from mlflow import MlflowClient
    with record_lock(uri, study):
        client = MlflowClient(uri)
        run = client.create_run(client.create_experiment(study))
        client.log_metric(run.info.run_id, "loss", 0.5)
        client.set_terminated(run.info.run_id)
print(f"DONE {created_s:.3f}", flush=True)
"""


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": "1",
    }


def _start(uri: str, study: str, wait: bool) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _STARTER, uri, study, "wait" if wait else "go"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        raise RuntimeError(f"the starter did not start: {line!r} {proc.communicate()[1][-2000:]}")
    return proc


def _state(db: Path) -> str:
    """``absent``, ``complete`` (at this MLflow's schema, Default experiment present) or ``broken``."""
    from autotune.tracking._store import _head_revision

    if not db.exists():
        return "absent"
    try:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
            default = conn.execute(
                "SELECT name FROM experiments WHERE experiment_id = 0"
            ).fetchall()
    except sqlite3.DatabaseError:
        return "broken"
    return (
        "complete" if revision == [(_head_revision(),)] and default == [("Default",)] else "broken"
    )


def _usable(uri: str, name: str) -> bool:
    """``ensure_store`` then an experiment, a run and a metric: ``True`` if all of it works."""
    from mlflow import MlflowClient

    from autotune.tracking import ensure_store

    try:
        ensure_store(uri)
        client = MlflowClient(uri)
        run = client.create_run(client.create_experiment(name))
        client.log_metric(run.info.run_id, "loss", 0.5)
        client.set_terminated(run.info.run_id)
        return client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
    except Exception as exc:  # noqa: BLE001 - a figure, not a crash
        print(f"  not usable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return False


def kills(n_kills: int, seed: int, root: Path) -> dict[str, Any]:
    """SIGKILL ``n_kills`` first starts at random moments of their store creation."""
    calibration = _start(f"sqlite:///{root / 'calibration' / 'mlflow.db'}", "-", wait=False)
    out, err = calibration.communicate()
    if calibration.returncode != 0:
        raise RuntimeError(f"an unkilled first start failed: {err[-2000:]}")
    window_s = float(out.split()[-1])
    rng = random.Random(seed)
    states: list[str] = []
    usable = mid_creation = 0
    for i in range(n_kills):
        db = root / f"kill-{i}" / "mlflow.db"
        uri = f"sqlite:///{db}"
        proc = _start(uri, "-", wait=False)
        time.sleep(rng.uniform(0.0, window_s))
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        proc.communicate()
        mid_creation += proc.returncode == -signal.SIGKILL
        states.append(_state(db))
        usable += _usable(uri, f"after-kill-{i}")
    return {
        "kills": n_kills,
        "killed_mid_creation": mid_creation,
        "creation_window_s": round(window_s, 2),
        "left_half_made": sum(s == "broken" for s in states),
        "left_absent": states.count("absent"),
        "left_complete": states.count("complete"),
        "usable_after": usable,
    }


def concurrent(n_repeats: int, n_workers: int, root: Path) -> dict[str, Any]:
    """``n_repeats`` times, ``n_workers`` first starts of one fresh store at the same moment."""
    ok_repeats = ok_starters = 0
    for rep in range(n_repeats):
        db = root / f"concurrent-{rep}" / "mlflow.db"
        uri = f"sqlite:///{db}"
        procs = [_start(uri, f"study-{i}", wait=True) for i in range(n_workers)]
        for proc in procs:  # all are ready (imports done): go
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        codes = []
        for proc in procs:
            _, err = proc.communicate()
            codes.append(proc.returncode)
            if proc.returncode != 0:
                print(f"  repeat {rep}: a starter failed: {err[-1500:]}", file=sys.stderr)
        ok = sum(code == 0 for code in codes)
        ok_starters += ok
        ok_repeats += ok == n_workers and _state(db) == "complete"
    return {
        "repeats": n_repeats,
        "workers": n_workers,
        "repeats_all_succeeded": ok_repeats,
        "starters_succeeded": ok_starters,
        "starters": n_repeats * n_workers,
    }


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print the figures (exit 1 if any fault was not survived)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="autotune-store-faults-") as tmp:
        start = time.monotonic()
        k = kills(args.kills, args.seed, Path(tmp))
        c = concurrent(args.repeats, args.workers, Path(tmp))
        elapsed_s = time.monotonic() - start
    if args.json:
        print(json.dumps({"kills": k, "concurrent": c, "elapsed_s": round(elapsed_s, 1)}))
    else:
        print(
            f"SIGKILL during first start: {k['usable_after']}/{k['kills']} stores usable afterwards "
            f"({k['killed_mid_creation']} kills landed mid-creation, creation window "
            f"{k['creation_window_s']} s; left half-made {k['left_half_made']}, absent "
            f"{k['left_absent']}, complete {k['left_complete']})"
        )
        print(
            f"concurrent first starts: {c['repeats_all_succeeded']}/{c['repeats']} repeats with all "
            f"{c['workers']} starters succeeding ({c['starters_succeeded']}/{c['starters']} starters)"
        )
        print(f"elapsed {elapsed_s:.0f} s")
    survived = k["usable_after"] == k["kills"] and k["left_half_made"] == 0
    return 0 if survived and c["repeats_all_succeeded"] == c["repeats"] else 1


if __name__ == "__main__":
    sys.exit(main())
