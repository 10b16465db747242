"""A training *script* entry point: reads its parameters and reports through autotune.report."""

import sys

from autotune.report import load_fixed_args, load_params, report

params = load_params()
epochs = int(load_fixed_args().get("epochs", 2))
x = float(params["x"])
for epoch in range(epochs):
    report(step=epoch, objective=(x - 2.0) ** 2 + 1.0 / (epoch + 1), argv_params=float(sys.argv[-1].endswith(".json")))
if x < 0:
    sys.exit(3)
