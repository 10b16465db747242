"""SIGKILL the ``autotune`` driver: at random moments of a study, during its first start, and
two first starts at once on one fresh store.

Three measurements, each through real ``autotune`` processes:

- :func:`kill_study`: a study (local executor, SQLite store in a temporary folder) is started
  with ``autotune run``; the driver is SIGKILLed at random moments (seeded), each time
  ``autotune resume`` (possibly killed again) until the study ends. Then: finished trials lost
  (``result.json`` says ``completed`` but the record does not hold that run ``FINISHED`` with
  that value), finished trials re-run (an execution started after one had returned: each
  execution appends a unique token to a log outside the study), runs left ``RUNNING``, trial
  processes still alive after the end, and the budget (trials the record counts against
  ``max_trials``).
- :func:`first_start_kills`: a fresh study's first ``autotune run`` SIGKILLed while it creates
  its store; then ``autotune run`` again must finish the study.
- :func:`concurrent_first_starts`: two different studies started at the same moment on one
  fresh store; both must finish.

Run ``python -m benchmarks.faults.driver_kills --size long`` (the issue's figures) or
``--size short`` (what ``tests/faults/test_driver_kills.py`` runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.faults._common import (
    Executions,
    Proc,
    Record,
    StudyFiles,
    autotune_argv,
    cleanup,
    close,
    make_study,
    processes_under,
    read_record,
    sqlite_state,
    status_json,
    trial_results,
    wait_for,
)

__all__ = [
    "ConcurrentTry",
    "FirstStartKill",
    "KillStudyResult",
    "Start",
    "concurrent_first_starts",
    "first_start_kills",
    "kill_study",
]

START_TIMEOUT_S = 300.0
"""Longest a driver may run before the harness gives up on it (it is then killed, and noted)."""


@dataclasses.dataclass
class Start:
    """One driver start.

    Attributes:
        command: ``run`` or ``resume``.
        killed_after_s: When the harness killed it (seconds after the start), or ``None``.
        moment: What the kill waited for (``"t+3.2s"``, ``">=12 finished +0.4s"``, ``"store"``...).
        finished_at_kill: Trials with a returned execution when it was killed.
        rc: Its exit code when it ended by itself (``None`` when killed or timed out).
        timed_out: Whether it passed its time limit.
        stderr_tail: The end of its standard error when it exited with an error.
    """

    command: str
    killed_after_s: float | None = None
    moment: str = ""
    finished_at_kill: int | None = None
    rc: int | None = None
    timed_out: bool = False
    stderr_tail: str = ""


@dataclasses.dataclass
class KillStudyResult:
    """What a killed and resumed study left behind.

    Attributes:
        max_trials: The budget.
        on_orphans: The study's ``on_orphans``.
        kills: Driver kills made.
        starts: Every driver start in order.
        finished: The last driver exited 0 and the record holds ``max_trials`` counted trials.
        completed_results: Trial ids whose ``result.json`` says ``completed``.
        lost: Of those, trial ids the record does not hold ``FINISHED``/``completed`` with the
            result file's objective value.
        lost_reasons: How each lost trial is recorded (``state/status: failure reason``).
        rerun: Trial ids executed again after an execution of theirs had returned.
        restarted_unfinished: Trial ids started again after a killed, unfinished execution.
        executions: Trial executions started.
        running_runs: Runs (parent included) left ``RUNNING``.
        orphans: Command lines of trial processes alive after the last driver ended.
        counts: Latest run per trial id, per ``autotune.state`` (from the record).
        counted: Trials counted against the budget (every state but ``killed``).
        status_counts: ``autotune status --format json`` counts (``None`` when not asked).
        wall_s: Wall-clock seconds of the whole measurement.
    """

    max_trials: int
    on_orphans: str
    kills: int = 0
    starts: list[Start] = dataclasses.field(default_factory=list)
    finished: bool = False
    completed_results: list[int] = dataclasses.field(default_factory=list)
    lost: list[int] = dataclasses.field(default_factory=list)
    lost_reasons: dict[int, str] = dataclasses.field(default_factory=dict)
    rerun: list[int] = dataclasses.field(default_factory=list)
    restarted_unfinished: list[int] = dataclasses.field(default_factory=list)
    executions: int = 0
    running_runs: list[str] = dataclasses.field(default_factory=list)
    orphans: list[str] = dataclasses.field(default_factory=list)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    counted: int = 0
    status_counts: dict[str, int] | None = None
    wall_s: float = 0.0

    @property
    def failed_starts(self) -> list[Start]:
        """Starts that exited non-zero by themselves, or timed out."""
        return [s for s in self.starts if s.timed_out or (s.killed_after_s is None and s.rc not in (0, None)
                                                          and not _refused_no_record(s))]


def _refused_no_record(start: Start) -> bool:
    """A ``resume`` refused because a kill came before the study's record existed (correct behaviour)."""
    return start.command == "resume" and start.rc == 2 and "no record to resume" in start.stderr_tail


