"""BoTorch's BLAS thread limit on a cached threadpool controller (``autotune.models._threads``)."""

from __future__ import annotations

import sys
import types

import pytest
from threadpoolctl import ThreadpoolController

from autotune.models import _threads
from autotune.models._threads import cache_blas_limits, cached_threadpool_limits


def _blas_threads() -> list[int]:
    return [int(i["num_threads"]) for i in ThreadpoolController().info() if i["user_api"] == "blas"]


def test_botorchs_lbfgs_wrappers_use_the_cached_limits() -> None:
    import botorch.generation.gen as gen
    import botorch.optim.utils.timeout as timeout

    cache_blas_limits()
    assert gen.threadpool_limits is cached_threadpool_limits
    assert timeout.threadpool_limits is cached_threadpool_limits
    cache_blas_limits()  # idempotent
    assert gen.threadpool_limits is cached_threadpool_limits


def test_the_cached_limits_limit_blas_inside_and_restore_it_after() -> None:
    before = _blas_threads()
    if not before:
        pytest.skip("no BLAS library that threadpoolctl can see")
    with cached_threadpool_limits(limits=1, user_api="blas"):
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before


def test_the_controller_is_reused_until_the_imported_modules_change(monkeypatch: pytest.MonkeyPatch) -> None:
    with cached_threadpool_limits(limits=1, user_api="blas"):
        pass
    first = _threads._cache["controller"]
    with cached_threadpool_limits(limits=1, user_api="blas"):
        pass
    assert _threads._cache["controller"] is first
    monkeypatch.setitem(sys.modules, "autotune_test_new_extension", types.ModuleType("autotune_test_new_extension"))
    with cached_threadpool_limits(limits=1, user_api="blas"):
        pass
    assert _threads._cache["controller"] is not first  # re-scanned: a new import may bring a BLAS
