"""Time the driver's GP on each device: a GP fit and one cold ``ask()`` at large n (d = 6).

For a GPU machine (``model.device`` / ``Optimizer(device=...)``)::

    python benchmarks/gp_device.py --n 1000 4000 10000 --devices cpu cuda

For each (device, n): n random observations of Hartmann-6 (float64); ``fit`` is one
``GPFitter.fit`` from scratch on the device (as the optimiser's first fit; see
``GPFitter`` for how it fits at large n), ``ask`` a fresh ``Optimizer(device=...)`` told the
n points, then ``ask(1)``: its fit plus the acquisition optimisation, the suggestion back as
Python values. Median of ``--repeats`` runs; CUDA is synchronised before each clock stop and
its start-up is not timed. A device that is not available is skipped with a note.
Writes Markdown to ``--out`` (stdout only without it).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 4000, 10000])
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=None, help="Markdown file to write (e.g. benchmarks/results/gp_device.md)")
    args = ap.parse_args(argv)

    import torch
    from botorch.test_functions import Hartmann

    import autotune
    from autotune import Float, Optimizer, SearchSpace
    from autotune.models import GPFitter, device_scope

    warnings.simplefilter("ignore")
    h = Hartmann(dim=6)
    space = SearchSpace([Float(f"x{i}", low=0.0, high=1.0) for i in range(6)])

    def sync(device: torch.device) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    rows: list[tuple[str, int, float, float]] = []
    for name in args.devices:
        if name.startswith("cuda") and not torch.cuda.is_available():
            print(f"{name}: not available here, skipped", flush=True)
            continue
        device = torch.device(name)
        if device.type == "cuda":
            torch.zeros(1, device=device).sum().item()  # CUDA start-up, not timed
        for n in args.n:
            data = space.sample(n, "random", seed=n)
            X = torch.tensor([space.encode(p) for p in data], dtype=torch.float64)
            y = h(X).unsqueeze(-1)
            fits, asks = [], []
            for _ in range(args.repeats):
                with device_scope(device):
                    Xd, yd = X.to(device), y.to(device)
                    t0 = time.perf_counter()
                    GPFitter(space).fit("objective", Xd, yd)
                    sync(device)
                    fits.append(time.perf_counter() - t0)
                opt = Optimizer(space, "ei", seed=0, n_initial=0, device=device)
                for p, v in zip(data, y.reshape(-1).tolist()):
                    opt.add(p, v)
                t0 = time.perf_counter()
                (s,) = opt.ask(1)
                sync(device)
                asks.append(time.perf_counter() - t0)
                assert all(isinstance(v, float) for v in s.params.values())
            row = (str(device), n, statistics.median(fits), statistics.median(asks))
            rows.append(row)
            print(f"{row[0]:8s} n={n:6d} fit {row[2]:8.2f} s  fit+ask {row[3]:8.2f} s", flush=True)

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [
        "# The driver's GP by device: Hartmann-6 (d = 6), float64",
        "",
        f"Command: `python benchmarks/gp_device.py --n {' '.join(map(str, args.n))} --devices {' '.join(args.devices)} "
        f"--repeats {args.repeats}`",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"autotune {autotune.__version__}, GPU: {gpu}. Median of {args.repeats} run(s).",
        "",
        "| device | n | GP fit (s) | cold ask: fit + acquisition (s) |",
        "|---|---:|---:|---:|",
        *[f"| {d} | {n} | {fit:.2f} | {ask:.2f} |" for d, n, fit, ask in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
