"""The ``autotune`` command: thin commands over :class:`autotune.study.Study`.

::

    autotune validate STUDY                  check a study file, print it resolved
    autotune run STUDY [--no-progress] [--max-trials N]
    autotune resume STUDY [--no-progress] [--max-trials N]
    autotune status STUDY [--format table|json]
    autotune best STUDY [--format table|json]
    autotune trials STUDY [--state S ...] [--sort objective|id|duration] [--format table|json|csv] [--limit N]
    autotune report STUDY [-o PATH]          every analysis view in one self-contained HTML file
    autotune ui STUDY [--port PORT]          the MLflow UI on the study's record, sorted by the objective
    autotune ask STUDY [--candidates F.json] [--fixed JSON]   the next point to measure, as JSON
    autotune tell STUDY --trial ID --value V [--metric NAME=V ...] [--state STATE]

Invalid input prints one line (``autotune: error: <file>: <key>: <rule>, got <value>. Fix: ...``)
and exits 2; another error (the record, a trial that cannot be submitted, the first trials all
failing alike, a full disk or a read-only folder) prints one line and exits 1. ``run``/``resume``
exit 3 when the record holds no completed trial at the end, 130 when stopped by SIGINT (Ctrl-C)
and 143 when stopped by SIGTERM (the running trials are recorded ``killed``). This module imports no torch, botorch or mlflow:
each command imports what it needs when it runs, so ``autotune --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune import __version__
from autotune.exceptions import AutotuneError, ConfigError, SearchSpaceError
from autotune.trial import TrialState

if TYPE_CHECKING:
    from autotune.study import Study, StudyConfig, StudyRecord, StudyStatus, StudySummary

__all__ = ["DEFAULT_UI_PORT", "build_parser", "check_port_free", "main", "ui_argv"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_COMPLETED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
DEFAULT_UI_PORT = 5000
_STATES = tuple(state.value for state in TrialState)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``autotune`` command.

    Args:
        argv: The arguments after the program name (``sys.argv[1:]`` by default).

    Returns:
        The exit status: 0 on success, 1 on an error (or no best trial yet), 2 on invalid
        input, 3 when a study ends with no completed trial, 130 when stopped by SIGINT,
        143 when stopped by SIGTERM.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"autotune: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AutotuneError as exc:
        print(f"autotune: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # a full disk, a read-only folder, a missing permission: one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"autotune: error: {where}{exc.strerror or exc}. Fix: free space or make the folder writable, "
              f"then run the command again (`autotune resume` continues a study).", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("mlflow", "sqlalchemy"):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
        print(f"autotune: error: the MLflow record could not be used ({first}). Fix: check the store "
              f"(space, permissions, the server), then `autotune resume` continues the study.", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("autotune: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="autotune",
        description="Bayesian optimisation of neural networks and experiments, recorded in MLflow.",
        epilog="Start with: autotune validate studies/quadratic/study.yaml && "
        "autotune run studies/quadratic/study.yaml",
    )
    parser.add_argument("--version", action="version", version=f"autotune {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("study", metavar="STUDY", help="the study file, e.g. studies/quadratic/study.yaml")
        sub.set_defaults(handler=handler)
        return sub

    for name, help_text, handler in (
        ("run", "Start a study and run it until its budget is spent.", _run),
        ("resume", "Continue a study from its MLflow record (finished trials are not run again).", _resume),
    ):
        sub = command(name, help_text, handler)
        sub.add_argument("--no-progress", action="store_true", help="log one line per trial instead of a progress bar")
        sub.add_argument("--max-trials", type=int, metavar="N", help="override budget.max_trials of the study file")
    for name, help_text, handler in (
        ("status", "Trial counts per state and the best trial, from the MLflow record.", _status),
        ("best", "The best feasible completed trial, from the MLflow record.", _best),
    ):
        command(name, help_text, handler).add_argument("--format", choices=("table", "json"), default="table")
    command("validate", "Check a study file and print it resolved (defaults applied).", _validate).add_argument(
        "--format", choices=("yaml", "json"), default="yaml"
    )
    command("ui", "Serve the MLflow UI on the study's record (on 127.0.0.1); print the link to its runs, "
            "sorted by the objective.", _ui).add_argument(
        "--port", type=int, default=DEFAULT_UI_PORT, help=f"the port (default {DEFAULT_UI_PORT})"
    )
    trials = command("trials", "The study's trials as a table: id, state, objective, duration, device, "
                     "parameters, one-line failure, start time (from the MLflow record).", _trials)
    trials.add_argument("--state", action="append", choices=_STATES, metavar="STATE",
                        help=f"only trials in this state (repeatable): {', '.join(_STATES)}")
    trials.add_argument("--sort", choices=("objective", "id", "duration"), default="id",
                        help="id (ascending, the default), objective (best first for the study's direction) "
                        "or duration (longest first)")
    trials.add_argument("--format", choices=("table", "json", "csv"), default="table")
    trials.add_argument("--limit", type=int, metavar="N", help="show the first N trials (after sorting)")
    command("report", "Write every analysis view of the study (importance, slices, contour, EDF, learning "
            "curves) to one self-contained HTML file; print its path.", _report).add_argument(
        "-o", "--output", metavar="PATH", help="the HTML file (default: <output_dir>/report.html)"
    )
    ask = command("ask", "Propose the next point of an externally run study; print {trial_id, params} as JSON "
                  "(the point stays pending in the MLflow record until told).", _ask)
    ask.add_argument("--candidates", metavar="FILE.json", help="choose among these points only: a JSON list of "
                     "parameter objects (measured and pending ones are left out)")
    ask.add_argument("--fixed", metavar="JSON", help='hold parameters at these values, e.g. --fixed \'{"temperature": 300}\'')
    tell = command("tell", "Record the result of a point from `autotune ask`; print the observation as JSON.", _tell)
    tell.add_argument("--trial", type=int, required=True, metavar="ID", help="the trial_id printed by ask")
    tell.add_argument("--value", type=float, metavar="V", help="the objective value (omit, or nan, for a failure)")
    tell.add_argument("--metric", action="append", default=[], metavar="NAME=V",
                      help="another final metric, e.g. --metric instrument_s=3.5 (repeatable)")
    tell.add_argument("--state", metavar="STATE", help="the terminal state (default: completed, or failed "
                      "without a value)")
    return parser


# -- commands -------------------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> StudyConfig:
    from autotune.study import load_study_config

    max_trials = getattr(args, "max_trials", None)
    overrides = {"budget": {"max_trials": max_trials}} if max_trials is not None else None
    return load_study_config(args.study, overrides)


def _run(args: argparse.Namespace) -> int:
    return _optimize(args, resume=False)


def _resume(args: argparse.Namespace) -> int:
    return _optimize(args, resume=True)


def _optimize(args: argparse.Namespace, resume: bool) -> int:
    from autotune.study import Study

    _log_to_stderr()
    config = _load(args)
    config.check_entry_point()  # a missing training function fails here, not once per trial
    summary = Study(config).optimize(progress=not args.no_progress, resume=resume)
    print(_summary_text(summary, args.study, _safe_ui_hint(config, args.study)))
    if summary.interrupted:
        return EXIT_TERMINATED if summary.stop_reason == "SIGTERM" else EXIT_INTERRUPTED
    if not summary.counts.get("completed"):
        print(f"autotune: error: study {summary.name!r} has no completed trial ({_counts_text(summary.counts)}). "
              f"Fix: read the failures (`autotune status {args.study}`, each run's trial/error.txt), correct the "
              f"trial, then `autotune resume {args.study}`.", file=sys.stderr)
        return EXIT_NO_COMPLETED
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from autotune.study import Study

    study = Study(_load(args))
    status = study.status()
    multi = _multi_summary(study) if status.started else None
    if args.format == "json":
        data = status.to_dict()
        if multi is not None:
            data.update({k: multi[k] for k in ("hypervolume", "reference_point", "reference_inferred")})
            data["pareto_size"] = len(multi["front"])
        print(json.dumps(data, indent=2))
        return EXIT_OK
    if not status.started:
        print(f"Study {status.name}: not started (no record in {status.tracking_uri}).")
        return EXIT_OK
    print(_status_text(status))
    if multi is not None:
        print(_hypervolume_line(multi))
    return EXIT_OK


def _multi_summary(study: Study) -> dict[str, Any] | None:
    """The Pareto front summary of a multi-objective study (``None`` for one objective)."""
    if not study.config.objectives:
        return None
    from autotune.study import front_summary

    return front_summary(study.record)


def _hypervolume_line(multi: dict[str, Any]) -> str:
    how = "inferred" if multi["reference_inferred"] else "given"
    return (f"hypervolume: {multi['hypervolume']:.6g} over {multi['n_trials']} trials, Pareto front of "
            f"{len(multi['front'])}, reference point ({how}) {json.dumps(multi['reference_point'])}")


def _print_front(multi: dict[str, Any], name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    names = [o["metric"] for o in multi["objectives"]]
    table = Table(title=f"Pareto front of {name} ({len(multi['front'])} trials)")
    for col in ["trial", *(f"{o['metric']} ({o['direction'][:3]})" for o in multi["objectives"]), "params"]:
        table.add_column(col)
    for row in sorted(multi["front"], key=lambda r: r[names[0]]):
        table.add_row(str(row["trial_id"]), *(f"{row[n]:.6g}" for n in names), json.dumps(row["params"]))
    console = Console(width=max(100, Console().width))
    console.print(table)
    console.print(_hypervolume_line(multi))


def _best(args: argparse.Namespace) -> int:
    from autotune.study import Study

    study = Study(_load(args))
    status = study.status()
    multi = _multi_summary(study) if status.started else None
    if multi is not None:
        if args.format == "json":
            print(json.dumps(multi, indent=2))
        elif multi["front"]:
            _print_front(multi, status.name)
        if not multi["front"]:
            print(f"autotune: study {status.name!r} has no feasible completed trial yet.", file=sys.stderr)
            return EXIT_ERROR
        return EXIT_OK
    best = status.best
    if args.format == "json":
        print(json.dumps(None if best is None else {"metric": status.metric, **_as_dict(best)}, indent=2))
    elif best is not None:
        print(f"trial     {best.trial_id}")
        print(f"{status.metric:<9} {best.value:.6g}")
        print(f"run_id    {best.run_id}")
        for key, value in best.params.items():
            print(f"  {key:<20} {value}")
    if best is None:
        print(f"autotune: study {status.name!r} has no feasible completed trial yet.", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    config = _load(args)
    config.check_entry_point()
    if args.format == "json":
        print(json.dumps(config.to_dict(), indent=2))
    else:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
    return EXIT_OK


def _ui(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    config = _load(args)
    uri = config.resolved_tracking_uri
    if urlsplit(uri).scheme in ("http", "https"):  # the record is served already: its link, no second server
        print(f"Open {_study_link(config, uri)}")
        return EXIT_OK
    argv = ui_argv(config, args.port)
    check_port_free(args.port)
    url = _study_link(config, f"http://127.0.0.1:{args.port}")
    print(f"autotune: {' '.join(argv)}", file=sys.stderr)
    print(f"Open {url}", flush=True)
    sys.stderr.flush()
    os.execv(argv[0], argv)
    return EXIT_OK  # not reached: execv replaces this process


def _open_record(args: argparse.Namespace) -> tuple[StudyConfig, StudyRecord] | None:
    """The study and its record, or ``None`` (after one line on stderr) when it has no record."""
    from autotune.study import StudyRecord

    config = _load(args)
    record = StudyRecord(config)
    if not record.exists():
        print(f"autotune: error: study {config.name!r} has no record in {config.resolved_tracking_uri}. "
              f"Fix: run it first (`autotune run {args.study}`), or check name, output_dir and tracking_uri.",
              file=sys.stderr)
        return None
    return config, record


def _trials(args: argparse.Namespace) -> int:
    from autotune.study import filter_rows, sort_rows, trials_table

    if args.limit is not None and args.limit < 0:
        raise ConfigError("--limit", "must be >= 0", args.limit, "use e.g. --limit 10.")
    opened = _open_record(args)
    if opened is None:
        return EXIT_ERROR
    config, record = opened
    metric, direction = config.objective.metric, config.objective.direction
    rows = sort_rows(filter_rows(trials_table(record, metric), args.state), args.sort, direction)
    if args.limit is not None:
        rows = rows[: args.limit]
    if args.format == "json":
        print(json.dumps([{**row, metric: row["value"]} for row in rows], indent=2))
    elif args.format == "csv":
        _print_csv(rows, metric)
    else:
        _print_trials_table(rows, config.name, metric, direction)
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from autotune.analysis import write_report
    from autotune.study import read_reports

    opened = _open_record(args)
    if opened is None:
        return EXIT_ERROR
    config, record = opened
    optimizer = record.new_optimizer()
    record.rebuild(optimizer, pending=True)  # as resume rebuilds it; open trials stay pending, not failures
    reports = read_reports(record)
    path = Path(args.output) if args.output else config.resolved_output_dir / "report.html"
    written = write_report(optimizer, reports, path, title=f"Study {config.name}", objective=config.objective.metric,
                           seed=config.seed)
    print(written)
    return EXIT_OK


def _ask(args: argparse.Namespace) -> int:
    from autotune.study import RemoteStudy

    candidates = None
    if args.candidates is not None:
        path = Path(args.candidates)
        try:
            candidates = json.loads(path.read_text())
        except OSError as e:
            raise ConfigError("--candidates", f"cannot be read ({e.strerror})", str(path),
                              "give a JSON file holding a list of parameter objects.") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"--candidates {path}", f"is not valid JSON ({e.msg} at line {e.lineno})", str(path),
                              'write a JSON list, e.g. [{"x": 0.1, "y": 2}, {"x": 0.4, "y": 1}].') from None
    fixed = None
    if args.fixed is not None:
        try:
            fixed = json.loads(args.fixed)
        except json.JSONDecodeError:
            fixed = None
        if not isinstance(fixed, dict):
            raise ConfigError("--fixed", "must be a JSON object of parameter values", args.fixed,
                              'write e.g. --fixed \'{"temperature": 300}\'.')
    try:
        trial_id, params = RemoteStudy(_load(args)).ask(candidates=candidates, fixed=fixed)
    except ConfigError as e:  # name the file and option the user gave, not the Python call
        for call, option in (("Optimizer.ask: candidates", f"--candidates {args.candidates}"),
                             ("Optimizer.ask: fixed", "--fixed")):
            if e.where.startswith(call) and type(e) in (ConfigError, SearchSpaceError):
                raise type(e)(option + e.where.removeprefix(call), e.rule, e.value, e.fix) from None
        raise
    print(json.dumps({"trial_id": trial_id, "params": params}))
    return EXIT_OK


def _tell(args: argparse.Namespace) -> int:
    from autotune.study import RemoteStudy

    metrics = {}
    for item in args.metric:
        name, sep, value = item.partition("=")
        try:
            metrics[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ConfigError("--metric", "must read NAME=NUMBER", item, "write e.g. --metric instrument_s=3.5.")
    obs = RemoteStudy(_load(args)).tell(args.trial, args.value, metrics=metrics, state=args.state)
    print(json.dumps({"trial_id": obs.trial_id, "state": obs.state.value, "value": obs.value,
                      "params": obs.params, "metrics": obs.metrics}))
    return EXIT_OK


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Fail at once when ``host:port`` is taken (``mlflow ui`` would log it and hang).

    Args:
        port: The port ``autotune ui`` is about to serve on.
        host: The address it binds.

    Raises:
        AutotuneError: Another process listens there; the message names a free ``--port``.
    """
    import errno
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            why = "is already in use" if exc.errno == errno.EADDRINUSE else "needs privileges to bind"
            raise AutotuneError(f"--port: {host}:{port} {why} (another `autotune ui` or `mlflow ui`?). "
                                f"Fix: pass a free port, e.g. --port {_free_port(host)}, or stop the other "
                                f"server.") from None


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _study_link(config: StudyConfig, base_url: str) -> str:
    """The study's runs view on ``base_url``, sorted by its objective (the experiment list without a record)."""
    from autotune.study import StudyRecord, study_url

    record = StudyRecord(config)
    experiment_id = record.tracker.experiment_id if record.exists() else None
    if experiment_id is not None and _has_runs_view(record, experiment_id):
        from autotune.tracking import runs_view_url

        return runs_view_url(base_url, experiment_id)
    return study_url(base_url, experiment_id, config.objective.metric, config.objective.direction)