def _finished_count(study: StudyFiles) -> int:
    return len(Executions.read(study.executions_log).finished_trials())


def _plan_kills(rng: random.Random, n_kills: int, max_trials: int, max_delay_s: float) -> list[tuple[int, float]]:
    """Seeded kill moments: ``(finished trials to wait for, then seconds to wait)`` per kill.

    The targets are spread over the study (sorted uniform draws up to 90 % of the budget);
    each kill also waits a uniform ``0..max_delay_s`` after its driver started, so kills whose
    target is already reached land at random points of a start (imports, store, orphans, loop).
    """
    targets = sorted(rng.randrange(0, max(1, int(0.9 * max_trials))) for _ in range(n_kills))
    return [(target, rng.uniform(0.0, max_delay_s)) for target in targets]


def kill_study(
    root: Path,
    *,
    max_trials: int = 60,
    workers: int = 4,
    n_kills: int = 20,
    seed: int = 0,
    on_orphans: str = "fail",
    min_s: float = 0.2,
    max_s: float = 2.0,
    max_delay_s: float = 20.0,
    first_kill_in_store_creation: bool = False,
    ask_status: bool = False,
    start_timeout_s: float = START_TIMEOUT_S,
    log: Any = None,
    overrides: Mapping[str, Any] | None = None,
) -> KillStudyResult:
    """Kill a study's driver ``n_kills`` times, resume until it ends, and measure the record.

    Args:
        root: An empty temporary folder (everything is created and left under it).
        max_trials: The study's budget.
        workers: Parallel trials (local executor).
        n_kills: SIGKILLs of the driver.
        seed: Seeds the kill moments and the study.
        on_orphans: The study's ``on_orphans`` (``fail`` or ``requeue``).
        min_s: Shortest trial.
        max_s: Longest trial.
        max_delay_s: A kill waits up to this long after its start (see :func:`_plan_kills`).
        first_kill_in_store_creation: Make the first kill land while the first ``run`` creates
            its store (a random moment up to 3 s after the output folder appears).
        ask_status: Also read the counts with ``autotune status --format json``.
        start_timeout_s: Longest one driver start may run.
        log: ``print``-like progress callback (``None``: silent).
        overrides: Top-level sections replaced in the study file (e.g. ``early_stopping``).

    Returns:
        The figures.
    """
    say = log or (lambda *a: None)
    wall = time.monotonic()
    rng = random.Random(seed)
    study = make_study(root, "killed", max_trials=max_trials, workers=workers, min_s=min_s, max_s=max_s,
                       on_orphans=on_orphans, seed=seed, overrides=overrides)
    plan = _plan_kills(rng, n_kills, max_trials, max_delay_s)
    result = KillStudyResult(max_trials=max_trials, on_orphans=on_orphans)
    procs: list[Proc] = []
    with cleanup(root, procs):
        command = "run"
        consecutive_errors = 0
        while True:
            kill = plan[result.kills] if result.kills < len(plan) else None
            label = f"driver{len(result.starts):02d}_{command}"
            proc = Proc([*autotune_argv(), command, str(study.study_file), "--no-progress"], root, label,
                        cwd=study.folder)
            procs.append(proc)
            start = Start(command)
            result.starts.append(start)
            if kill is not None:
                if first_kill_in_store_creation and result.kills == 0:
                    delay = rng.uniform(0.0, 3.0)
                    appeared = wait_for(lambda p=proc: study.output_dir.exists() or not p.alive(), start_timeout_s)
                    time.sleep(delay)
                    start.moment = f"first start: output folder +{delay:.2f} s" if appeared else "first start"
                else:
                    target, delay = kill
                    start.moment = f">= {target} finished and t >= {delay:.1f} s"
                    wait_for(lambda p=proc, n=target, t=delay: not p.alive() or (_finished_count(study) >= n and p.age_s >= t),
                             start_timeout_s)
                if not proc.alive():
                    start.moment = ""  # it ended before its kill: the kill goes to the next start
                else:
                    start.finished_at_kill = _finished_count(study)
                    start.killed_after_s = round(proc.age_s, 2)
                    proc.kill()  # SIGKILL of the driver only: its trials run on in their own sessions
                    if command == "run":
                        start.moment += f" (store {sqlite_state(study.sqlite_file)})"
                    result.kills += 1
                    say(f"kill {result.kills}/{n_kills}: {label} after {start.killed_after_s} s "
                        f"({start.finished_at_kill} trials finished)")
                    command = "resume"
                    continue
            start.rc = proc.wait(start_timeout_s)
            start.timed_out = start.rc is None
            if start.rc != 0:
                start.stderr_tail = proc.stderr_tail()
            say(f"{label} exited rc={start.rc}" + (f": {start.stderr_tail[-200:]!r}" if start.rc else ""))
            if start.rc == 0:
                break
            if _refused_no_record(start):
                command = "run"  # killed before the record existed: start it as a new study
                continue
            consecutive_errors += 1
            if consecutive_errors >= 3:
                break
            command = "resume"
        time.sleep(1.0)  # a trial process exiting right now is not an orphan
        result.orphans = [cmd for _, cmd in processes_under(study.output_dir)]
        _measure(study, result)
        if ask_status:
            rc, data = status_json(study, root, "status", start_timeout_s)
            result.status_counts = data.get("counts") if rc == 0 else None
    result.wall_s = time.monotonic() - wall
    return result


