"""Keep BoTorch's BLAS thread limit from re-scanning the process at every call.

BoTorch runs SciPy's L-BFGS-B inside ``threadpoolctl.threadpool_limits(limits=1,
user_api="blas")`` (``botorch.optim.utils.timeout.minimize_with_timeout`` for every GP fit,
``botorch.generation.gen.gen_candidates_scipy`` for every acquisition search; BoTorch PR #2712,
after SciPy 1.15's OpenBLAS slow-down). ``threadpool_limits`` builds a new
``ThreadpoolController`` each time, which walks every shared library the process has loaded:
about 2 ms per call on this machine, two calls per ask, a few percent of a small-n ask
(threadpoolctl issues #94 and #246 ask for the same caching).

:func:`cache_blas_limits` gives those two BoTorch modules a ``threadpool_limits`` with the same
meaning built on one cached controller, re-scanned when the set of imported modules changes
(a newly imported extension may bring its own BLAS).
"""

from __future__ import annotations

import functools
import importlib
import sys
from typing import Any

__all__ = ["cache_blas_limits", "cached_threadpool_limits"]

_PATCHED = ("botorch.generation.gen", "botorch.optim.utils.timeout")
_cache: dict[str, Any] = {"controller": None, "n_modules": -1}


def cached_threadpool_limits(limits: int | dict[str, int] | str | None = None, user_api: str | None = None) -> Any:
    """``threadpoolctl.threadpool_limits(limits, user_api)`` on a controller cached across calls.

    The same context manager (the limits apply from the call, and are restored on exit); the
    controller is re-built when the number of imported modules has changed since the last call.
    """
    from threadpoolctl import ThreadpoolController

    n = len(sys.modules)
    if _cache["controller"] is None or _cache["n_modules"] != n:
        _cache["controller"] = ThreadpoolController()
        _cache["n_modules"] = n
    return _cache["controller"].limit(limits=limits, user_api=user_api)


@functools.cache
def cache_blas_limits() -> None:
    """Make BoTorch's L-BFGS-B wrappers use :func:`cached_threadpool_limits`.

    Runs once (later calls return at once); a module of a BoTorch version that does not use
    ``threadpool_limits`` is left as it is.
    """
    from threadpoolctl import threadpool_limits

    for name in _PATCHED:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "threadpool_limits", None) is threadpool_limits:
            setattr(module, "threadpool_limits", cached_threadpool_limits)  # noqa: B010 - BoTorch's module global
