"""The import path of a trial process: one helper for every executor that starts one."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["add_to_sys_path", "trial_pythonpath", "with_import_path"]


def trial_pythonpath(env: Mapping[str, str], *first: str) -> str:
    """The ``PYTHONPATH`` of a trial process started from this driver.

    In order, without repeats: ``first`` (e.g. the autotune package's folder), ``env``'s own
    ``PYTHONPATH`` entries (a study puts its folder there, so its ``train.py`` wins over one in
    the driver's working directory), the driver's working directory (so ``mypkg.train:train``
    imports as it does in the driver), then the driver's inherited ``PYTHONPATH``.

    Args:
        env: The executor's extra environment variables of every trial.
        *first: Entries that come before all others.

    Returns:
        The joined path.
    """
    paths = [
        *first,
        *env.get("PYTHONPATH", "").split(os.pathsep),
        os.getcwd(),
        *os.environ.get("PYTHONPATH", "").split(os.pathsep),
    ]
    return os.pathsep.join(dict.fromkeys(p for p in paths if p))


def with_import_path(options: Mapping[str, Any], folder: str) -> dict[str, Any]:
    """A copy of an executor's options whose ``env["PYTHONPATH"]`` starts with ``folder``.

    Args:
        options: Constructor options holding an optional ``env`` mapping.
        folder: The folder trial processes must import from first (a study's folder).

    Returns:
        The new options (``options`` is not changed).
    """
    new = dict(options)
    env = dict(new.get("env") or {})
    inherited = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, inherited) if p)
    new["env"] = env
    return new


def add_to_sys_path(folder: str | os.PathLike[str]) -> None:
    """Let this process import from ``folder`` (appended to ``sys.path`` once).

    For executors that run trials in the driver's own process: a study's ``module:function``
    then imports from the study's folder.

    Args:
        folder: The folder.
    """
    folder = os.fspath(folder)
    if folder not in sys.path:
        sys.path.append(folder)
