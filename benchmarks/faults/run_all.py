"""Run the fault suites at one size and write their figures to ``benchmarks/results/faults.md``.

::

    nice python -m benchmarks.faults.run_all --size long                 # every suite
    nice python -m benchmarks.faults.run_all --size long --only outage   # one suite; the others' sections stay

To measure one commit while others edit the tree, run a snapshot of it (the stamp then names
the snapshot's commit)::

    git archive HEAD autotune | tar -x -C /tmp/snap && git log -1 --format='%h %s' > /tmp/snap/COMMIT
    cd /tmp && PYTHONPATH=/tmp/snap:$REPO nice python -m benchmarks.faults.run_all --size long

Each suite owns one section of the report, between ``<!-- faults:NAME -->`` markers, stamped
with its command, date, autotune commit, machine and the CPU time it cost; running one suite
replaces only its section.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import importlib.util
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.faults import driver_kills, server_outage
from benchmarks.faults._common import REPO, children_cpu_s, git_commit, machine

__all__ = ["SUITES", "main", "replace_section"]

REPORT = REPO / "benchmarks" / "results" / "faults.md"

HEADER = """# Fault injection (issue 13)

Faults injected into real `autotune` processes, black-box: the `autotune` command (`run`,
`resume`, `status --format json`) in subprocesses, local trial processes, SQLite stores or a
real `mlflow server`; the record read back with `MlflowClient`, the trials' own files and an
executions log each trial execution appends a unique token to (outside the study). Trials
sleep 0.2-2 s and report 4 steps (`benchmarks/faults/study/`); strategy `random` (the faults
hit the driver, the store and the record, not the model). Code: `benchmarks/faults/`; short
sizes run in `tests/faults/`. Each section says when and on which code it was measured.
"""


def _suite_kill_study(args: argparse.Namespace, root: Path) -> list[str]:
    size, seed = args.size, args.seed
    s = driver_kills.SIZES[size]
    lines: list[str] = []
    for on_orphans in args.on_orphans:
        folder = root / on_orphans
        folder.mkdir()
        r = driver_kills.kill_study(folder, max_trials=s["max_trials"], workers=s["workers"], n_kills=s["n_kills"],
                                    seed=seed, on_orphans=on_orphans, max_delay_s=s["max_delay_s"],
                                    ask_status=True, log=print)
        lines += [f"### on_orphans: {on_orphans}", "", *driver_kills.kill_study_markdown(r, s["n_kills"]), ""]
    return [f"## Driver SIGKILL x {s['n_kills']} at random moments across a {s['max_trials']}-trial study", "",
            (f"Local executor, {s['workers']} workers, SQLite store. Kill moments (seed {seed}): each kill waits for a "
            f"target number of finished trials (sorted uniform draws up to 90 % of the budget) and a uniform "
            f"0-{s['max_delay_s']:.0f} s after its driver started; then `autotune resume` (`run` when a kill came "
            "before the record existed), until a start ends by itself."), "", *lines]


def _suite_first_start(args: argparse.Namespace, root: Path) -> list[str]:
    size, seed = args.size, args.seed
    tries = args.tries or driver_kills.SIZES[size]["first_tries"]
    window, out = driver_kills.first_start_kills(root, tries=tries, seed=seed, log=print)
    return [f"## SIGKILL during the first start (store creation) x {tries}", "",
            ("Each try: a fresh study (2 trials); its first `autotune run` is SIGKILLed, then `autotune run` again "
            "(`resume` if the record already had trials) must finish it: exit 0, every trial completed, no run "
            "RUNNING."), "", *driver_kills.first_start_markdown(window, out)]


def _suite_concurrent(args: argparse.Namespace, root: Path) -> list[str]:
    size, seed = args.size, args.seed
    tries = args.tries or driver_kills.SIZES[size]["pairs"]
    out = driver_kills.concurrent_first_starts(root, tries=tries, seed=seed, log=print)
    return [f"## Two different studies' first starts at once on one fresh store x {tries}", "",
            "Each try: a fresh SQLite file; two `autotune run` of two studies (2 trials each) started together.", "",
            *driver_kills.concurrent_markdown(out)]


def _suite_outage(args: argparse.Namespace, root: Path) -> list[str]:
    size, seed = args.size, args.seed
    s = server_outage.SIZES[size]
    r = server_outage.server_outage(root, seed=seed, log=print, **s)
    return [f"## MLflow server killed for {s['outage_s']:.0f} s mid-study", "",
            (f"`mlflow server --backend-store-uri sqlite:///... --host 127.0.0.1 --port P`; a {s['max_trials']}-trial "
            f"study ({s['workers']} workers, trials {s['min_s']}-{s['max_s']} s) logs to it; after {s['kill_after']} "
            f"finished trials the server's process group is SIGKILLed and restarted {s['outage_s']:.0f} s later on "
            "the same port and store. Lost = a point in a trial's `reports.jsonl` (metric, step, value) or a final "
            "metric in its `result.json` that the record does not hold."), "",
            *server_outage.outage_markdown(r, s["outage_s"])]


SUITES: dict[str, Callable[[argparse.Namespace, Path], list[str]]] = {
    "kill_study": _suite_kill_study,
    "first_start": _suite_first_start,
    "concurrent": _suite_concurrent,
    "outage": _suite_outage,
}
"""Each suite, in report order: ``fn(args, root) -> Markdown lines``."""


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the section ``name`` replaced by ``body`` (or appended, in :data:`SUITES` order)."""
    begin, end = f"<!-- faults:{name} -->", f"<!-- /faults:{name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    names = list(SUITES)
    for later in names[names.index(name) + 1:] if name in names else []:
        marker = f"<!-- faults:{later} -->"
        if marker in text:
            return text.replace(marker, block + "\n\n" + marker, 1)
    return text.rstrip() + "\n\n" + block + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suites and update the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("short", "long"), default="long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=sorted(SUITES), action="append", help="run only this suite (repeatable)")
    parser.add_argument("--on-orphans", nargs="+", choices=("fail", "requeue"), default=["fail"],
                        help="the kill_study suite runs once per mode (default: fail, the study default)")
    parser.add_argument("--tries", type=int, help="override the tries of first_start and concurrent")
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    missing = [name for name in ("torch", "mlflow", "botorch") if importlib.util.find_spec(name) is None]
    if missing:  # the drivers run with this interpreter: they would all fail at import
        parser.error(f"{sys.executable} lacks {', '.join(missing)}: activate the project's environment first "
                     "(. .venv/bin/activate).")
    command = "python -m benchmarks.faults.run_all " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    for name in args.only or list(SUITES):
        cpu0, wall0 = children_cpu_s(), time.monotonic()
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        commit = git_commit()
        with tempfile.TemporaryDirectory(prefix=f"autotune-faults-{name}-") as tmp:
            lines = SUITES[name](args, Path(tmp))
        stamp = (f"*Measured {date} on commit `{commit}` with `OMP_NUM_THREADS=1 nice {command}` "
                 f"(size {args.size}): {time.monotonic() - wall0:.0f} s wall, at least "
                 f"{children_cpu_s() - cpu0:.0f} CPU s in subprocesses. Machine: {machine()}.*")
        lock_path = Path(tempfile.gettempdir()) / "autotune-faults-report.lock"  # not in the repository
        with open(lock_path, "w", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # suites may run in parallel processes
            text = args.out.read_text(encoding="utf-8") if args.out.is_file() else HEADER
            args.out.write_text(replace_section(text, name, "\n".join([*lines, "", stamp])), encoding="utf-8")
        print(f"faults: section {name} written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
