"""The autotune error tree.

Every error autotune raises on purpose derives from :class:`AutotuneError`::

    AutotuneError
    ├── ConfigError                 bad user input (a study file, a search space, an option)
    │   ├── SearchSpaceError        a search-space definition is invalid
    │   └── StudyConfigError        a study file is invalid
    ├── UnknownNameError            a registry lookup failed (also a ConfigError and a KeyError)
    ├── MissingExtraError           an optional dependency is not installed (also an ImportError)
    ├── ModelFitError               the surrogate could not be fitted even after the fallbacks
    ├── TrialError                  a trial could not be launched or its result not read
    └── TrackingError               the MLflow record is unusable (for example a study mismatch)
        └── StudyLockedError        another process is writing the same study record

Raised where they arise and documented there: ``autotune.executors.SubmitError`` (an
``AutotuneError``: the executor cannot start trials at all, so the study stops).

Messages follow one template: *where* (file and key path), *the rule*, *the value received*,
and *the fix*, e.g.
``studies/solubility.yaml: parameters.lr.low: must be > 0 for a log-scaled float, got 0.0.
Fix: use a positive lower bound such as 1e-5, or set log: false.``
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class _Null:
    """The value ``null`` (YAML) / ``None`` received where something else was expected."""

    def __repr__(self) -> str:
        return "null"


#: Pass as a :class:`ConfigError`'s ``value`` when the value received *was* ``null``: ``None``
#: means "no value to show" (e.g. a missing key), ``NULL`` prints ``got null``.
NULL: Any = _Null()


def shown(value: Any) -> Any:
    """``value`` as a :class:`ConfigError` shows it: ``None`` (a ``null`` received) becomes :data:`NULL`."""
    return NULL if value is None else value


class AutotuneError(Exception):
    """Base class of every error autotune raises on purpose."""


class ConfigError(AutotuneError, ValueError):
    """Invalid user input.

    Args:
        where: The file (if any) and key path, e.g. ``"space.yaml: parameters.lr.low"``.
        rule: What the value must satisfy, e.g. ``"must be > 0 for a log-scaled float"``.
        value: The value received.
        fix: How to fix it.
    """

    def __init__(self, where: str, rule: str, value: Any = None, fix: str | None = None) -> None:
        self.where = where
        self.rule = rule
        self.value = value
        self.fix = fix
        msg = f"{where}: {rule}, got {value!r}." if value is not None else f"{where}: {rule}."
        if fix:
            msg += f" Fix: {fix}"
        super().__init__(msg)


class SearchSpaceError(ConfigError):
    """A search-space definition is invalid."""


class StudyConfigError(ConfigError):
    """A study file is invalid."""


def one_of(name: object, valid: Iterable[str]) -> str:
    """The fix of an unknown name: the closest valid one (if any is close), then all of them.

    >>> one_of("eii", ["ei", "pi"])
    "did you mean 'ei'? Otherwise use one of: ei, pi."
    """
    import difflib

    names = sorted(valid)
    close = difflib.get_close_matches(name, names, n=1) if isinstance(name, str) else []
    hint = f"did you mean {close[0]!r}? Otherwise use" if close else "use"
    return f"{hint} one of: {', '.join(names)}."


class UnknownNameError(ConfigError, KeyError):
    """A name was looked up in a registry that does not hold it; the fix offers the closest name.

    Args:
        kind: What was looked up (``"strategy"``, ``"executor"``).
        name: The name given.
        valid: The names the registry holds.
        where: The key path (default: ``kind``).
    """

    def __init__(self, kind: str, name: str, valid: Iterable[str], where: str | None = None) -> None:
        super().__init__(where or kind, f"unknown {kind} name", name, one_of(name, valid))

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class MissingExtraError(AutotuneError, ImportError):
    """An optional dependency is missing.

    Args:
        package: The module that failed to import.
        extra: The autotune extra that installs it.
    """

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; it is needed for this feature. "
            f"Fix: pip install 'autotune[{extra}]'"
        )


class ModelFitError(AutotuneError):
    """The surrogate model could not be fitted, even with more jitter and old hyperparameters."""


class TrialError(AutotuneError):
    """A trial could not be launched, or its result could not be read."""


class TrackingError(AutotuneError):
    """The MLflow record cannot be used (unreachable store, mismatched study)."""


class StudyLockedError(TrackingError):
    """Another process holds the lock of a study record (or of a store being created).

    Attributes:
        path: The lock file.
        owner: Who holds it, as written in the lock file (an
            :class:`autotune.tracking.LockOwner`; ``None`` if it could not be read).
    """

    def __init__(self, message: str, path: Any, owner: Any | None) -> None:
        super().__init__(message)
        self.path = path
        self.owner = owner