def _measure(study: StudyFiles, result: KillStudyResult) -> None:
    """Compare the record with the result files and the executions log."""
    record: Record = read_record(study.tracking_uri, study.name)
    executions = Executions.read(study.executions_log)
    results = trial_results(study.output_dir)
    latest = record.latest()
    result.executions = executions.n_executions
    result.rerun = executions.rerun_after_finish()
    result.restarted_unfinished = executions.restarted_unfinished()
    result.running_runs = record.running_runs
    result.counts = record.counts()
    result.counted = sum(n for state, n in result.counts.items() if state != "killed")
    result.finished = (result.starts[-1].rc == 0 and result.counted == study.max_trials)
    for tid, res in sorted(results.items()):
        if res.get("state") != "completed":
            continue
        result.completed_results.append(tid)
        value = (res.get("metrics") or {}).get("loss")
        runs = [t for t in record.trials if t.trial_id == tid]
        ok = any(t.status == "FINISHED" and t.state == "completed" and value is not None
                 and close(t.metrics.get("loss", float("nan")), float(value)) for t in runs)
        trial = latest.get(tid)
        if ok and trial is not None and trial.state == "completed":
            continue
        result.lost.append(tid)
        if trial is None:
            result.lost_reasons[tid] = "no run"
            continue
        recorded = value is not None and close(trial.metrics.get("loss", float("nan")), float(value))
        reason = f": {trial.failure_reason[:80]}" if trial.failure_reason else ""
        result.lost_reasons[tid] = (f"state tag {trial.state}, run status {trial.status}, value "
                                    f"{'recorded' if recorded else 'not recorded'}{reason}")


@dataclasses.dataclass
class FirstStartKill:
    """One SIGKILL during a study's first start, and the next start.

    Attributes:
        delay_s: The kill came this long after the output folder appeared.
        store_at_kill: The store file as the kill left it (:func:`sqlite_state`).
        files_at_kill: The output folder's entries at the kill.
        rc: Exit code of the next ``autotune run`` (``resume`` if the record already had trials).
        usable: The next start finished the study: exit 0, every trial completed, no run RUNNING.
        error: The next start's error (standard error's end) when it failed.
    """

    delay_s: float
    store_at_kill: str
    files_at_kill: list[str]
    rc: int | None
    usable: bool
    error: str = ""


