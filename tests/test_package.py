"""The top-level package: its public names are listed once and each one resolves."""

from __future__ import annotations

import autotune


def test_all_lists_every_lazy_export_and_each_resolves() -> None:
    lazy = set(autotune._LAZY)  # noqa: SLF001 - the table the lazy loader reads
    assert set(autotune.__all__) == lazy | {"__version__"}
    for name in sorted(lazy):
        assert getattr(autotune, name) is not None, name
    assert autotune.__all__ == sorted(autotune.__all__[:-1]) + ["__version__"]