def _has_runs_view(record: StudyRecord, experiment_id: str) -> bool:
    """Whether the study's experiment holds its runs view (records before it was added do not)."""
    from autotune.tracking import RUNS_VIEW_KEY

    try:
        tags = dict(record.tracker.client.get_experiment(experiment_id).tags)
    except Exception:  # noqa: BLE001 (fall back to the plain sorted link)
        return False
    return f"mlflow.sharedViewState.{RUNS_VIEW_KEY}" in tags


def _ui_hint(config: StudyConfig, study_file: str) -> str:
    """Where to browse the record: the server's own link for an http(s) URI, else `autotune ui` and its link."""
    from urllib.parse import urlsplit

    uri = config.resolved_tracking_uri
    if urlsplit(uri).scheme in ("http", "https"):
        return f"browse it: {_study_link(config, uri)}"
    link = _study_link(config, f"http://127.0.0.1:{DEFAULT_UI_PORT}")
    return f"browse it: autotune ui {study_file} --port {DEFAULT_UI_PORT}, then open {link}"


def ui_argv(config: StudyConfig, port: int = DEFAULT_UI_PORT) -> list[str]:
    """The ``mlflow ui`` command line of a study's record, as an argv list.

    Args:
        config: The study.
        port: The port to serve on (on 127.0.0.1 only).

    Returns:
        ``[mlflow, "ui", "--backend-store-uri", URI, "--host", "127.0.0.1", "--port", PORT,
        "--workers", "1"]`` (one worker: a single user's UI starts faster).

    Raises:
        ConfigError: The port is out of range.
        AutotuneError: The ``mlflow`` command cannot be found.
    """
    if not 1 <= port <= 65535:
        raise ConfigError("--port", "must be between 1 and 65535", port, f"use e.g. --port {DEFAULT_UI_PORT}.")
    beside = Path(sys.executable).with_name("mlflow")
    mlflow = str(beside) if beside.is_file() else shutil.which("mlflow")
    if mlflow is None:
        raise AutotuneError("the `mlflow` command is not installed. Fix: pip install mlflow (an autotune dependency).")
    uri = config.resolved_tracking_uri
    return [mlflow, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]