def _fresh_study_run(root: Path, label: str, study: StudyFiles, procs: list[Proc], timeout_s: float) -> tuple[int | None, str]:
    """``autotune run`` (or ``resume`` when the record already holds trials) to the end."""
    proc = Proc([*autotune_argv(), "run", str(study.study_file), "--no-progress"], root, label, cwd=study.folder)
    procs.append(proc)
    rc = proc.wait(timeout_s)
    if rc == 2 and "already has" in proc.stderr_tail():
        proc = Proc([*autotune_argv(), "resume", str(study.study_file), "--no-progress"], root, label + "_resume",
                    cwd=study.folder)
        procs.append(proc)
        rc = proc.wait(timeout_s)
    return rc, "" if rc == 0 else proc.stderr_tail(400)


def _complete(study: StudyFiles) -> bool:
    """Whether the record holds every trial of the study completed and no run RUNNING."""
    record = read_record(study.tracking_uri, study.name)
    return (record.found and not record.running_runs
            and record.counts().get("completed", 0) == study.max_trials)


def first_start_kills(
    root: Path,
    *,
    tries: int = 10,
    seed: int = 0,
    max_delay_s: float | None = None,
    timeout_s: float = START_TIMEOUT_S,
    log: Any = None,
) -> tuple[float, list[FirstStartKill]]:
    """SIGKILL a fresh study's first ``autotune run`` while it creates its store, ``tries`` times.

    The kill comes a uniform ``0..max_delay_s`` after the study's output folder appears (the
    driver creates it just before the store). ``max_delay_s`` defaults to the time one unkilled
    first start takes from that moment to its first trial folder (measured first), so the kills
    spread over store creation and the study's registration.

    Args:
        root: An empty temporary folder.
        tries: Kills (one fresh study each).
        seed: Seeds the moments.
        max_delay_s: The window; ``None`` measures it.
        timeout_s: Longest one driver start may run.
        log: ``print``-like progress callback.

    Returns:
        The window used and one entry per try.
    """
    say = log or (lambda *a: None)
    rng = random.Random(seed)
    out: list[FirstStartKill] = []
    procs: list[Proc] = []
    with cleanup(root, procs):
        if max_delay_s is None:
            study = make_study(root, "calibrate", max_trials=1, workers=1, min_s=0.1, max_s=0.2, seed=seed)
            proc = Proc([*autotune_argv(), "run", str(study.study_file), "--no-progress"], root, "calibrate",
                        cwd=study.folder)
            procs.append(proc)
            wait_for(lambda: study.output_dir.exists() or not proc.alive(), timeout_s)
            t0 = time.monotonic()
            wait_for(lambda: (study.output_dir / "trials").exists() or not proc.alive(), timeout_s)
            max_delay_s = max(1.0, time.monotonic() - t0)
            proc.wait(timeout_s)
            say(f"first start: output folder to first trial {max_delay_s:.1f} s")
        for i in range(tries):
            study = make_study(root, f"first{i:02d}", max_trials=2, workers=2, min_s=0.1, max_s=0.3, seed=seed + i)
            proc = Proc([*autotune_argv(), "run", str(study.study_file), "--no-progress"], root, f"first{i:02d}_run",
                        cwd=study.folder)
            procs.append(proc)
            delay = rng.uniform(0.0, max_delay_s)
            wait_for(lambda s=study, p=proc: s.output_dir.exists() or not p.alive(), timeout_s)
            time.sleep(delay)
            proc.kill()
            files = sorted(p.name for p in study.output_dir.iterdir()) if study.output_dir.is_dir() else []
            state = sqlite_state(study.sqlite_file)
            rc, error = _fresh_study_run(root, f"first{i:02d}_again", study, procs, timeout_s)
            usable = rc == 0 and _complete(study)
            out.append(FirstStartKill(round(delay, 2), state, files, rc, usable, error))
            say(f"first start {i}: killed +{delay:.2f} s ({state}); next start rc={rc} usable={usable}")
    return max_delay_s, out


