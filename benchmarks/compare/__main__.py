"""Command line: ``OMP_NUM_THREADS=1 python -m benchmarks.compare --size full --jobs 2``.

Runs what is not cached yet under ``--raw`` and writes the report ``--out`` (with its PNGs).
``--report-only`` rebuilds the report from the cache; ``--stop-at HH:MM`` starts no new run
after that local time, so a long run can be fitted into a window and resumed later.
``--split dev|confirm|all`` runs one half of the suite (default ``dev``: choose defaults there);
the report shows each half that has runs in the cache separately and quotes its goals from the
confirmation half. ``--problems`` narrows the sequential problems (e.g. a quick check).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shlex
import sys
from pathlib import Path

from benchmarks.compare.runner import RAW_DIR, REPO, SIZES, SPLITS, run_tasks


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (at most 2 on the shared machine)")
    ap.add_argument("--raw", type=Path, default=RAW_DIR, help="cache of runs (one JSON per run)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "compare.md")
    ap.add_argument("--sections", nargs="+", default=None, help="only these: seq batch cost constrained asktime")
    ap.add_argument("--seeds", type=int, default=None,
                    help="seeds of every section but asktime and Ax (overrides the size's; cached runs are kept)")
    ap.add_argument("--split", choices=SPLITS, default="dev",
                    help="which half to run: dev (default; choose defaults on it), confirm, or all")
    ap.add_argument("--problems", nargs="+", default=None, help="only these sequential problems")
    ap.add_argument("--methods", nargs="+", default=None,
                    help="only these methods (e.g. autotune optuna-gp: the comparison that decides a default)")
    ap.add_argument("--autotune-code", default="current",
                    help="report autotune runs of this code state only: current (default), any, or a state")
    ap.add_argument("--stop-at", default=None, help="HH:MM local time after which no new run starts")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="list what would run (per section and method) and exit")
    ap.add_argument("--note", action="append", default=[], help="a line for the report (e.g. what was cut)")
    args = ap.parse_args(argv)

    plan = SIZES[args.size]
    if args.seeds is not None:
        if args.seeds < 1:
            ap.error(f"--seeds: must be >= 1, got {args.seeds}")
        n = args.seeds
        plan = dataclasses.replace(plan, seeds=n, method_seeds={}, batch_seeds=n, cost_seeds=n, constrained_seeds=n)
    if args.problems:
        from benchmarks.compare.problems import PROBLEM_NAMES

        unknown = set(args.problems) - set(PROBLEM_NAMES)
        if unknown:
            ap.error(f"--problems: unknown {sorted(unknown)}; choose from {', '.join(PROBLEM_NAMES)}")
        plan = dataclasses.replace(plan, problems=list(args.problems),
                                   ax_problems=[p for p in plan.ax_problems if p in args.problems])
    if args.methods:
        from benchmarks.compare.adapters import METHODS

        # A named variant of autotune (a candidate default) runs the sequential problems too.
        extra = [m for m in args.methods if m in METHODS and m not in plan.methods and m != "ax"]
        plan = dataclasses.replace(plan, methods=[*plan.methods, *extra])
    tasks = plan.tasks(args.split)
    if args.sections:
        unknown = set(args.sections) - {"seq", "batch", "cost", "constrained", "asktime"}
        if unknown:
            ap.error(f"--sections: unknown {sorted(unknown)}; use seq batch cost constrained asktime")
        tasks = [t for t in tasks if t.section in args.sections]
    if args.methods:
        known = {t.method for t in plan.tasks("all")}
        unknown = set(args.methods) - known
        if unknown:
            ap.error(f"--methods: unknown {sorted(unknown)}; choose from {', '.join(sorted(known))}")
        tasks = [t for t in tasks if t.method in args.methods]
    stop_at = None
    if args.stop_at:
        try:
            hh, mm = (int(x) for x in args.stop_at.split(":"))
        except ValueError:
            ap.error(f"--stop-at: expected HH:MM, got {args.stop_at!r}")
        stop_at = dt.datetime.now().replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()
    if args.dry_run:
        from collections import Counter

        from benchmarks.compare.runner import code_state

        current = code_state()
        keys = [(dataclasses.replace(t, code=current) if t.method.startswith("autotune") else t) for t in tasks]
        todo = Counter((t.section, t.method) for t in keys if not (args.raw / f"{t.key}.json").exists())
        total = Counter((t.section, t.method) for t in keys)
        print(f"split {args.split}, size {args.size}, autotune code {current}: {sum(todo.values())} of {len(keys)} "
              "runs not cached")
        for k in sorted(total):
            print(f"  {k[0]:12s} {k[1]:32s} {todo[k]:5d} to run of {total[k]}")
        return 0
    status = None
    code = args.autotune_code
    if not args.report_only:
        from benchmarks.compare.runner import code_state

        # one code state for the keys and the report, even if autotune/ changes during the run
        current = code_state()
        tasks = [dataclasses.replace(t, code=current) if t.method.startswith("autotune") else t for t in tasks]
        code = current if code == "current" else code
        status = run_tasks(tasks, args.raw, jobs=args.jobs, stop_at=stop_at,
                           log=lambda s: print(f"[{dt.datetime.now():%H:%M:%S}] {s}", flush=True))
    from benchmarks.compare.report import write_report

    command = "OMP_NUM_THREADS=1 python -m benchmarks.compare " + " ".join(shlex.quote(a) for a in argv)
    out = write_report(args.raw, args.out, command, ref=plan.reference_method, status=status, notes=args.note,
                       autotune_code=code)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