# -- output ---------------------------------------------------------------------------------------


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record (not at creation)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _log_to_stderr() -> None:
    """Show autotune's per-trial lines (INFO) on standard error (installed once); quiet MLflow's.

    MLflow's INFO lines (store creation, migrations) and its "View run" line after every run
    would bury the study's own progress; the record and ``autotune ui`` show the same.
    """
    import os

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logger = logging.getLogger("autotune")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())
    logger.setLevel(logging.INFO)


def _as_dict(value: Any) -> dict[str, Any]:
    import dataclasses

    data: dict[str, Any] = dataclasses.asdict(value)
    return data


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no trials"


def _status_text(status: StudyStatus) -> str:
    lines = [f"Study {status.name} ({status.direction} {status.metric}), record {status.tracking_uri}", "",
             f"{'state':<10} {'trials':>6}"]
    lines += [f"{state:<10} {n:>6}" for state, n in status.counts.items() if n]
    lines.append(f"{'total':<10} {status.n_trials:>6}")
    best = status.best
    lines += ["", "best: none yet" if best is None else
              f"best: {status.metric}={best.value:.6g} (trial {best.trial_id}) {json.dumps(best.params)}"]
    return "\n".join(lines)


def _safe_ui_hint(config: StudyConfig, study_file: str) -> str:
    try:
        return _ui_hint(config, study_file)
    except Exception:  # noqa: BLE001 (the record could not be read for the link: a hint without it)
        return f"browse it: autotune ui {study_file} --port {DEFAULT_UI_PORT}"