@dataclasses.dataclass
class ConcurrentTry:
    """Two different studies started at once on one fresh store.

    Attributes:
        rcs: Both drivers' exit codes.
        usable: Both exited 0 and both records hold every trial completed, none RUNNING.
        errors: Standard error's end of a driver that failed.
    """

    rcs: list[int | None]
    usable: bool
    errors: list[str]


def concurrent_first_starts(
    root: Path, *, tries: int = 10, seed: int = 0, timeout_s: float = START_TIMEOUT_S, log: Any = None
) -> list[ConcurrentTry]:
    """Start two different studies at the same moment on one fresh SQLite store, ``tries`` times.

    Args:
        root: An empty temporary folder.
        tries: Pairs (one fresh store each).
        seed: Seeds the studies.
        timeout_s: Longest one driver may run.
        log: ``print``-like progress callback.

    Returns:
        One entry per try.
    """
    say = log or (lambda *a: None)
    out: list[ConcurrentTry] = []
    procs: list[Proc] = []
    with cleanup(root, procs):
        for i in range(tries):
            store = root / f"store{i:02d}"
            store.mkdir()
            uri = f"sqlite:///{(store / 'mlflow.db').as_posix()}"
            studies = [make_study(root, f"pair{i:02d}_{side}", max_trials=2, workers=2, min_s=0.1, max_s=0.3,
                                  tracking_uri=uri, seed=seed + i) for side in "ab"]
            pair = [Proc([*autotune_argv(), "run", str(s.study_file), "--no-progress"], root,
                         f"pair{i:02d}_{s.name[-1]}", cwd=s.folder) for s in studies]
            procs.extend(pair)
            rcs = [p.wait(timeout_s) for p in pair]
            errors = [p.stderr_tail(400) for p, rc in zip(pair, rcs) if rc != 0]
            usable = all(rc == 0 for rc in rcs) and all(_complete(s) for s in studies)
            out.append(ConcurrentTry(rcs, usable, errors))
            say(f"concurrent {i}: rcs={rcs} usable={usable}")
    return out


# -- report -----------------------------------------------------------------------------------


def kill_study_markdown(r: KillStudyResult, n_kills: int) -> list[str]:
    """The report's section on one killed study."""
    lost = ", ".join(f"{tid} ({r.lost_reasons[tid]})" for tid in r.lost) or "none"
    lines = [
        "| figure | measured | target |",
        "|---|---|---|",
        f"| driver SIGKILLs | {r.kills} of {n_kills} planned ({len(r.starts)} starts) | {n_kills} |",
        (f"| finished trials lost (`result.json` completed, record not `completed` with that value) "
        f"| **{len(r.lost)}** of {len(r.completed_results)} | 0 |"),
        f"| finished trials re-run | **{len(r.rerun)}** {r.rerun or ''} | 0 |",
        f"| runs left RUNNING at the end | **{len(r.running_runs)}** | 0 |",
        f"| orphan trial processes after the end | **{len(r.orphans)}** | 0 |",
        (f"| budget: trials counted (every state but killed) / max_trials | {r.counted} / {r.max_trials} "
        f"| {r.max_trials} / {r.max_trials} |"),
        f"| study finished (last start exit 0, budget reached) | {'yes' if r.finished else '**no**'} | yes |",
        f"| starts that failed by themselves | {len(r.failed_starts)} | 0 |",
        "",
        f"Record, latest run per trial: {json.dumps(r.counts, sort_keys=True)}"
        + (f"; `autotune status --format json` counts: {json.dumps({k: v for k, v in r.status_counts.items() if v})}"
           if r.status_counts else "")
        + f". Executions: {r.executions} for {r.max_trials} trials; unfinished executions restarted "
        f"(re-queued after a kill): {len(r.restarted_unfinished)}. Lost: {lost}. Wall {r.wall_s:.0f} s.",
    ]
    if r.failed_starts:
        lines += ["", "Starts that failed:"]
        lines += [f"- `{s.command}` rc={s.rc}{' (timed out)' if s.timed_out else ''}: "
                  f"`{s.stderr_tail.strip().splitlines()[-1][:300] if s.stderr_tail.strip() else ''}`"
                  for s in r.failed_starts]
    lines += ["", "<details><summary>every start</summary>", "", ("| # | command | kill moment | killed after | "
              "finished at kill | rc |"), "|---|---|---|---|---|---|"]
    lines += [f"| {i} | {s.command} | {s.moment} | {s.killed_after_s if s.killed_after_s is not None else ''} | "
              f"{s.finished_at_kill if s.finished_at_kill is not None else ''} | "
              f"{'' if s.killed_after_s is not None else s.rc} |" for i, s in enumerate(r.starts)]
    lines += ["", "</details>"]
    if r.orphans:
        lines += ["", "Orphans: " + "; ".join(f"`{c[:160]}`" for c in r.orphans[:5])]
    return lines


