"""The side-by-side ask-time benchmark at a tiny size (the figures come from the script)."""

from __future__ import annotations

import pytest

from benchmarks.bench_ask_vs_gpsampler import PROBLEMS, _autotune, _gpsampler, _problem


@pytest.mark.parametrize("name", ["hartmann6_mixed", "levy6"])
def test_both_optimisers_run_the_same_problem_and_time_every_ask(name: str) -> None:
    pytest.importorskip("optuna")
    spec, f = _problem(name)
    assert name in PROBLEMS and math_finite(f({k: (v[0] if isinstance(v, tuple) and v[0] != "int" else
                                                    v[1] if isinstance(v, tuple) else v[0]) for k, v in spec.items()}))
    for run in (_autotune, _gpsampler):
        times = run(spec, f, 3, 0)
        assert len(times) == 3 and all(c >= 0 and w > 0 for c, w in times)


def math_finite(x: float) -> bool:
    import math

    return math.isfinite(x)
