"""Summarise the narrow-feature measurements (``results/narrow/*/results.json``) against the raster.

Each folder under ``results/narrow/`` is one ``steer.py`` run of the model-based methods with
one setting of the narrow-feature tools (its ``results.md`` names the command). This writes
``results/narrow/summary.md``: per setting and method, the runs that hit the feature, the mean
map RMSE at 240 s and 600 s, and the checkpoints at which the mean RMSE is worse than the
raster's (from ``results/results.json``, the same seeds). Run::

    python studies/beamline/narrow_table.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

HERE = Path(__file__).with_name("results")


def main() -> int:
    raster = [r for r in json.loads((HERE / "results.json").read_text()) if r["method"] == "raster"]
    t = raster[0]["checkpoints_s"]
    raster_mean = np.mean([r["rmse"] for r in raster], 0)
    at = t.index(240.0)
    rows = []
    folders = [HERE] + sorted(f for f in (HERE / "narrow").iterdir() if (f / "results.json").exists())
    for folder in folders:
        runs = [r for r in json.loads((folder / "results.json").read_text()) if r["method"] != "raster"]
        command = re.search(r"(?:Command: )?`(python studies/beamline/steer.py[^`]*)`",
                            (folder / "results.md").read_text())
        for method in dict.fromkeys(r["method"] for r in runs):
            rs = [r for r in runs if r["method"] == method]
            mean = np.mean([r["rmse"] for r in rs], 0)
            worse = [f"{s:.0f}" for s, m, ref in zip(t, mean, raster_mean) if m > ref]
            rows.append(f"| {'default' if folder == HERE else folder.name} | {method} | {sum(r['feature_s'] is not None for r in rs)}/{len(rs)} | "
                        f"{mean[at]:.2f} | {mean[-1]:.2f} | {', '.join(worse) or 'none'} | "
                        f"`{command.group(1) if command else '?'}` |")
    lines = [
        "# Narrow-feature tools on the beamline study (seeds 0, 1, 2; 600 instrument seconds)",
        "",
        f"Raster (baseline, `results/results.json`): mean map RMSE {raster_mean[at]:.2f} A at 240 s, "
        f"{raster_mean[-1]:.2f} A at 600 s; checkpoints {', '.join(f'{s:.0f}' for s in t)} s.",
        "",
        "| setting | method | feature found | RMSE at 240 s (A) | RMSE at 600 s (A) | worse than raster at (s) | command |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Made by `python studies/beamline/narrow_table.py`.",
        "",
    ]
    (HERE / "narrow" / "summary.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