def first_start_markdown(window_s: float, tries: Sequence[FirstStartKill]) -> list[str]:
    """The report's section on first-start kills."""
    usable = sum(t.usable for t in tries)
    lines = [(f"Store usable afterwards: **{usable} of {len(tries)}** (target: all). Kill moments: uniform 0..{window_s:.1f} s "
             "after the output folder appeared (the time an unkilled first start takes from there to its first trial)."),
             "", "| # | kill after | store at the kill | output folder at the kill | next start rc | usable | error |",
             "|---|---|---|---|---|---|---|"]
    for i, t in enumerate(tries):
        error = t.error.strip().splitlines()[-1][:200] if t.error.strip() else ""
        files = " ".join(t.files_at_kill)[:120]
        lines.append(f"| {i} | {t.delay_s} s | {t.store_at_kill} | {files} | {t.rc} | {'yes' if t.usable else '**no**'} "
                     f"| {error} |")
    return lines


def concurrent_markdown(tries: Sequence[ConcurrentTry]) -> list[str]:
    """The report's section on concurrent first starts."""
    usable = sum(t.usable for t in tries)
    lines = [f"Both studies finished: **{usable} of {len(tries)}** (target: all)."]
    errors = [e.strip().splitlines()[-1][:200] for t in tries for e in t.errors if e.strip()]
    if errors:
        lines += ["", "Errors: " + "; ".join(f"`{e}`" for e in errors[:5])]
    lines += ["", "Exit codes per try: " + ", ".join(str(t.rcs) for t in tries) + "."]
    return lines


SIZES: dict[str, dict[str, Any]] = {
    "short": {"max_trials": 10, "workers": 4, "n_kills": 3, "max_delay_s": 8.0, "first_tries": 1, "pairs": 1},
    "long": {"max_trials": 60, "workers": 4, "n_kills": 20, "max_delay_s": 20.0, "first_tries": 10, "pairs": 10},
}
"""The sizes: ``short`` for tests, ``long`` for the issue's figures."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the driver-kill measurements and print Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="short")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--on-orphans", choices=("fail", "requeue"), default="fail")
    parser.add_argument("--only", choices=("study", "first", "concurrent"), action="append")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    only = set(args.only or ("study", "first", "concurrent"))
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="autotune-faults-") as tmp:
        root = Path(tmp)
        if "study" in only:
            (root / "study").mkdir()
            r = kill_study(root / "study", max_trials=size["max_trials"], workers=size["workers"],
                           n_kills=size["n_kills"], seed=args.seed, on_orphans=args.on_orphans,
                           max_delay_s=size["max_delay_s"], ask_status=True, log=print)
            lines += [(f"## Driver SIGKILL x {size['n_kills']} across a {size['max_trials']}-trial study "
                      f"(on_orphans: {args.on_orphans})"), "", *kill_study_markdown(r, size["n_kills"]), ""]
        if "first" in only:
            (root / "first").mkdir()
            window, tries = first_start_kills(root / "first", tries=size["first_tries"], seed=args.seed, log=print)
            lines += [f"## SIGKILL during the first start x {size['first_tries']}", "",
                      *first_start_markdown(window, tries), ""]
        if "concurrent" in only:
            (root / "concurrent").mkdir()
            pairs = concurrent_first_starts(root / "concurrent", tries=size["pairs"], seed=args.seed, log=print)
            lines += [f"## Two first starts at once on one fresh store x {size['pairs']}", "",
                      *concurrent_markdown(pairs), ""]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
