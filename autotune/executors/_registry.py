"""The executor registry: one name per executor, plugins through entry points.

Built-in executors register themselves with :func:`register_executor` where they are defined.
Other packages (e.g. a Ray or Slurm backend) declare an entry point in the group
``autotune.executors``::

    [project.entry-points."autotune.executors"]
    ray = "autotune_ray:RayExecutor"

Entry points are read only when a name is not built in, and only the one asked for is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from autotune.exceptions import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from autotune.executors._base import Executor

__all__ = ["ENTRY_POINT_GROUP", "available_executors", "get_executor", "get_executor_class", "register_executor"]

ENTRY_POINT_GROUP = "autotune.executors"

_F = TypeVar("_F", bound=Callable[..., "Executor"])
_REGISTRY: dict[str, Callable[..., Executor]] = {}


def register_executor(name: str) -> Callable[[_F], _F]:
    """Class decorator registering an executor (or a factory returning one) under ``name``.

    Args:
        name: The name used in study files and by :func:`get_executor`.

    Returns:
        The decorator, which returns the class unchanged.

    Raises:
        ConfigError: The name is already registered.
    """

    def decorator(factory: _F) -> _F:
        if name in _REGISTRY:
            raise ConfigError(
                "executor registry",
                "names must be unique",
                name,
                f"{_REGISTRY[name].__qualname__} already uses it; choose another name.",
            )
        _REGISTRY[name] = factory
        return factory

    return decorator


def _entry_points() -> list[Any]:
    from importlib import (
        metadata,  # deferred: only needed for names that are not built in
    )

    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def available_executors() -> list[str]:
    """The names :func:`get_executor` accepts: the built-in ones and the installed plugins."""
    return sorted(set(_REGISTRY) | {ep.name for ep in _entry_points()})


def _factory(name: str) -> Callable[..., Executor]:
    """What is registered under ``name``, loading a plugin's entry point if needed."""
    factory = _REGISTRY.get(name)
    if factory is None:
        matches = [ep for ep in _entry_points() if ep.name == name]
        if not matches:
            raise UnknownNameError("executor", name, available_executors())
        factory = matches[0].load()
        _REGISTRY.setdefault(name, factory)
    return factory


def executor_factory(name: str) -> Callable[..., Executor] | None:
    """The class (or factory) registered as ``name``, without building it.

    A plugin's entry point is loaded (once per process); Ray and submitit are imported only
    when their executor is built.

    Args:
        name: An executor's name.

    Returns:
        The registered class or factory, or ``None`` when no executor has that name.
    """
    try:
        return _factory(name)
    except UnknownNameError:
        return None


def get_executor_class(name: str) -> type[Executor]:
    """The executor class registered under ``name`` (a plugin's entry point is loaded if needed).

    A study builds its executor with the class's :meth:`~Executor.for_study` hook.

    Args:
        name: ``"inprocess"``, ``"local"``, ``"simulated"``, or a plugin's name.

    Returns:
        The :class:`Executor` subclass.

    Raises:
        UnknownNameError: No executor has that name (the message lists the valid ones).
        ConfigError: The name is registered to a factory function, not an ``Executor`` subclass.
    """
    from autotune.executors._base import (
        Executor,  # deferred: the base imports nothing from here
    )

    factory = _factory(name)
    if not (isinstance(factory, type) and issubclass(factory, Executor)):
        raise ConfigError(f"executor {name!r}", "must be registered as an Executor subclass", factory,
                          "register the class itself (it inherits Executor.for_study, or overrides it).")
    return factory


def get_executor(name: str, **options: Any) -> Executor:
    """Build the executor registered under ``name``.

    Args:
        name: ``"inprocess"``, ``"local"``, ``"simulated"``, or a plugin's name.
        **options: The executor's constructor arguments.

    Returns:
        The executor.

    Raises:
        UnknownNameError: No executor has that name (the message lists the valid ones).
    """
    return _factory(name)(**options)
