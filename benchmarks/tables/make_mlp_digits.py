"""Build the exhaustive MLP-on-digits table (``mlp_digits.csv.gz``) from real training.

Every cell of a small categorical/ordinal MLP search space is trained on scikit-learn's bundled
digits data (8x8 images, 10 classes; standardised; a fixed stratified 70/30 train/validation
split) for a few epochs with Adam, once per training seed, and its validation cross-entropy and
error are recorded. The benchmark problem ``mlp_digits`` (:mod:`benchmarks.compare.problems`)
looks cells up in the table; its objective is the validation cross-entropy averaged over the
training seeds, so the true optimum is the table's best mean.

Space (4 * 3 * 3 * 3 * 2 * 2 = 432 cells; 2 training seeds each, 5 epochs:
about 2-3 CPU minutes in all, sized for a heavily shared machine):

- ``width`` in {16, 32, 64, 128} (ordinal), ``depth`` in {1, 2, 3} hidden layers (ordinal),
- ``activation`` in {relu, tanh, gelu} (categorical),
- ``lr`` in {1e-3, 3e-3, 1e-2} (ordinal), ``dropout`` in {0, 0.2}, ``batch_size`` in {64, 256}.

Run once, nice'd, on one thread (resumable: finished cells in the output are kept)::

    OMP_NUM_THREADS=1 nice python -m benchmarks.tables.make_mlp_digits

A partial table (``--stop-at HH:MM``) is written as it goes; the problem refuses a table that
does not cover every cell unless told to use what is there (it says which cells are missing).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import itertools
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "mlp_digits.csv.gz"

SPACE: dict[str, tuple] = {
    "width": (16, 32, 64, 128),
    "depth": (1, 2, 3),
    "activation": ("relu", "tanh", "gelu"),
    "lr": (1e-3, 3e-3, 1e-2),
    "dropout": (0.0, 0.2),
    "batch_size": (64, 256),
}
SEEDS = (0, 1)
EPOCHS = 5
SPLIT_SEED = 0
FIELDS = [*SPACE, "seed", "val_loss", "val_error", "train_s"]


def cells() -> list[dict]:
    """Every cell of :data:`SPACE`, in a fixed shuffled order (a partial table is a uniform subsample)."""
    import random

    out = [dict(zip(SPACE, v)) for v in itertools.product(*SPACE.values())]
    random.Random(0).shuffle(out)
    return out


def cell_key(c: dict) -> tuple:
    return (int(c["width"]), int(c["depth"]), str(c["activation"]), float(c["lr"]), float(c["dropout"]),
            int(c["batch_size"]))


def _data():
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.3, stratify=y, random_state=SPLIT_SEED)
    sc = StandardScaler().fit(Xtr)
    return (sc.transform(Xtr).astype(np.float32), ytr, sc.transform(Xva).astype(np.float32), yva)


def train(cell: dict, seed: int, data) -> tuple[float, float]:
    """Train one cell with one seed; return (validation cross-entropy, validation error)."""
    import torch
    from torch import nn

    Xtr, ytr, Xva, yva = (torch.as_tensor(a) for a in data)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[cell["activation"]]
    layers: list[nn.Module] = []
    d_in = Xtr.shape[1]
    for _ in range(int(cell["depth"])):
        layers += [nn.Linear(d_in, int(cell["width"])), act(), nn.Dropout(float(cell["dropout"]))]
        d_in = int(cell["width"])
    model = nn.Sequential(*layers, nn.Linear(d_in, 10))
    opt = torch.optim.Adam(model.parameters(), lr=float(cell["lr"]))
    loss_fn = nn.CrossEntropyLoss()
    bs = int(cell["batch_size"])
    for _ in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(Xtr), generator=g)
        for i in range(0, len(Xtr), bs):
            idx = perm[i:i + bs]
            opt.zero_grad()
            loss_fn(model(Xtr[idx]), ytr[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        logits = model(Xva)
        return float(loss_fn(logits, yva)), float((logits.argmax(1) != yva).float().mean())


def read_rows(path: Path = OUT) -> list[dict]:
    if not path.exists():
        return []
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--stop-at", default=None, help="HH:MM local time after which no new cell starts")
    ap.add_argument("--limit", type=int, default=None, help="train at most this many cells (tests)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    stop = None
    if args.stop_at:
        hh, mm = (int(x) for x in args.stop_at.split(":"))
        stop = dt.datetime.now().replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()
    rows = read_rows(args.out)
    done = {(cell_key(r), int(r["seed"])) for r in rows}
    data = _data()
    n_new = 0
    t0 = time.time()
    for c in cells():
        if args.limit is not None and n_new >= args.limit:
            break
        if stop is not None and time.time() > stop:
            print("past --stop-at: the table is partial")
            break
        todo = [s for s in SEEDS if (cell_key(c), s) not in done]
        if not todo:
            continue
        for s in todo:
            t = time.process_time()
            loss, err = train(c, s, data)
            rows.append({**c, "seed": s, "val_loss": f"{loss:.6f}", "val_error": f"{err:.6f}",
                         "train_s": f"{time.process_time() - t:.3f}"})
        n_new += 1
        if n_new % 48 == 0:  # write as it goes, so an interrupted build keeps what it trained
            _write(args.out, rows)
            print(f"{len(rows) // len(SEEDS)} cells, {time.time() - t0:.0f} s", flush=True)
    _write(args.out, rows)
    print(f"wrote {args.out}: {len(rows)} rows")
    return 0


def _write(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