def _print_csv(rows: Sequence[dict[str, Any]], metric: str) -> None:
    import csv

    names = sorted({name for row in rows for name in row["params"]})
    columns = ["trial_id", "state", metric, "duration_s", "device", "failure", "started", "run_id"]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns + [f"params.{name}" for name in names])
    for row in rows:
        flat = {**row, metric: row["value"]}
        writer.writerow([_cell(flat.get(c)) for c in columns] + [_cell(row["params"].get(n)) for n in names])


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _print_trials_table(rows: Sequence[dict[str, Any]], name: str, metric: str, direction: str) -> None:
    from rich.console import Console
    from rich.table import Table

    names = sorted({p for row in rows for p in row["params"]})
    table = Table(title=f"Study {name}: {len(rows)} trials ({direction} {metric})", title_justify="left")
    for column, justify in (("trial", "right"), ("state", "left"), (metric, "right"), ("duration_s", "right"),
                            ("device", "left"), *((n, "right") for n in names), ("failure", "left"),
                            ("started", "left")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    style = {"completed": "green", "running": "cyan", "pending": "cyan", "killed": "yellow"}
    for row in rows:
        params = [_short(row["params"].get(n)) for n in names]
        table.add_row(str(row["trial_id"]), f"[{style.get(row['state'], 'red')}]{row['state']}[/]",
                      _short(row["value"]), _short(row["duration_s"], ".1f"), row["device"] or "",
                      *params, row["failure"] or "", (row["started"] or "").replace("+00:00", "Z"))
    width = None if sys.stdout.isatty() else 200  # piped or captured: do not fold at 80 columns
    Console(width=width, highlight=False).print(table)


def _short(value: Any, spec: str = ".6g") -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _summary_text(summary: StudySummary, study_file: str, ui_hint: str | None = None) -> str:
    if summary.interrupted:
        head = (f"Study {summary.name}: stopped by {summary.stop_reason} after {summary.duration_s:.1f} s; "
                f"running trials were cancelled (recorded killed). Continue with: autotune resume {study_file}")
    else:
        why = f"budget reached ({summary.stop_reason})" if summary.stop_reason else "stopped"
        head = f"Study {summary.name}: {why}: {summary.n_new_trials} new trials in {summary.duration_s:.1f} s."
    recovered = summary.recovered
    if any(recovered.get(kind) for kind in ("reattached", "adopted", "lost", "never_started")):
        head += (f"\nResumed after a dead driver: {len(recovered.get('reattached', []))} running trials re-attached, "
                 f"{len(recovered.get('adopted', []))} finished ones adopted from their result files, "
                 f"{len(recovered.get('lost', []))} lost, {len(recovered.get('never_started', []))} never started.")
    best = summary.best
    best_text = "Best: none yet." if best is None else (
        f"Best: {summary.metric}={best.value:.6g} (trial {best.trial_id}) {json.dumps(best.params)}")
    return "\n".join([
        head,
        f"Trials in the record: {summary.n_trials} ({_counts_text(summary.counts)}).",
        best_text,
        f"Record: {summary.tracking_uri} ({ui_hint or f'browse it: autotune ui {study_file}'})",
    ])


if __name__ == "__main__":
    sys.exit(main())
