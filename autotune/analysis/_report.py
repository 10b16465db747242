"""One self-contained HTML file of every analysis view (``autotune report STUDY``).

plotly.js is inlined once per file (about 4.7 MB), so the file opens offline, in MLflow's
artifact viewer and on machines without network access; no ``<script src="http...">``.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from autotune.analysis._surface import completed_and_failed
from autotune.analysis._views import TITLES, Reports, analysis_figures

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from autotune.optimizer import Optimizer

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table.summary td { padding: 0.15em 1em 0.15em 0; vertical-align: top; }
code { background: #f4f4f4; padding: 0 0.25em; }
"""


def report_html(
    optimizer: Optimizer,
    reports: Reports | None = None,
    *,
    title: str = "autotune report",
    objective: str = "objective",
    figures: Mapping[str, Figure] | None = None,
    seed: int = 0,
) -> str:
    """The report as one self-contained HTML page.

    Args:
        optimizer: The optimiser whose history and GP the views show.
        reports: Per trial id, its intermediate reports.
        title: The page title and heading.
        objective: The objective's name.
        figures: Views already drawn by :func:`analysis_figures` (drawn here when ``None``).
        seed: Seed of the GP fit and the importance estimate.

    Returns:
        The HTML text, plotly.js inlined once.
    """
    import plotly.io as pio

    figs = dict(figures) if figures is not None else analysis_figures(optimizer, reports, objective=objective, seed=seed)
    parts: list[str] = []
    first = True
    for key, fig in figs.items():
        heading = TITLES.get(key, key)
        div = pio.to_html(fig, include_plotlyjs=first, full_html=False, div_id=f"view-{key}",
                          config={"displaylogo": False, "responsive": True})
        first = False
        parts.append(f'<section id="{html.escape(key)}"><h2>{html.escape(heading)}</h2>\n{div}\n</section>')
    t = html.escape(title)
    return (
        f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n{_summary(optimizer, objective)}\n"
        + "\n".join(parts) + "\n</body>\n</html>\n"
    )


def write_report(
    optimizer: Optimizer,
    reports: Reports | None,
    path: str | os.PathLike[str],
    *,
    title: str = "autotune report",
    objective: str = "objective",
    seed: int = 0,
) -> Path:
    """Write every analysis view as one self-contained HTML file (atomically: a reader never sees half).

    For ``autotune report STUDY``: rebuild the optimiser from the record (as resume does), read
    each trial's reports, and call this. No MLflow call is made here.

    Args:
        optimizer: The optimiser whose history and GP the views show.
        reports: Per trial id, its intermediate reports (``{"step": 3, "val_loss": 0.4}`` records).
        path: The HTML file to write (its folder is created).
        title: The page title and heading, e.g. the study name.
        objective: The objective's name (labels; the metric drawn from the reports).
        seed: Seed of the GP fit and the importance estimate.

    Returns:
        The path written.

    Raises:
        MissingExtraError: plotly is not installed.
    """
    text = report_html(optimizer, reports, title=title, objective=objective, seed=seed)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _summary(optimizer: Optimizer, objective: str) -> str:
    done, failed = completed_and_failed(optimizer.observations)
    best = optimizer.best()
    rows = [
        ("objective", f"{optimizer.direction} {objective}"),
        ("trials", f"{len(optimizer.observations)} finished: {len(done)} completed, {len(failed)} failed"),
        ("strategy", getattr(optimizer.strategy, "name", str(optimizer.strategy))),
    ]
    if best is not None and best.value is not None:
        params = ", ".join(f"{k}={v!r}" for k, v in best.params.items())
        rows.append(("best", f"{best.value:.6g} (trial {best.trial_id}): <code>{html.escape(params)}</code>"))
    else:
        rows.append(("best", "none yet"))
    body = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{v if k == 'best' else html.escape(v)}</td></tr>"
                   for k, v in rows)
    return f'<table class="summary">{body}</table>'
