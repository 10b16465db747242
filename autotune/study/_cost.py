"""The study file's ``known_cost: module:function``, imported as a :class:`~autotune.strategies.KnownCost`."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from autotune.exceptions import StudyConfigError

if TYPE_CHECKING:
    from autotune.strategies import KnownCost
    from autotune.study._config import StudyConfig


def load_known_cost(config: StudyConfig) -> KnownCost | None:
    """The study's known cost function, imported from the study file's folder first (as ``trial.entry_point``).

    Args:
        config: A validated study.

    Returns:
        The known cost, or ``None`` when the study names none.

    Raises:
        StudyConfigError: Naming the study file, ``known_cost``, the value and the fix.
    """
    from autotune.strategies import KnownCost

    spec = config.known_cost
    if spec is None:
        return None
    where = (f"{config.study_file}: " if config.study_file is not None else "") + "known_cost"
    module_name, _, attr = spec.partition(":")
    folder = str(config.base_dir)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except ModuleNotFoundError as exc:
        raise StudyConfigError(where, f"cannot be imported: no module named {exc.name!r}", spec,
                               f"put {module_name.replace('.', '/')}.py beside the study file ({folder}) or "
                               "install its package.") from None
    except AttributeError:
        raise StudyConfigError(where, f"names a function that module {module_name!r} does not define", spec,
                               "check the name after ':'.") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise StudyConfigError(where, f"fails to import ({type(exc).__name__}: {exc})"[:500], spec,
                               f"run python -c 'import {module_name}' from {folder} to see the error.") from None
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    if not callable(target):
        raise StudyConfigError(where, "must name a callable", spec,
                               "point it at a function fn(points, state) returning the cost of each point.")
    return KnownCost(target, config.search_space)
